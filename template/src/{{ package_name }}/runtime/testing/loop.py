"""The event loop under test: what fails a test that holds it, and holding it
on purpose, as blocking code would."""

import logging
import time
from collections.abc import Iterator

import pytest
from blockbuster import BlockBuster, blockbuster_ctx


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    with blockbuster_ctx() as detector:
        yield detector


# Debug mode logs each callback that holds the loop past 100 ms of wall time.
# Under debug mode and blockbuster every callback runs slower (debug mode takes
# a traceback for each future), and on a busy machine the wall time includes
# waiting for a CPU (a CI runner running several suites at once stretches a
# 0.2 s callback past 0.5 s): past this many seconds a callback fails its test.
SLOW_CALLBACK_S = 1.0


def slow_callbacks(
    records: list[logging.LogRecord], limit_s: float = SLOW_CALLBACK_S
) -> list[str]:
    """Debug mode's "Executing <callback> took 0.123 seconds", past `limit_s`."""
    return [
        record.getMessage()
        for record in records
        if record.name == "asyncio"
        and record.msg.startswith("Executing")
        and isinstance(record.args, tuple)
        and isinstance(took_s := record.args[-1], float)
        and took_s > limit_s
    ]


@pytest.fixture(autouse=True)
def no_slow_callbacks(
    request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> Iterator[None]:
    """Fail the test if debug mode logged a slow callback."""
    yield
    if request.node.get_closest_marker("allow_slow_callbacks"):
        return
    records = caplog.get_records("setup") + caplog.get_records("call")
    if slow := slow_callbacks(records):
        pytest.fail("callbacks held the event loop:\n" + "\n".join(slow))


def stall_the_loop(seconds: float) -> None:
    """Hold the thread without yielding, as blocking code holds an event loop.

    A busy loop rather than time.sleep, which blockbuster would stop.
    """
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass
