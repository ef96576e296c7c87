# /// script
# requires-python = ">=3.11"
# dependencies = ["httpx", "matplotlib", "prometheus-client"]
# ///
"""What the lag monitor, the watchdog and the middleware cost a rendered service.

Renders the template (async_io, ephemeral, load shedding on), then measures:

1. Throughput: requests per second `wrk` gets from GET /health on the rendered
   service, against a bare FastAPI app serving the very same handler, and, for
   scale, that bare app behind a no-op BaseHTTPMiddleware. One uvicorn worker
   each, same settings, server and wrk pinned to different cores. The variants
   take turns within each round (order rotating), and the ratio reported is the
   median of the per-round ratios, so a busy machine slows both sides alike.
   Goal: service / bare >= 0.97.
2. Per-request cost in-process, without sockets or other processes: the ASGI
   apps called directly, fastest of many interleaved batches (the least noisy
   figure on a shared machine): bare, + ObserveRequests (metrics and the
   load-shedding check, one layer), the service.
3. Idle CPU: the service's CPU use while no request arrives (the monitor wakes
   every LAG_SAMPLE_INTERVAL_MS, the watchdog about every LAG_THRESHOLD_MS),
   against the bare app's, and against a loop that only sleeps as often.
4. Stall detection: a route added for the benchmark holds the event loop for
   300 ms; how long after the stall began the watchdog's warning is logged, and
   how long after the stalled response /metrics counts the stall.

Usage (needs copier, uv and wrk on PATH; every process it starts is stopped):
    uv run bench/middleware_overhead.py [--rounds 8] [--duration 4]
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "bench_service"
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

base_http = FastAPI()
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
import time

os.environ["SHED_LAG_P99_MS"] = "1e9"  # the loop never yields here: no shedding

from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from {PACKAGE}.main import app as service
from {PACKAGE}.runtime.app import health
from {PACKAGE}.runtime.middleware import ObserveRequests
from {PACKAGE}.runtime.pressure import Pressure


def bare(*middleware):
    app = FastAPI()
    app.add_api_route("/health", health)
    for cls, options in middleware:
        app.add_middleware(cls, **options)
    return app


SCOPE = {{
    "type": "http", "asgi": {{"version": "3.0"}}, "http_version": "1.1",
    "method": "GET", "scheme": "http", "path": "/health", "raw_path": b"/health",
    "root_path": "", "query_string": b"", "headers": [(b"host", b"bench")],
    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
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
    async with LifespanManager(service) as running:
        apps = {{
            "bare FastAPI": bare(),
            "+ ObserveRequests": bare((ObserveRequests, {{"pressure": Pressure()}})),
            "service": running.app,
        }}
        best = dict.fromkeys(apps, float("inf"))
        for _ in range(300):
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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pinned(core: int) -> list[str]:
    """Pin to one core when there are two or more, so server and wrk don't mix."""
    return ["taskset", "-c", str(core)] if (os.cpu_count() or 1) > 1 else []


def render(workdir: Path) -> Path:
    project = workdir / "service"
    subprocess.run(
        ["copier", "copy", "--quiet", "--defaults", "--vcs-ref", "HEAD"]
        + ["--data", f"project_name={PACKAGE}", "--data", "workload=async_io"]
        + ["--data", "task_durability=ephemeral", str(REPO), str(project)],
        check=True,
    )
    subprocess.run(["uv", "sync", "--quiet"], cwd=project, check=True)
    (project / "bench_apps.py").write_text(APPS)
    return project


@contextmanager
def serving(
    project: Path, target: str, log: Path, **env: str
) -> Iterator[tuple[str, int]]:
    """Run `uvicorn bench_apps:<target>` (one worker, no access log) until exit."""
    port = free_port()
    command = pinned(0) + [str(project / ".venv/bin/python"), "-m", "uvicorn"]
    command += [f"bench_apps:{target}", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1", "--no-access-log", "--log-level", "warning"]
    with log.open("w") as stderr:
        server = subprocess.Popen(
            command, cwd=project, env={**os.environ, **env}, stderr=stderr
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health").raise_for_status()
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    message = f"{target} did not start:\n{log.read_text()}"
                    raise RuntimeError(message) from None
                time.sleep(0.1)
        yield url, server.pid
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def wrk(url: str, seconds: float) -> float:
    command = pinned(1) + ["wrk", "-t1", "-c32", f"-d{seconds:g}s", f"{url}/health"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed responses:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def throughput(
    project: Path, log: Path, rounds: int, seconds: float
) -> dict[str, list[float]]:
    variants = {
        "service": "service",
        "bare FastAPI": "bare",
        "BaseHTTPMiddleware": "base_http",
    }
    rps: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for round_ in range(rounds):
        order = names[round_ % 3 :] + names[: round_ % 3]
        for name in order:
            with serving(project, variants[name], log) as (url, _):
                wrk(url, 1)  # warm up
                rps[name].append(wrk(url, seconds))
        figures = "  ".join(f"{n} {rps[n][-1]:.0f}" for n in names)
        print(f"round {round_ + 1}: {figures} req/s", flush=True)
    return rps


def in_process(project: Path) -> dict[str, float]:
    script = project / "bench_in_process.py"
    script.write_text(IN_PROCESS)
    python = str(project / ".venv/bin/python")
    out = subprocess.run(
        pinned(0) + [python, script.name],
        cwd=project,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.splitlines()[-1])


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(project: Path, log: Path, seconds: float) -> dict[str, float]:
    """% of one core used while idle: service, bare app, a loop that only sleeps."""
    idle = {}
    for name, target in (("service", "service"), ("bare FastAPI", "bare")):
        with serving(project, target, log) as (_, pid):
            time.sleep(2)  # past startup
            before = cpu_seconds(pid)
            time.sleep(seconds)
            idle[name] = 100 * (cpu_seconds(pid) - before) / seconds
    python = str(project / ".venv/bin/python")
    command = [python, "-c", SLEEPER, "0.02", str(seconds)]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    idle["sleep(20 ms) loop"] = float(out)
    return idle


def lag_past_100_ms(http: httpx.Client) -> float:
    samples = {
        (s.name, s.labels.get("le")): s.value
        for family in text_string_to_metric_families(http.get("/metrics").text)
        for s in family.samples
    }
    count = samples[("event_loop_lag_seconds_count", None)]
    return count - samples[("event_loop_lag_seconds_bucket", "0.1")]


def stall_detection(
    project: Path, log: Path, stalls: int
) -> tuple[list[float], list[float]]:
    """Per stall: ms from its start to the watchdog's warning, and ms from the
    stalled response to /metrics counting it."""
    visible_ms = []
    # A warning for every stall; no shedding, which would refuse the next stall.
    env = {"LAG_WARNING_INTERVAL_S": "0", "SHED_LAG_P99_MS": "60000"}
    with (
        serving(project, "service", log, **env) as (url, _),
        httpx.Client(base_url=url, timeout=10) as http,
    ):
        for _ in range(stalls):
            before = lag_past_100_ms(http)
            http.get("/bench/stall", params={"ms": STALL_MS}).raise_for_status()
            answered = time.perf_counter()
            while lag_past_100_ms(http) <= before:
                if time.perf_counter() - answered > 5:
                    raise RuntimeError("the stall never showed in /metrics")
                time.sleep(0.001)
            visible_ms.append(1000 * (time.perf_counter() - answered))
            time.sleep(0.3)
    stamps = log.read_text().split()
    starts = [float(stamps[i + 1]) for i, w in enumerate(stamps) if w == "STALL"]
    warned = [float(stamps[i + 1]) for i, w in enumerate(stamps) if w == "WARNED"]
    if len(warned) != len(starts):
        message = f"{len(starts)} stalls, {len(warned)} warnings:\n{log.read_text()}"
        raise RuntimeError(message)
    warn_ms = [1000 * (w - s) for s, w in zip(starts, warned, strict=True)]
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
    axes[0].tick_params(axis="x", labelrotation=15)
    axes[0].set_title("GET /health over HTTP, 1 worker")
    axes[0].set_ylabel("requests/s (bars: median; dots: rounds)")

    axes[1].bar(list(per_request), list(per_request.values()), color=colors)
    axes[1].set_title("GET /health in-process (fastest batch)")
    axes[1].set_ylabel("µs per request")
    axes[1].tick_params(axis="x", labelrotation=15)

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


def paired(rps: dict[str, list[float]], name: str) -> list[float]:
    """Per-round ratios to the bare app, measured minutes apart at most."""
    return [a / b for a, b in zip(rps[name], rps["bare FastAPI"], strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=float, default=4, help="s per wrk run")
    parser.add_argument("--idle", type=float, default=15, help="s of idle sampling")
    parser.add_argument("--stalls", type=int, default=5)
    parser.add_argument(
        "--plot", type=Path, default=REPO / "bench/middleware_overhead.png"
    )
    args = parser.parse_args()
    for tool in ("copier", "uv", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found on PATH")

    with tempfile.TemporaryDirectory(prefix="loopsafe-bench-") as tmp:
        workdir = Path(tmp)
        print("rendering and installing the service ...", flush=True)
        project = render(workdir)
        log = workdir / "server.log"
        rps = throughput(project, log, args.rounds, args.duration)
        print("in-process per-request cost ...", flush=True)
        per_request = in_process(project)
        print("idle CPU ...", flush=True)
        idle = idle_cpu(project, log, args.idle)
        print("stall detection ...", flush=True)
        warn_ms, visible_ms = stall_detection(project, log, args.stalls)

    bare = per_request["bare FastAPI"]
    report = [
        "",
        f"throughput, GET /health ({args.rounds} rounds of {args.duration:g} s):",
    ]
    for name in rps:
        ratios = paired(rps, name)
        report.append(
            f"  {name:<20} median {statistics.median(rps[name]):>7.0f} req/s"
            f"  {statistics.median(ratios):.3f}x bare"
            f" (rounds {min(ratios):.2f}..{max(ratios):.2f})"
        )
    report.append("  goal: service >= 0.97x bare")
    report.append("per-request cost in-process (fastest of 300 batches):")
    for name, us in per_request.items():
        report.append(f"  {name:<20} {us:>6.1f} µs  (+{us - bare:.1f} µs)")
    report.append(f"idle CPU over {args.idle:g} s, % of one core:")
    for name, percent in idle.items():
        report.append(f"  {name:<20} {percent:.2f}")
    report += [
        f"a {STALL_MS} ms stall, {args.stalls} times"
        f" (LAG_THRESHOLD_MS {THRESHOLD_MS}):",
        f"  warning logged {statistics.median(warn_ms):.0f} ms after the stall"
        f" began (median; max {max(warn_ms):.0f})",
        f"  in /metrics {statistics.median(visible_ms):.1f} ms after the stalled"
        f" response (median; max {max(visible_ms):.1f})",
    ]
    print("\n".join(report))
    plot(args.plot, rps, per_request, idle, warn_ms)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
