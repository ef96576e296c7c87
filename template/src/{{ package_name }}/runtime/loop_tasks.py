"""The asyncio task a loop is stepping, seen from another thread: what the
watchdog (runtime/stalls.py) reports of it. Which task it is, the coroutines it
awaits, and where it was created (`TracedTask`, with LAG_TASK_ORIGINS=true).
"""

import _asyncio
import asyncio
import os
import sys
import traceback
from types import FrameType
from typing import Any

# Frames kept of where a task was created.
ORIGIN_LIMIT = 8
ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
# The task each loop is stepping, as asyncio's C tasks (uvloop's too) record it:
# readable from another thread up to Python 3.13. Python 3.14 keeps it in the
# loop thread's own state, out of the watchdog's reach.
CURRENT_TASKS: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] | None = getattr(
    _asyncio, "_current_tasks", None
)


def running_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
    """The task `loop` is stepping now, read from another thread: what
    `asyncio.current_task(loop)` answers on the loop's own thread only."""
    return CURRENT_TASKS.get(loop) if CURRENT_TASKS is not None else None


def await_chain(task: asyncio.Task[Any], frame: FrameType) -> list[FrameType]:
    """The task's coroutines, outermost first, down to the innermost frame.

    While a task is being stepped its coroutines are running, and running ones
    report nothing awaited (`cr_await` is None): their frames are on the loop
    thread's stack, from the task's coroutine up. A task not on the stack (a
    callback stepping it is not) is walked through `cr_await` instead.
    """
    coro: Any = task.get_coro()
    first = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
    stack = []
    current: FrameType | None = frame
    while current is not None:
        stack.append(current)
        if current is first:
            return stack[::-1]
        current = current.f_back
    chain = []
    while coro is not None:
        if inner := getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None):
            chain.append(inner)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return chain


def task_origin(task: asyncio.Task[Any]) -> traceback.StackSummary | None:
    """Where the task was created: recorded by asyncio's debug mode, or by
    `TracedTask` (LAG_TASK_ORIGINS); None if neither was on."""
    recorded = getattr(task, "_source_traceback", None)
    if recorded:
        frames = list(recorded)
        # The innermost frames are asyncio's own create_task: not the creator.
        while frames and frames[-1].filename.startswith(ASYNCIO_DIR):
            frames.pop()
        return traceback.StackSummary.from_list(frames[-ORIGIN_LIMIT:])
    origin = getattr(task, "origin", None)
    if origin is None:
        return None
    return traceback.StackSummary.from_list(
        [(filename, lineno, name, None) for filename, lineno, name in origin]
    )


class TracedTask(asyncio.Task[Any]):
    """An asyncio task that records where it was created, for the watchdog.

    Installed as the loop's task factory with LAG_TASK_ORIGINS=true. It makes
    creating a task dearer (one per request, too; docs/event-loop.md): the
    creator's frames are walked; their source lines are only read if a warning
    needs them.
    """

    def __init__(self, coro: Any, **kwargs: Any) -> None:
        super().__init__(coro, **kwargs)
        # Not the creator: this task factory, then asyncio's create_task.
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and (
            frame.f_code.co_filename == __file__
            or frame.f_code.co_filename.startswith(ASYNCIO_DIR)
        ):
            frame = frame.f_back
        origin: list[tuple[str, int, str]] = []
        while frame is not None and len(origin) < ORIGIN_LIMIT:
            code = frame.f_code
            origin.append((code.co_filename, frame.f_lineno, code.co_name))
            frame = frame.f_back
        self.origin = origin[::-1]


def create_traced_task(
    loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any
) -> TracedTask:
    return TracedTask(coro, loop=loop, **kwargs)
