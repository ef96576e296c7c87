"""What the lag monitor, the watchdog and the middleware cost a rendered service.

Scenario 4 calls these on the rendered async_io service (load shedding on),
after `prepare` wrote bench_apps.py beside it:

1. `throughput`: requests per second wrk gets from GET /health on the service,
   on a bare FastAPI app serving the very same handler, as FastAPI() comes and
   with FastAPI's own OpenTelemetry hooks off, as the service has them (what
   the two differ by is the service's own layers), and, for scale, on that
   bare app behind a no-op BaseHTTPMiddleware. One uvicorn worker each, same
   settings; each round fresh servers side by side on core 0, loaded at once
   by one wrk each on core 1, so a busy machine slows all alike.
2. `in_process`: per-request cost without sockets or other processes: the ASGI
   apps called directly, fastest of many interleaved batches: bare, bare with
   FastAPI's telemetry off, + observe_requests (metrics, the load-shedding
   check and the body limit, one layer), the service.
3. `idle_cpu`: the service's CPU use while no request arrives (the monitor
   wakes every LAG_SAMPLE_INTERVAL_MS, the watchdog about every
   LAG_THRESHOLD_MS), against the bare app's, and a loop that only sleeps as often.
4. `stall_detection`: a route added for the benchmark holds the event loop for
   300 ms; how long after the stall began the watchdog's warning is logged,
   and how long after the stalled response /metrics counts the stall.
"""

import json
import re
import statistics
import subprocess
import textwrap
import time
import urllib.request
from pathlib import Path

from .services import Project, Server, pinned, project_env, side_by_side, wrk_at_once

CONNECTIONS = 32

PACKAGE = "bench_service"  # replaced by the rendered project's package
STALL_MS = 300
THRESHOLD_MS = 100  # the rendered default of lag_threshold_ms

# Written into the rendered project: the apps under test, a stall route on the
# service, and time stamps for the stall and for the watchdog's warning.
APPS = f'''
import logging
import sys
import time

from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware

from {PACKAGE}.main import app as service
from {PACKAGE}.runtime.app import health

bare = FastAPI()
bare.add_api_route("/health", health)

# FastAPI's own OpenTelemetry hooks off, as the service has them: what this
# one and the service differ by is the service's own layers.
OFF = {{"tracing": False, "metrics": False, "logs": False}}
bare_quiet = FastAPI(telemetry=OFF)
bare_quiet.add_api_route("/health", health)

base_http = FastAPI(telemetry=OFF)
base_http.add_api_route("/health", health)


async def passthrough(request, call_next):
    return await call_next(request)


base_http.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)


async def stall(ms: int) -> dict[str, int]:
    print(f"STALL {{time.time()}}", file=sys.stderr, flush=True)
    deadline = time.perf_counter() + ms / 1000
    while time.perf_counter() < deadline:
        pass
    return {{"stalled_ms": ms}}


service.add_api_route("/bench/stall", stall)


class Stamp(logging.Handler):
    def emit(self, record):
        print(f"WARNED {{record.created}}", file=sys.stderr, flush=True)


logging.getLogger("{PACKAGE}.runtime.lag").addHandler(Stamp())
'''

# Run with the project's Python: per-request cost of each app, called directly.
IN_PROCESS = f"""
import asyncio
import json
import os
import sys
import time

os.environ["SHED_LAG_P99_MS"] = "1e9"  # the loop never yields here: no shedding

from fastapi import FastAPI

from {PACKAGE}.main import app as service
from {PACKAGE}.runtime.app import health
from {PACKAGE}.runtime.bodies import BodyLimit
from {PACKAGE}.runtime.middleware import observe_requests
from {PACKAGE}.runtime.pressure import Pressure


# FastAPI's own OpenTelemetry hooks off, as the service has them.
OFF = {{"tracing": False, "metrics": False, "logs": False}}


def bare(*middleware, **options):
    app = FastAPI(**options)
    app.add_api_route("/health", health)
    for cls, options in middleware:
        app.add_middleware(cls, **options)
    return app


SCOPE = {{
    "type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1",
    "method": "GET", "scheme": "http", "path": "/health", "raw_path": b"/health",
    "root_path": "", "query_string": b"", "headers": [(b"host", b"bench")],
    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {{}},
}}


async def receive():
    return {{"type": "http.request", "body": b"", "more_body": False}}


async def send(message):
    pass


async def batch(app, requests=200):
    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), receive, send)
    return (time.perf_counter() - start) / requests * 1e6


async def main():
    async with service.router.lifespan_context(service):
        apps = {{
            "bare FastAPI": bare(),
            "bare FastAPI, its telemetry off": bare(telemetry=OFF),
            "+ observe_requests": bare(
                (
                    observe_requests,
                    {{"pressure": Pressure(), "body_limit": BodyLimit()}},
                ),
                telemetry=OFF,
            ),
            "service": service,
        }}
        best = dict.fromkeys(apps, float("inf"))
        for _ in range(int(sys.argv[1])):
            for name, app in apps.items():
                best[name] = min(best[name], await batch(app))
            await asyncio.sleep(0.001)  # the monitor samples in between
    print(json.dumps(best))


asyncio.run(main())
"""

# Run with the project's Python: CPU of a loop that only sleeps, as the monitor does.
SLEEPER = """
import asyncio, sys, time

async def main(interval, seconds):
    async def sleep_forever():
        while True:
            await asyncio.sleep(interval)
    task = asyncio.create_task(sleep_forever())
    start = time.process_time()
    await asyncio.sleep(seconds)
    print(100 * (time.process_time() - start) / seconds)
    task.cancel()

import uvloop
uvloop.run(main(float(sys.argv[1]), float(sys.argv[2])))
"""


def prepare(project: Project) -> None:
    """bench_apps.py beside the rendered service: the apps measured here."""
    (project.path / "bench_apps.py").write_text(APPS.replace(PACKAGE, project.package))


def serving(project: Project, target: str, log_dir: Path, **env: str) -> Server:
    """`uvicorn bench_apps:<target>` on core 0 (one worker, no access log)."""
    app = f"bench_apps:{target}"
    server = Server(f"overhead-{target}", project.python, app, project.path, env)
    server.log_path = log_dir / f"overhead-{target}.log"
    server.log_path.unlink(missing_ok=True)  # its stamps are this server's only
    server.core = 0
    return server


def throughput(
    project: Project, log_dir: Path, rounds: int, seconds: float, idle_s: float
) -> tuple[dict[str, list[float]], dict[str, float], list[float], list[float]]:
    """Requests per second per variant and round: every round, a fresh server of
    each variant, side by side on core 0 and loaded at once, one wrk each on
    core 1 (see user_route.throughput: why side by side); and, on the servers
    of the first round, their idle CPU before the load (`idle_cpu`), and on the
    service of the last, after it, the stall detection (`stall_detection`)."""
    names = list(VARIANTS)
    rps: dict[str, list[float]] = {name: [] for name in names}
    idle: dict[str, float] = {}
    for round_ in range(rounds):
        # A warning for every stall; no shedding, which would refuse the next.
        servers = {
            name: serving(
                project,
                VARIANTS[name],
                log_dir,
                **(STALL_ENV if name == SERVICE else {}),
            )
            for name in names
        }
        with side_by_side(servers, round_) as ports:
            if round_ == 0:
                for name in (SERVICE, BARE):
                    idle[name] = idle_cpu(servers[name], idle_s)
            wrk_at_once(ports, "/health", 1, CONNECTIONS, core=1)  # warm up
            for name, (served, _) in wrk_at_once(
                ports, "/health", seconds, CONNECTIONS, core=1
            ).items():
                rps[name].append(served)
            if round_ == rounds - 1:
                warn_ms, visible_ms = stall_detection(servers[SERVICE])
    idle["sleep(20 ms) loop"] = sleeper_cpu(project, idle_s)
    return rps, idle, warn_ms, visible_ms


SERVICE, BARE = "service", "bare FastAPI"
# The variants compared: name -> app in bench_apps.py.
VARIANTS = {
    SERVICE: "service",
    BARE: "bare",
    "bare FastAPI, its telemetry off": "bare_quiet",
    "BaseHTTPMiddleware": "base_http",
}


def in_process(project: Project, batches: int) -> dict[str, float]:
    script = project.path / "bench_in_process.py"
    script.write_text(IN_PROCESS.replace(PACKAGE, project.package))
    out = subprocess.run(
        pinned(0) + [str(project.python), script.name, str(batches)],
        cwd=project.path,
        env=project_env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    figures: dict[str, float] = json.loads(out.splitlines()[-1])
    return figures


def idle_cpu(server: Server, seconds: float) -> float:
    """% of one core the server uses while no request arrives."""
    time.sleep(1)  # past startup
    before = server.cpu_seconds()
    time.sleep(seconds)
    return 100 * (server.cpu_seconds() - before) / seconds


def sleeper_cpu(project: Project, seconds: float) -> float:
    """% of one core a loop uses that only sleeps 20 ms at a time, as the monitor."""
    command = [str(project.python), "-c", SLEEPER, "0.02", str(seconds)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return float(out)


COUNT = re.compile(r"^event_loop_lag_seconds_count (\S+)$", re.MULTILINE)
PAST_100_MS = re.compile(
    r'^event_loop_lag_seconds_bucket\{le="0\.1"\} (\S+)$', re.MULTILINE
)


def lag_past_100_ms(server: Server) -> float:
    """Lag samples above 100 ms so far, from the service's /metrics."""
    with urllib.request.urlopen(server.url("/metrics"), timeout=10) as answer:
        text = answer.read().decode()
    count, within = COUNT.search(text), PAST_100_MS.search(text)
    if count is None or within is None:
        raise RuntimeError(f"no event_loop_lag_seconds histogram in /metrics:\n{text}")
    return float(count.group(1)) - float(within.group(1))


STALL_ENV = {"LAG_WARNING_INTERVAL_S": "0", "SHED_LAG_P99_MS": "60000"}


def stall_detection(server: Server, stalls: int = 1) -> tuple[list[float], list[float]]:
    """Per stall: ms from its start to the watchdog's warning, and ms from the
    stalled response to /metrics counting it. `server` serves the service with
    STALL_ENV."""
    visible_ms = []
    for _ in range(stalls):
        before = lag_past_100_ms(server)
        stall = server.url(f"/bench/stall?ms={STALL_MS}")
        with urllib.request.urlopen(stall, timeout=10):
            pass
        answered = time.perf_counter()
        while lag_past_100_ms(server) <= before:
            if time.perf_counter() - answered > 5:
                raise RuntimeError("the stall never showed in /metrics")
            time.sleep(0.001)
        visible_ms.append(1000 * (time.perf_counter() - answered))
        time.sleep(0.3)
    text = server.log_path.read_text()
    stamps = text.split()
    starts = [float(stamps[i + 1]) for i, w in enumerate(stamps) if w == "STALL"]
    warned = [float(stamps[i + 1]) for i, w in enumerate(stamps) if w == "WARNED"]
    # Each stall's warning: the first one logged after it began.
    warn_ms = []
    for begun in starts[-stalls:]:
        after = [moment for moment in warned if moment >= begun]
        if not after:
            raise RuntimeError(f"no warning for the stall at {begun}:\n{text}")
        warn_ms.append(1000 * (after[0] - begun))
    return warn_ms, visible_ms


def plot(
    path: Path,
    rps: dict[str, list[float]],
    per_request: dict[str, float],
    idle: dict[str, float],
    warn_ms: list[float],
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 4.4))
    colors = ["#4c72b0", "#55a868", "#c44e52", "#8172b2"]

    names = list(rps)
    medians = [statistics.median(rps[n]) for n in names]
    axes[0].bar(names, medians, color=colors[: len(names)])
    for i, name in enumerate(names):
        axes[0].scatter([i] * len(rps[name]), rps[name], color="black", s=8, zorder=3)
    ratios = {n: statistics.median(paired(rps, n)) for n in names}
    for i, name in enumerate(names):
        label = f"{ratios[name]:.2f}x bare"
        top = max(rps[name])
        axes[0].annotate(label, (i, top), ha="center", va="bottom")
    axes[0].set_xticks(range(len(names)), [textwrap.fill(n, 16) for n in names])
    axes[0].set_title("GET /health over HTTP, side by side on one core")
    axes[0].set_ylabel("requests/s (bars: median; dots: rounds)")

    axes[1].bar(range(len(per_request)), list(per_request.values()), color=colors)
    axes[1].set_xticks(
        range(len(per_request)), [textwrap.fill(n, 16) for n in per_request]
    )
    axes[1].set_title("GET /health in-process (fastest batch)")
    axes[1].set_ylabel("µs per request")

    axes[2].bar(list(idle), list(idle.values()), color=colors)
    axes[2].set_title("CPU while idle")
    axes[2].set_ylabel("% of one core")
    axes[2].tick_params(axis="x", labelrotation=15)

    axes[3].plot(range(1, len(warn_ms) + 1), warn_ms, "o-", label="warning logged")
    axes[3].axhline(THRESHOLD_MS, color="grey", linestyle="--", label="threshold")
    axes[3].set_ylim(0, max([*warn_ms, THRESHOLD_MS]) * 1.3)
    axes[3].set_title(f"{STALL_MS} ms stall: time to the warning")
    axes[3].set_xlabel("stall")
    axes[3].set_ylabel("ms after the stall began")
    axes[3].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def paired(rps: dict[str, list[float]], name: str) -> list[float]:
    """Per-round ratios to the bare app, measured minutes apart at most."""
    return [a / b for a, b in zip(rps[name], rps["bare FastAPI"], strict=True)]
