"""Whatever started the service, its worker processes share one set of metrics.

`python -m <package>`, `uvicorn <package>.main:app --workers N`, `fastapi run
--workers N` and `gunicorn -k uvicorn_worker.UvicornWorker -w N` each run the
app in several worker processes, and any of them may answer a scrape. So each
worker keeps its metrics in files of one directory, and /metrics adds up every
worker's files (runtime/exporter.py). prometheus_client picks where values go
when it is imported: main.py calls `prepare` before anything imports it.
"""

import fcntl
import multiprocessing
import os
import stat
import sys
import tempfile
from pathlib import Path
from types import FrameType
from typing import NoReturn

PACKAGE = __name__.partition(".")[0]
# prometheus_client's multiprocess mode: the directory its files go in.
METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# What uvicorn and gunicorn take a worker's exit status 3 for: it could not
# start, and would fail the same way again. Both stop, rather than start it
# again in a loop.
STARTUP_FAILURE = 3
# gunicorn worker classes that serve ASGI apps (their modules).
ASGI_WORKERS = {"uvicorn_worker._workers", "uvicorn.workers", "gunicorn.workers.gasgi"}


def refuse(message: str) -> NoReturn:
    """Stop this worker before it serves, with one line, and its launcher with it."""
    print(f"{PACKAGE}: {message}", file=sys.stderr, flush=True)
    sys.exit(STARTUP_FAILURE)


def prepare() -> None:
    """Point prometheus_client at the directory of this process's group: its
    launcher's workers. A process that serves alone keeps its metrics in memory,
    unless PROMETHEUS_MULTIPROC_DIR names a directory."""
    leader = group_leader()
    given = os.environ.get(METRICS_DIR)
    if given:
        try:
            join(Path(given), leader or os.getpid())
        except OSError as error:
            refuse(f"invalid setting {METRICS_DIR}={given!r}: {error.strerror}")
    elif leader is not None:
        directory = Path(tempfile.gettempdir(), f"{PACKAGE}-metrics-{leader}")
        make_private(directory)
        join(directory, leader)
        os.environ[METRICS_DIR] = str(directory)


def group_leader() -> int | None:
    """The launcher process this one is a worker of; None if it serves alone."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        # uvicorn's supervisor (--workers or --reload; `python -m` and `fastapi
        # run` start it too) spawns each worker with multiprocessing.
        return parent.pid
    if "gunicorn.arbiter" in sys.modules:
        return gunicorn_master()
    return None


def gunicorn_master() -> int:
    """The pid of gunicorn's master process, from one of its workers or itself."""
    from gunicorn.workers.base import Worker

    # The gunicorn worker importing the app: `self` of a caller (load_wsgi).
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and not isinstance(frame.f_locals.get("self"), Worker):
        frame = frame.f_back
    if frame is None:
        # --preload: the master imports the app, then forks the workers.
        return os.getpid()
    worker: Worker = frame.f_locals["self"]
    if not ASGI_WORKERS.intersection(cls.__module__ for cls in type(worker).__mro__):
        refuse(
            f"gunicorn's {type(worker).__name__} serves WSGI apps, not this ASGI "
            "app: start gunicorn with -k uvicorn_worker.UvicornWorker"
        )
    return worker.ppid


def make_private(directory: Path) -> None:
    """The directory, this user's alone: its name in the shared temporary
    directory is one anybody can guess."""
    directory.mkdir(mode=0o700, exist_ok=True)
    found = directory.lstat()
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        refuse(f"{directory} is not a directory of this user's: remove it")


def join(directory: Path, leader: int) -> None:
    """Add this process to the group of `leader`, whose metrics `directory`
    keeps. The group's first process empties it: files left by an earlier
    group would add its counts to this one's. Once the group runs, a worker
    started later (a replacement) keeps what the others counted."""
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / "group"
    with open(directory / "group.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # workers start at once: one at a time here
        recorded = marker.read_text() if marker.exists() else ""
        pid = recorded.partition(":")[0]
        if pid.isdigit() and identity(int(pid)) == recorded:
            return  # its leader still runs: this group, or one sharing the directory
        for file in directory.glob("*.db"):
            file.unlink(missing_ok=True)
        marker.write_text(identity(leader))


def identity(pid: int) -> str:
    """`pid` and when it started, empty if no such process runs. The start time
    (Linux's /proc) tells a pid reused by a later process apart, as each start
    of a container reuses the same pids."""
    if not alive(pid):
        return ""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:  # no /proc here (macOS), or it has just ended
        return f"{pid}:"
    return f"{pid}:{fields[19]}"  # field 22 of stat(5), counted after the name


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
