"""Render services with Copier, start them with uvicorn, and stop every process started.

Every process the suite starts (servers, load generators) leads its own process
group, and is killed with that group: on `stop`, when the `with` block around it
ends, and at exit as a last resort, so nothing outlives a run, even a failed one.
"""

import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import warnings
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

REPO = Path(__file__).resolve().parent.parent
APPS = REPO / "bench" / "apps"
UV = os.environ.get("UV") or shutil.which("uv") or "uv"
# tests/helpers.py renders for the tests and for `_render`, which imports it as
# dev.py imports from tests/; appended, so that it shadows no other module.
sys.path.append(str(REPO / "tests"))

_running: set[subprocess.Popen[Any]] = set()


def spawn(command: list[str], **options: Any) -> subprocess.Popen[Any]:
    """Start `command` as the leader of a new process group, remembered for cleanup."""
    process = subprocess.Popen(command, start_new_session=True, **options)
    _running.add(process)
    return process


def kill(process: subprocess.Popen[Any], timeout: float = 3) -> None:
    """SIGTERM the process group; SIGKILL what is left of it after `timeout`."""
    global _killed_ticks
    # Reaping the leader adds its time, and that of the children it reaped, to
    # ours; children left to init (pool workers outliving their server) are
    # counted here instead.
    used, reaped = _session_ticks({process.pid}), _own_ticks()
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # stragglers: pool workers, children
    except ProcessLookupError:
        pass
    process.wait()
    _running.discard(process)
    _killed_ticks += max(0, used - (_own_ticks() - reaped))


@atexit.register
def kill_all() -> None:
    for process in list(_running):
        kill(process, timeout=2)


def ticks_ours() -> int:
    """CPU time (clock ticks) used so far by this process and the children it
    has reaped, by every process in the sessions it started (servers, their pool
    workers, load generators) and by those it has killed: what the suite itself
    costs the machine."""
    return _own_ticks() + _session_ticks({p.pid for p in _running}) + _killed_ticks


_killed_ticks = 0  # what killed sessions had used and no reaping accounts for


def _own_ticks() -> int:
    """This process's CPU time, its reaped children's included."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15])  # utime stime cutime cstime


def _session_ticks(sessions: set[int]) -> int:
    """CPU time of the processes in `sessions`, and of the children their
    leaders have reaped."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        session = int(fields[3])
        if session in sessions:
            leader = stat.parent.name == str(session)
            total += sum(int(value) for value in fields[11 : 15 if leader else 13])
    return total


def ticks_busy() -> int:
    """CPU time (clock ticks) the whole machine has spent busy so far, in any
    process or stolen by the hypervisor (interrupt time left out: the suite's
    own network traffic is counted there, not in its processes)."""
    values = [int(value) for value in Path("/proc/stat").read_text().split()[1:9]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = values
    return user + nice + system + steal


def project_env(**overrides: str) -> dict[str, str]:
    """The environment for a rendered project: its own venv, not the suite's.
    No /live side port: the suite runs services side by side, and each would
    want the one default port."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV")}
    env["LIVENESS_PORT"] = "0"
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Project:
    """A service rendered from the template and `uv sync`ed, ready to start."""

    def __init__(self, path: Path):
        self.path = path
        answers = (path / ".copier-answers.yml").read_text().splitlines()
        self.package = next(
            line.split(": ", 1)[1].strip("'\"")
            for line in answers
            if line.startswith("package_name:")
        )
        self.python = path / ".venv" / "bin" / "python"

    @classmethod
    def render_all(
        cls, template: Path, wanted: dict[Path, dict[str, str]]
    ) -> list["Project"]:
        """Render each destination from `template` and `uv sync` it, two at a time."""
        with ProcessPoolExecutor(2) as pool:
            renders = [
                pool.submit(_render, template, dst, answers)
                for dst, answers in wanted.items()
            ]
            return [cls(render.result()) for render in renders]


def _render(template: Path, dst: Path, answers: dict[str, str]) -> Path:
    """Render `template` (HEAD plus uncommitted changes) without trust, then sync."""
    # Here: the load generator and the apps never need Copier.
    from copier.errors import DirtyLocalWarning
    from helpers import render

    # Rendering a checkout with uncommitted changes is the point here.
    warnings.simplefilter("ignore", DirtyLocalWarning)
    shutil.rmtree(dst, ignore_errors=True)
    render(dst, answers, template)
    command = [UV, "sync", "--quiet", "--no-dev"]
    subprocess.run(command, cwd=dst, env=project_env(), check=True)
    return dst


class Server:
    """One uvicorn server (127.0.0.1, no access log, one worker process unless
    `workers` says otherwise) serving `app`.

    `app` is "module:attribute", imported from `app_dir` if given; `python` is
    the interpreter (a rendered project's venv: the bench apps use it too, so
    every variant runs the same FastAPI, Starlette, uvicorn and uvloop).
    """

    def __init__(
        self,
        name: str,
        python: Path,
        app: str,
        cwd: Path,
        env: dict[str, str] | None = None,
        app_dir: Path | None = None,
        log_dir: Path | None = None,
    ):
        self.name, self.python, self.app, self.cwd = name, python, app, cwd
        self.env = env or {}
        self.app_dir = app_dir
        self.log_path = (log_dir or cwd) / f"{name}.log"
        self.port = 0
        self.process: subprocess.Popen[Any] | None = None
        self.core: int | None = None  # pin to this core (see `pinned`)
        self.workers = 1  # uvicorn worker processes
        self.ready_path = "/health"  # answers 200 once the app has started

    @classmethod
    def of(cls, project: Project, name: str, log_dir: Path, **env: str) -> "Server":
        """The rendered project's own app, with extra settings from `env`."""
        app = f"{project.package}.main:app"
        return cls(name, project.python, app, project.path, env, log_dir=log_dir)

    @classmethod
    def bench_app(cls, project: Project, module: str, log_dir: Path) -> "Server":
        """An app from bench/apps/, run by the rendered project's interpreter."""
        return cls(
            module,
            project.python,
            f"{module}:app",
            project.path,
            app_dir=APPS,
            log_dir=log_dir,
        )

    def launch(self) -> None:
        """Start the process; `wait_ready` waits for it to answer."""
        self.port = free_port()
        command = pinned(self.core) if self.core is not None else []
        command += [str(self.python), "-m", "uvicorn", self.app]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", str(self.workers)]
        command += ["--no-access-log", "--log-level", "warning"]
        if self.app_dir:
            command += ["--app-dir", str(self.app_dir)]
        env = project_env(**self.env)
        if self.workers > 1:
            # As `python -m <package>` does with WORKERS > 1: the workers add up
            # their metrics in files there, fresh on every start.
            env["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
                prefix=f"{self.name}-metrics-", dir=self.log_path.parent
            )
        with open(self.log_path, "ab") as log:  # the child keeps its own copy
            self.process = spawn(
                command,
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.url(self.ready_path), timeout=5):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer /health in {timeout} s")

    def start(self) -> Self:
        self.launch()
        self.wait_ready()
        return self

    def restart(self) -> None:
        self.stop()
        self.start()

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far: with one worker, its process's own
        (a process pool's workers left out); with several, every process it
        started (uvicorn's supervisor and workers)."""
        assert self.process is not None
        if self.workers > 1:
            return _session_ticks({self.process.pid}) / os.sysconf("SC_CLK_TCK")
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        if self.process is not None:
            kill(self.process)
            self.process = None

    def __enter__(self) -> Self:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_loadgen(load: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one load generator process (bench/loadgen.py) and return its result."""
    process = start_loadgen(load)
    return finish_loadgen(process, timeout)


def start_loadgen(load: dict[str, Any]) -> subprocess.Popen[str]:
    command = [sys.executable, str(REPO / "bench" / "loadgen.py"), json.dumps(load)]
    return spawn(command, stdout=subprocess.PIPE, text=True)


def finish_loadgen(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(process)
        raise RuntimeError("load generator overran its time bound") from None
    _running.discard(process)
    if process.returncode != 0:
        raise RuntimeError(f"load generator exited {process.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def pinned(core: int) -> list[str]:
    """`taskset` to one core, when there are two or more and taskset is here: a
    server and the client measuring its throughput then never share a core."""
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def wrk(
    port: int, path: str, seconds: float, connections: int = 64, core: int | None = None
) -> tuple[float, int]:
    """Requests per second wrk (one thread) reaches, and how many it had answered.

    `core`: pin wrk to it (see `pinned`). Any non-2xx answer or socket error
    fails the measurement: throughput is only worth reporting without them.
    """
    command = pinned(core) if core is not None else []
    command += ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    command.append(f"http://127.0.0.1:{port}{path}")
    process = spawn(command, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=seconds + 30)
    finally:
        kill(process)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rps is None or count is None:
        raise RuntimeError(f"no figures in wrk's output:\n{out}")
    return float(rps.group(1)), int(count.group(1))


@contextlib.contextmanager
def side_by_side(servers: dict[str, "Server"], round_: int) -> Iterator[dict[str, int]]:
    """Start fresh `servers` (name -> not yet started), all at once, and yield
    their ports; stop them all on exit. The order in which they start, and in
    which `wrk_at_once` connects to them, turns with `round_`: no server is
    always first."""
    names = list(servers)
    turn = round_ % len(names)
    ordered = {name: servers[name] for name in names[turn:] + names[:turn]}
    try:
        for server in ordered.values():
            server.launch()
        for server in ordered.values():
            server.wait_ready()
        yield {name: server.port for name, server in ordered.items()}
    finally:
        for server in ordered.values():
            server.stop()


def wrk_at_once(
    ports: dict[str, int], path: str, seconds: float, connections: int, core: int
) -> dict[str, tuple[float, int]]:
    """`wrk` against every server at the same time, one wrk each, all on `core`:
    servers sharing a core for the same seconds share whatever the machine's
    other load takes from it, so the ratio of their throughputs is the ratio
    of what each serves on a core of its own."""
    with ThreadPoolExecutor(len(ports)) as pool:
        runs = {
            name: pool.submit(wrk, port, path, seconds, connections, core)
            for name, port in ports.items()
        }
        return {name: run.result() for name, run in runs.items()}


def tcp_ready(port: int, process: subprocess.Popen[Any], timeout: float = 10) -> None:
    """Wait until something accepts connections on `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")
