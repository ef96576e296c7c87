"""A route of the user's own on a rendered service, against bare FastAPI (issue 9).

    uv run python bench/user_route.py [--pairs 6] [--duration 5] [--rounds 40]

Renders the template (async_io, ephemeral, load shedding on, examples on: the
realistic worst case; and the same with examples off), appends to the rendered
`routes.py` the route

    @router.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

and writes a bare FastAPI app with that very route. Then:

1. Throughput: requests per second wrk (one thread, 32 connections) gets from
   GET /hello on the service and on the bare app. uvicorn with uvloop and
   httptools, one worker, no access log, the same settings for both, pinned to
   core 0, wrk pinned to core 1, a fresh server per measurement, warmed up
   first. The two take turns in pairs (order alternating) and each pair gives
   a ratio: service / bare. Goal (measured, not asserted): the median ratio is
   at least 0.97.
2. Per-request cost in-process, no sockets: each ASGI app called directly with
   a minimal scope, receive and send, yielding to the loop after each request
   (so the lag monitor runs as it would in a server), the fastest of many
   interleaved batches, for each layer, each on top of the one before: bare
   FastAPI (the route added to the app); the route in an APIRouter that the app
   includes, as the service's routes.py has it; + ObserveRequests (metrics and
   the load-shedding check); + the rendered app's lifespan running (lag
   monitor, watchdog); the full rendered app with examples; the rendered app
   without them (its own process, with its own bare reference).

It prints every figure, the load average before and after, a plot, and at the
end one line `RESULT {json}` for bench/scenarios/s4_overhead.py. Needs wrk
(`apt-get install -y wrk`) and taskset; every process it starts is stopped.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

from services import REPO, Project, free_port, kill, project_env, spawn

GOAL = 0.97
CONNECTIONS = 32
USER_ROUTE = """

@router.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
"""
BARE_APP = '''"""Bare FastAPI with the user's route, to compare the service with."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
'''

# Run by the project's Python: µs per request of each layer, called directly.
# argv: the layers to measure, rounds, requests per batch; prints JSON.
IN_PROCESS = """
import asyncio
import json
import sys
from functools import partial
from time import perf_counter

import uvloop
from fastapi import APIRouter, FastAPI

from bare_app import hello

layers, rounds, requests = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])

SCOPE = {
    "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
    "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/hello",
    "raw_path": b"/hello", "root_path": "", "query_string": b"",
    "headers": [(b"host", b"bench"), (b"user-agent", b"bench")],
    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {},
}
status = []


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def send(message):
    if message["type"] == "http.response.start":
        status.append(message["status"])


def bare():
    app = FastAPI()
    app.add_api_route("/hello", hello)
    return app


def routed(lifespan=None):
    # As create_app adds routes.router: included, not added to the app itself.
    router = APIRouter()
    router.add_api_route("/hello", hello)
    app = FastAPI(lifespan=lifespan)
    app.include_router(router)
    return app


def observed(lifespan=None):
    from bench_service.runtime.middleware import ObserveRequests
    from bench_service.runtime.pressure import Pressure

    app = routed(lifespan)
    app.state.pressure = Pressure()
    app.add_middleware(ObserveRequests, pressure=app.state.pressure)
    return app


def with_lifespan():
    from bench_service.runtime.app import lifespan
    from bench_service.settings import get_settings

    return observed(partial(lifespan, get_settings=get_settings))


def service():
    from bench_service.main import app

    return app


BUILD = {
    "bare FastAPI": (bare, False),
    "+ APIRouter (included)": (routed, False),
    "+ ObserveRequests": (observed, False),
    "+ lifespan (lag monitor)": (with_lifespan, True),
    "service": (service, True),
}


async def batch(app):
    start = perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), receive, send)
        await asyncio.sleep(0)  # a server's loop turns between requests
    return (perf_counter() - start) / requests * 1e6


async def measure(app, lifespan):
    if not lifespan:
        return await batch(app)
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.03)  # the monitor is sampling
        return await batch(app)


apps = {name: (BUILD[name][0](), BUILD[name][1]) for name in layers}
best = dict.fromkeys(apps, float("inf"))
for _ in range(rounds):
    for name, (app, lifespan) in apps.items():
        # A new loop for every batch: the lifespan shuts the loop's default
        # executor down on exit, so it starts only once per loop; and so only
        # one lag monitor runs at a time.
        best[name] = min(best[name], uvloop.run(measure(app, lifespan)))
if set(status) != {200}:
    raise SystemExit(f"statuses other than 200: {sorted(set(status))}")
print(json.dumps(best))
"""


def log(message: str) -> None:
    print(message, flush=True)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def pinned(core: int) -> list[str]:
    """Pin to one core when there are two or more, so server and wrk don't mix."""
    return ["taskset", "-c", str(core)] if (os.cpu_count() or 1) > 1 else []


def render(template: Path, work: Path) -> dict[str, Project]:
    """The service with examples and without, the user's route added to each."""
    answers = {
        "project_name": "bench service",
        "workload": "async_io",
        "task_durability": "ephemeral",
        "shed_load": True,
    }
    wanted = {
        work / "examples": answers | {"examples": True},
        work / "no-examples": answers | {"examples": False},
    }
    projects = Project.render_all(template, wanted)
    for project in projects:
        routes = project.path / "src" / project.package / "routes.py"
        routes.write_text(routes.read_text() + USER_ROUTE)
        (project.path / "bare_app.py").write_text(BARE_APP)
    return {project.path.name: project for project in projects}


def serve(project: Project, app: str, log_path: Path) -> tuple[subprocess.Popen, int]:
    """uvicorn on core 0, uvloop and httptools, one worker, no access log."""
    port = free_port()
    command = pinned(0) + [str(project.python), "-m", "uvicorn", app]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--loop", "uvloop", "--http", "httptools"]
    command += ["--no-access-log", "--log-level", "warning"]
    with log_path.open("ab") as out:
        server = spawn(
            command,
            cwd=project.path,
            env=project_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello", timeout=5):
                return server, port
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                kill(server)
                raise RuntimeError(f"{app} did not start; see {log_path}") from None
            time.sleep(0.1)


def wrk(port: int, seconds: int) -> tuple[float, int]:
    """Requests per second, and requests answered, in `seconds` of wrk."""
    command = pinned(1) + ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s"]
    command.append(f"http://127.0.0.1:{port}/hello")
    process = spawn(command, stdout=subprocess.PIPE, text=True)
    try:
        out, _ = process.communicate(timeout=seconds + 15)
    finally:
        kill(process)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rps is None or count is None:
        raise RuntimeError(f"no figures in wrk's output:\n{out}")
    return float(rps.group(1)), int(count.group(1))


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used (user + system), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(
    project: Project, pairs: int, seconds: int, warmup: int, log_path: Path
) -> list[dict]:
    """Service and bare app in turns, a fresh server each: one ratio per pair.

    Also the server's CPU time per request. While the server has its core to
    itself it is saturated, and bare µs ÷ service µs equals the throughput
    ratio; when other processes take turns on its core, its throughput drops
    but its CPU time per request much less, and this ratio is the steadier.
    """
    apps = {"service": f"{project.package}.main:app", "bare": "bare_app:app"}
    results = []
    for pair in range(pairs):
        order = ["bare", "service"] if pair % 2 == 0 else ["service", "bare"]
        figures = {"load": os.getloadavg()[0]}
        for name in order:
            server, port = serve(project, apps[name], log_path)
            try:
                wrk(port, warmup)
                cpu = cpu_seconds(server.pid)
                figures[name], answered = wrk(port, seconds)
                cpu = cpu_seconds(server.pid) - cpu
            finally:
                kill(server)
            figures[f"{name}_cpu_us"] = cpu / answered * 1e6
        figures["ratio"] = figures["service"] / figures["bare"]
        figures["cpu_ratio"] = figures["bare_cpu_us"] / figures["service_cpu_us"]
        results.append(figures)
        log(
            f"pair {pair + 1}: bare {figures['bare']:.0f}  service "
            f"{figures['service']:.0f} req/s  ratio {figures['ratio']:.3f};"
            f" CPU per request bare {figures['bare_cpu_us']:.1f}  service"
            f" {figures['service_cpu_us']:.1f} µs  ratio {figures['cpu_ratio']:.3f}"
            f"  (load {figures['load']:.2f})"
        )
    return results


def in_process(project: Project, layers: list[str], rounds: int, requests: int):
    script = project.path / "bench_in_process.py"
    script.write_text(IN_PROCESS)
    command = pinned(0) + [str(project.python), script.name, ",".join(layers)]
    command += [str(rounds), str(requests)]
    out = subprocess.run(
        command,
        cwd=project.path,
        env=project_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"in-process run failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def plot(path: Path, pairs: list[dict], layers: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))
    xs = range(1, len(pairs) + 1)
    for name, color in (("bare", "#4c72b0"), ("service", "#dd8452")):
        axes[0].plot(xs, [p[name] for p in pairs], "o-", color=color, label=name)
    axes[0].set_ylim(bottom=0)
    for ax in axes[:2]:
        ax.set_xticks(list(xs))
    axes[0].set_title("GET /hello over HTTP, 1 worker (wrk)")
    axes[0].set_xlabel("pair")
    axes[0].set_ylabel("requests/s")
    axes[0].legend(loc="lower right")

    ratios = [p["ratio"] for p in pairs]
    axes[1].plot(xs, ratios, "o-", color="#55a868", label="req/s: service ÷ bare")
    cpu = [p["cpu_ratio"] for p in pairs]
    axes[1].plot(xs, cpu, "s--", color="#8172b3", label="CPU µs/req: bare ÷ service")
    axes[1].axhline(GOAL, color="grey", linestyle="--", label=f"goal {GOAL}")
    median = statistics.median(ratios)
    axes[1].axhline(
        median, color="#55a868", linestyle=":", label=f"median {median:.3f}"
    )
    axes[1].set_ylim(
        min([*ratios, *cpu, GOAL]) - 0.05, max([*ratios, *cpu, 1.0]) + 0.05
    )
    axes[1].set_title("Throughput ratio per pair")
    axes[1].set_xlabel("pair")
    axes[1].legend(loc="best", fontsize="small")

    names = list(layers)
    values = list(layers.values())
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    bars = axes[2].bar(range(len(names)), values, color=colors[: len(names)])
    base = layers["bare FastAPI"]
    labels = [f"{values[0]:.1f}"] + [f"+{value - base:.1f}" for value in values[1:]]
    axes[2].bar_label(bars, labels=labels)
    axes[2].set_xticks(
        range(len(names)), [textwrap.fill(n, 12, break_long_words=False) for n in names]
    )
    axes[2].tick_params(axis="x", labelsize=8)
    axes[2].set_title("GET /hello in-process (fastest batch)")
    axes[2].set_ylabel("µs per request")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--duration", type=int, default=5, help="s per wrk run")
    parser.add_argument("--warmup", type=int, default=2, help="s of wrk first")
    parser.add_argument("--rounds", type=int, default=40, help="in-process batches")
    parser.add_argument("--requests", type=int, default=1000, help="per batch")
    parser.add_argument("--template", type=Path, default=REPO)
    parser.add_argument("--plot", type=Path, default=REPO / "bench/user_route.png")
    parser.add_argument(
        "--work", type=Path, help="renders and logs (default: temporary)"
    )
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found on PATH (apt-get install -y {tool})")

    with tempfile.TemporaryDirectory(prefix="loopsafe-bench-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        log(f"rendering from {args.template} ...")
        projects = render(args.template.resolve(), work)
        service = projects["examples"]

        before = load()
        log(f"throughput, load average {before}:")
        pairs = throughput(
            service, args.pairs, args.duration, args.warmup, work / "server.log"
        )
        after = load()

        log(f"in-process per-request cost, load average {after}:")
        per_layer = in_process(
            service,
            [
                "bare FastAPI",
                "+ APIRouter (included)",
                "+ ObserveRequests",
                "+ lifespan (lag monitor)",
                "service",
            ],
            args.rounds,
            args.requests,
        )
        plain = in_process(
            projects["no-examples"],
            ["bare FastAPI", "service"],
            args.rounds,
            args.requests,
        )
        in_process_load = load()

    layers = {
        "bare FastAPI": per_layer["bare FastAPI"],
        "+ APIRouter (included)": per_layer["+ APIRouter (included)"],
        "+ ObserveRequests": per_layer["+ ObserveRequests"],
        "+ lifespan (lag monitor)": per_layer["+ lifespan (lag monitor)"],
        "service, examples": per_layer["service"],
        # Its own process: its cost over its own bare app, added to this one's.
        "service, no examples": per_layer["bare FastAPI"]
        + plain["service"]
        - plain["bare FastAPI"],
    }
    ratios = [pair["ratio"] for pair in pairs]
    median = statistics.median(ratios)
    report = [
        "",
        f"GET /hello, {len(pairs)} pairs of {args.duration:g} s after"
        f" {args.warmup:g} s of warm-up (wrk -t1 -c{CONNECTIONS}):",
    ]
    for name in ("bare", "service"):
        values = [pair[name] for pair in pairs]
        report.append(
            f"  {name:<8} median {statistics.median(values):>7.0f} req/s"
            f"  [{min(values):.0f}–{max(values):.0f}]"
        )
    report.append(
        f"  service ÷ bare: median {median:.3f} [{min(ratios):.3f}–{max(ratios):.3f}]"
        f"  pairs: {' '.join(f'{r:.3f}' for r in ratios)}"
    )
    report.append(f"  goal ≥ {GOAL}: {'met' if median >= GOAL else 'MISSED'}")
    for name in ("bare", "service"):
        values = [pair[f"{name}_cpu_us"] for pair in pairs]
        report.append(
            f"  {name:<8} server CPU per request: median"
            f" {statistics.median(values):.1f} µs [{min(values):.1f}–{max(values):.1f}]"
        )
    cpu_ratios = [pair["cpu_ratio"] for pair in pairs]
    report.append(
        f"  bare µs ÷ service µs: median {statistics.median(cpu_ratios):.3f}"
        f" [{min(cpu_ratios):.3f}–{max(cpu_ratios):.3f}]"
    )
    report.append(f"  load average before {before}, after {after}")
    report.append(
        f"per-request cost in-process (fastest of {args.rounds} batches of"
        f" {args.requests}), load average after {in_process_load}:"
    )
    base = layers["bare FastAPI"]
    for name, us in layers.items():
        report.append(f"  {name:<26} {us:>6.1f} µs  (+{us - base:.1f} µs)")
    report.append(
        f"  (without examples, own process: bare {plain['bare FastAPI']:.1f} µs,"
        f" service {plain['service']:.1f} µs)"
    )
    log("\n".join(report))
    plot(args.plot, pairs, layers)
    log(f"plot: {args.plot}")
    result = {
        "pairs": pairs,
        "ratio_median": median,
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "load_before": before,
        "load_after": after,
        "in_process_us": layers,
        "in_process_no_examples_own_process": plain,
        "in_process_load_after": in_process_load,
    }
    log("RESULT " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
