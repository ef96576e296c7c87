# /// script
# requires-python = ">=3.11"
# dependencies = ["httpx", "matplotlib", "prometheus-client"]
# ///
"""What the lag monitor, the watchdog and the middleware cost a rendered service.

Renders the template (async_io, ephemeral, load shedding on), then measures:

1. Throughput: the most requests per second `wrk` gets from GET /health on the
   rendered service, against a bare FastAPI app serving the very same handler
   (and, for scale, that bare app behind a no-op BaseHTTPMiddleware). One
   uvicorn worker each, same settings; the server and wrk are pinned to
   different cores; variants alternate over several rounds, medians compared.
   Goal: service / bare >= 0.97.
2. Idle CPU: the service's CPU use while no request arrives (the monitor wakes
   every LAG_SAMPLE_INTERVAL_MS, the watchdog about every LAG_THRESHOLD_MS),
   against the bare app's.
3. Stall detection: a route added for the benchmark holds the event loop for
   300 ms; how long after the stall began the watchdog's warning is logged, and
   how long after the stalled response /metrics shows the stall.

Usage (needs copier, uv and wrk on PATH; every process it starts is stopped):
    uv run bench/middleware_overhead.py [--rounds 3] [--duration 8]
"""

import argparse
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

# Written into the rendered project: the three apps under test, a stall route
# on the service, and time stamps for the stall and for the watchdog's warning.
APPS = f'''
import logging
import sys
import time

from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware

from {PACKAGE}.main import app as service, health

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


logging.getLogger("{PACKAGE}.lag").addHandler(Stamp())
'''


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu_percent(url_pid: tuple[str, int], seconds: float) -> float:
    _, pid = url_pid
    time.sleep(2)  # past startup
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - before) / seconds


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
            http.get("/bench/stall", params={"ms": 300}).raise_for_status()
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
        raise RuntimeError(f"{len(starts)} stalls, {len(warned)} warnings")
    warn_ms = [1000 * (w - s) for s, w in zip(starts, warned, strict=True)]
    return warn_ms, visible_ms


def plot(
    path: Path,
    rps: dict[str, list[float]],
    idle: dict[str, float],
    warn_ms: list[float],
    threshold_ms: float,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(13, 4.2))
    names = list(rps)
    medians = [statistics.median(rps[n]) for n in names]
    left.bar(names, medians, color=["#4c72b0", "#55a868", "#c44e52"][: len(names)])
    for i, name in enumerate(names):
        left.scatter([i] * len(rps[name]), rps[name], color="black", s=10, zorder=3)
        left.annotate(
            f"{medians[i] / medians[1]:.2f}x", (i, medians[i]), ha="center", va="bottom"
        )
    left.set_title("GET /health, 1 worker (median of rounds)")
    left.set_ylabel("requests/s")
    middle.bar(list(idle), list(idle.values()), color=["#4c72b0", "#55a868"])
    middle.set_title("CPU while idle")
    middle.set_ylabel("% of one core")
    right.plot(range(1, len(warn_ms) + 1), warn_ms, "o-", label="watchdog warning")
    right.axhline(threshold_ms, color="grey", linestyle="--", label="LAG_THRESHOLD_MS")
    right.set_ylim(0, max(warn_ms + [threshold_ms]) * 1.3)
    right.set_title("300 ms stall: time to the warning")
    right.set_xlabel("stall")
    right.set_ylabel("ms after the stall began")
    right.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8, help="seconds per wrk run")
    parser.add_argument(
        "--idle", type=float, default=10, help="seconds of idle CPU sampling"
    )
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

        variants = {
            "service": "service",
            "bare FastAPI": "bare",
            "BaseHTTPMiddleware": "base_http",
        }
        rps: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(1, args.rounds + 1):
            for name, target in variants.items():
                with serving(project, target, log) as (url, _):
                    wrk(url, 2)  # warm up
                    rps[name].append(wrk(url, args.duration))
                print(
                    f"round {round_}: {name:<20} {rps[name][-1]:>9.0f} req/s",
                    flush=True,
                )

        idle = {}
        for name, target in (("service", "service"), ("bare FastAPI", "bare")):
            with serving(project, target, log) as server:
                idle[name] = idle_cpu_percent(server, args.idle)

        warn_ms, visible_ms = stall_detection(project, log, args.stalls)

    threshold_ms = 100.0  # the rendered default (lag_threshold_ms)
    bare, service, base_http = (
        statistics.median(rps[name])
        for name in ("bare FastAPI", "service", "BaseHTTPMiddleware")
    )
    idle_cost = idle["service"] - idle["bare FastAPI"]
    report = [
        "",
        f"throughput, GET /health (median of {args.rounds} x {args.duration:g} s):",
        f"  bare FastAPI               {bare:>8.0f} req/s",
        f"  rendered service           {service:>8.0f} req/s  {service / bare:.3f}x"
        "  (goal >= 0.97x)",
        f"  bare + BaseHTTPMiddleware  {base_http:>8.0f} req/s"
        f"  {base_http / bare:.3f}x",
        f"idle CPU over {args.idle:g} s, % of one core:",
        f"  service {idle['service']:.2f}, bare {idle['bare FastAPI']:.2f}:"
        f" monitor + watchdog cost {idle_cost:.2f}",
        f"a 300 ms stall, {args.stalls} times (LAG_THRESHOLD_MS {threshold_ms:.0f}):",
        f"  warning logged {statistics.median(warn_ms):.0f} ms after the stall"
        f" began (median; max {max(warn_ms):.0f})",
        f"  in /metrics {statistics.median(visible_ms):.1f} ms after the stalled"
        f" response (median; max {max(visible_ms):.1f})",
    ]
    print("\n".join(report))
    plot(args.plot, rps, idle, warn_ms, threshold_ms)
    print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
