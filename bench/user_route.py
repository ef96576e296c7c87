"""A route of the user's own on a rendered service, against bare FastAPI (issue 9).

Scenario 4 calls these on the rendered async_io service (load shedding and
examples on: the realistic worst case) after `prepare` appended to its
`routes.py` the route

    @router.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

and wrote beside it two bare FastAPI apps with that very route: FastAPI() as
it comes, and FastAPI with its own OpenTelemetry hooks off, as the service has
them (they look for configured providers on every request). Then:

1. `throughput`: requests per second wrk (one thread, 32 connections) gets from
   GET /hello on the service and on both bare apps: uvicorn, one worker, no
   access log, the same settings for all, each round a fresh server of every
   layer side by side on core 0, loaded at once by one wrk each on core 1, warmed
   up first. Each round gives the ratios service ÷ bare (the goal), service ÷
   telemetry-off bare (what the service's own layers cost) and the servers'
   CPU time per request.
2. `in_process`: per-request cost without sockets, each ASGI app called
   directly with a minimal scope, yielding to the loop after each request (so
   the lag monitor runs as in a server), the fastest of many interleaved
   batches, each layer on top of the one before: bare FastAPI; its telemetry
   off; the route in an APIRouter whose routes create_app registers on the
   app; + observe_requests (metrics, the load-shedding check and the body
   limit); + the rendered app's lifespan (lag monitor, watchdog); the full
   rendered app.
3. `instructions`: what the server executes per request, counted by
   cachegrind (valgrind): the same figure on a quiet machine and a busy one,
   where the two above are as noisy as the machine. Each app is served under
   cachegrind twice, for a few and for many sequential keep-alive requests;
   the difference of the two totals over the difference of the two counts
   cancels start-up and shutdown. bare ÷ service is the throughput ratio the
   server's CPU allows (the same instructions per cycle assumed for both).
   The lag monitor samples every 600 ms instead of 20 ms: cachegrind runs the
   server about 30 times slower, so it samples as often per request as it
   would natively; shedding is off, as the monitor would see the slowdown as
   lag.
"""

import http.client
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .services import (
    Project,
    Server,
    free_port,
    pinned,
    project_env,
    side_by_side,
    wrk_at_once,
)

GOAL = 0.97
CONNECTIONS = 32
USER_ROUTE = """

@router.get("/hello")
async def hello() -> dict[str, str]:
    return {"hello": "world"}
"""
BARE_APP = '''"""Bare FastAPI with the user's route, to compare the service with: as
FastAPI() comes, and with FastAPI's own OpenTelemetry hooks off, as the service
has them when OpenTelemetry is not asked for."""

from fastapi import FastAPI


async def hello() -> dict[str, str]:
    return {"hello": "world"}


app = FastAPI()
app.add_api_route("/hello", hello)
OFF = {"tracing": False, "metrics": False, "logs": False}
app_without_telemetry = FastAPI(telemetry=OFF)
app_without_telemetry.add_api_route("/hello", hello)
'''

# The service's layers, each on the one before, for the route: written beside
# the service as bench_layers.py and served like the apps above.
LAYERS_APP = '''"""The user's route on the service's layers, each on the one before."""

from functools import partial

from fastapi import APIRouter, FastAPI

from bare_app import OFF, hello
from bench_service.runtime.app import add_routes, lifespan
from bench_service.runtime.bodies import BodyLimit
from bench_service.runtime.middleware import observe_requests
from bench_service.runtime.pressure import Pressure
from bench_service.settings import get_settings


def routed_app(lifespan=None):
    # As create_app builds the app (FastAPI's telemetry off) and adds
    # routes.router: each route registered on the app itself.
    router = APIRouter()
    router.add_api_route("/hello", hello)
    app = FastAPI(lifespan=lifespan, telemetry=OFF)
    add_routes(app, router)
    return app


def observed_app(lifespan=None):
    app = routed_app(lifespan)
    app.state.pressure = Pressure()
    app.state.body_limit = BodyLimit()
    app.add_middleware(
        observe_requests,
        pressure=app.state.pressure,
        body_limit=app.state.body_limit,
    )
    return app


routed = routed_app()
observed = observed_app()
with_lifespan = observed_app(partial(lifespan, get_settings=get_settings))
'''

# Run by the project's Python: µs per request of each layer, called directly.
# argv: the apps to measure ("module:attribute"), rounds, requests per batch;
# prints JSON.
IN_PROCESS = """
import asyncio
import importlib
import json
import sys
from time import perf_counter

import uvloop

targets, rounds, requests = sys.argv[1].split(","), int(sys.argv[2]), int(sys.argv[3])

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


def load(target):
    module, attribute = target.split(":")
    return getattr(importlib.import_module(module), attribute)


async def batch(app):
    start = perf_counter()
    for _ in range(requests):
        await app(dict(SCOPE), receive, send)
        await asyncio.sleep(0)  # a server's loop turns between requests
    return (perf_counter() - start) / requests * 1e6


async def measure(app):
    # The lifespan as a server runs it: the ones that have none run nothing.
    async with app.router.lifespan_context(app):
        await asyncio.sleep(0.03)  # the monitor, if any, is sampling
        return await batch(app)


apps = {target: load(target) for target in targets}
best = dict.fromkeys(apps, float("inf"))
for _ in range(rounds):
    for target, app in apps.items():
        # A new loop for every batch: the lifespan shuts the loop's default
        # executor down on exit, so it starts only once per loop; and so only
        # one lag monitor runs at a time.
        best[target] = min(best[target], uvloop.run(measure(app)))
if set(status) != {200}:
    raise SystemExit(f"statuses other than 200: {sorted(set(status))}")
print(json.dumps(best))
"""


def prepare(project: Project) -> None:
    """The user's route appended to the service's routes.py; the bare apps and
    the service's layers beside it."""
    routes = project.path / "src" / project.package / "routes.py"
    if USER_ROUTE not in routes.read_text():
        routes.write_text(routes.read_text() + USER_ROUTE)
    (project.path / "bare_app.py").write_text(BARE_APP)
    layers = LAYERS_APP.replace("bench_service", project.package)
    (project.path / "bench_layers.py").write_text(layers)


def serving(project: Project, name: str, log_dir: Path) -> Server:
    """uvicorn serving the app `name` (see LAYERS) from the project, on core 0."""
    app = target(project, name)
    server = Server(
        f"user-route-{name}", project.python, app, project.path, log_dir=log_dir
    )
    server.core, server.ready_path = 0, "/hello"
    return server


def throughput(
    project: Project, rounds: int, seconds: float, warmup: float, log_dir: Path
) -> list[dict[str, Any]]:
    """The apps side by side, fresh servers each round: one set of ratios per round.

    Each round starts a server of every layer (LAYERS) on core 0 and loads them
    at once, each with its own wrk on core 1, so they share the core for the
    same seconds: what the machine's other load takes, it takes from all, and the
    ratio of their throughputs is the ratio of what each serves on a core of
    its own. One app after the other instead, 5 s each, the ratio of a pair
    ranged from 0.79 to 1.17 here, as the machine's speed drifted between the
    two runs.
    Fresh processes every round: the same app differs by a few percent from
    one process to the next (hash seeds, memory layout).

    Also each server's CPU time per request: bare µs ÷ service µs.
    """
    results = []
    for round_ in range(rounds):
        figures: dict[str, float] = {"load": os.getloadavg()[0]}
        servers = {name: serving(project, name, log_dir) for name in LAYERS}
        with side_by_side(servers, round_) as ports:
            wrk_at_once(ports, "/hello", warmup, CONNECTIONS, core=1)
            cpu = {name: server.cpu_seconds() for name, server in servers.items()}
            answered = wrk_at_once(ports, "/hello", seconds, CONNECTIONS, core=1)
            for name, server in servers.items():
                requests_per_s, count = answered[name]
                figures[name] = requests_per_s
                used = server.cpu_seconds() - cpu[name]
                figures[f"{name}_cpu_us"] = used / count * 1e6
        figures["ratio"] = figures["service"] / figures["bare"]
        figures["own_ratio"] = figures["service"] / figures["bare_quiet"]
        figures["cpu_ratio"] = figures["bare_cpu_us"] / figures["service_cpu_us"]
        results.append(figures)
    return results


# The apps compared, in order, each a layer on the one before:
# key -> (label, uvicorn's "module:attribute" in the project).
LAYERS = {
    "bare": ("bare FastAPI", "bare_app:app"),
    "bare_quiet": ("FastAPI's telemetry off", "bare_app:app_without_telemetry"),
    "routed": ("+ APIRouter (add_routes)", "bench_layers:routed"),
    "observed": ("+ observe_requests", "bench_layers:observed"),
    "lifespan": ("+ lifespan (lag monitor)", "bench_layers:with_lifespan"),
    "service": ("service", "bench_service.main:app"),
}


def target(project: Project, name: str) -> str:
    return LAYERS[name][1].replace("bench_service", project.package)


def in_process(project: Project, rounds: int, requests: int) -> dict[str, float]:
    """µs per request of each layer (by label), called directly."""
    script = project.path / "bench_in_process.py"
    script.write_text(IN_PROCESS)
    targets = [target(project, name) for name in LAYERS]
    command = pinned(0) + [str(project.python), script.name, ",".join(targets)]
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
    per_target = json.loads(out.stdout.splitlines()[-1])
    return {
        label: per_target[target(project, name)] for name, (label, _) in LAYERS.items()
    }


def plot(path: Path, rounds: list[dict[str, Any]], layers: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))
    xs = range(1, len(rounds) + 1)
    colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860"]
    # Each layer over HTTP, as a share of bare FastAPI's throughput in its round.
    shares = {name: [r[name] / r["bare"] for r in rounds] for name in LAYERS}
    medians = [statistics.median(values) for values in shares.values()]
    bars = axes[0].bar(range(len(LAYERS)), medians, color=colors)
    for i, values in enumerate(shares.values()):
        axes[0].scatter([i] * len(values), values, color="black", s=8, zorder=3)
    axes[0].bar_label(bars, labels=[f"{m:.2f}×" for m in medians])
    axes[0].axhline(GOAL, color="grey", linestyle="--")
    axes[0].set_ylim(min([*medians, GOAL]) - 0.1, max(medians) + 0.06)
    axes[0].set_xticks(
        range(len(LAYERS)),
        [
            textwrap.fill(label, 12, break_long_words=False)
            for label, _ in LAYERS.values()
        ],
    )
    axes[0].tick_params(axis="x", labelsize=8)
    axes[0].set_title("GET /hello over HTTP, side by side: ÷ bare FastAPI")
    axes[0].set_ylabel("throughput ÷ bare (bars: median; dots: rounds)")

    ratios = [r["ratio"] for r in rounds]
    axes[1].plot(xs, ratios, "o-", color="#55a868", label="req/s: service ÷ bare")
    cpu = [r["cpu_ratio"] for r in rounds]
    axes[1].plot(xs, cpu, "s--", color="#8172b3", label="CPU µs/req: bare ÷ service")
    own = [r["own_ratio"] for r in rounds]
    axes[1].plot(
        xs, own, "^:", color="#937860", label="req/s: service ÷ telemetry-off bare"
    )
    axes[1].axhline(GOAL, color="grey", linestyle="--", label=f"goal {GOAL}")
    median = statistics.median(ratios)
    axes[1].axhline(
        median, color="#55a868", linestyle=":", label=f"median {median:.3f}"
    )
    axes[1].set_ylim(
        min([*ratios, *cpu, *own, GOAL]) - 0.05, max([*ratios, *cpu, *own, 1.0]) + 0.05
    )
    axes[1].set_xticks(list(xs))
    axes[1].set_title("Throughput ratio per round")
    axes[1].set_xlabel("round")
    axes[1].legend(loc="best", fontsize="small")

    names = list(layers)
    values = list(layers.values())
    bars = axes[2].bar(range(len(names)), values, color=colors[: len(names)])
    # Each layer's own cost: its figure less the one before it.
    labels = [f"{values[0]:.1f}"] + [
        f"{value - before:+.1f}" for before, value in itertools.pairwise(values)
    ]
    axes[2].bar_label(bars, labels=labels)
    axes[2].set_xticks(
        range(len(names)), [textwrap.fill(n, 12, break_long_words=False) for n in names]
    )
    axes[2].tick_params(axis="x", labelsize=8)
    axes[2].set_title("GET /hello in-process (fastest batch; each layer's own cost)")
    axes[2].set_ylabel("µs per request")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


def instructions(
    project: Project, log_dir: Path, requests: tuple[int, int] = (300, 2300)
) -> dict[str, float]:
    """Instructions per request, bare app and service, counted by cachegrind."""
    apps = {"bare": "bare_app:app", "service": f"{project.package}.main:app"}
    runs = [(name, n) for name in apps for n in requests]
    # Every module compiled beforehand: the runs' start-ups then cancel out,
    # where two runs at once could otherwise differ by one compiling (millions
    # of instructions) what the other had just written.
    compile_all = [str(project.python), "-m", "compileall", "-q", "-j0"]
    subprocess.run([*compile_all, str(project.path)], check=True, capture_output=True)
    # Each run is one single-threaded process: as many at once as there are cores.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        totals = list(
            pool.map(lambda run: counted(project, apps[run[0]], run[1], log_dir), runs)
        )
    count = dict(zip(runs, totals, strict=True))
    few, many = requests
    per_request = {
        name: (count[name, many] - count[name, few]) / (many - few) for name in apps
    }
    per_request["ratio"] = per_request["bare"] / per_request["service"]
    return per_request


def counted(project: Project, app: str, requests: int, log_dir: Path) -> int:
    """Instructions a uvicorn process executes from start to exit, serving
    `requests` sequential GET /hello on one keep-alive connection."""
    name = f"cachegrind-{app.split(':')[0]}-{requests}"
    out = log_dir / f"{name}.out"
    port = free_port()
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
    command += [f"--cachegrind-out-file={out}", str(project.python), "-m", "uvicorn"]
    command += [app, "--port", str(port), "--no-access-log", "--log-level", "warning"]
    env = project_env(SHED_LOAD="false", LAG_SAMPLE_INTERVAL_MS="600")
    with open(log_dir / f"{name}.log", "wb") as log:
        server = subprocess.Popen(
            command, cwd=project.path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        connection = connect(server, port)
        for _ in range(requests):
            connection.request("GET", "/hello")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{app} answered {response.status} under cachegrind")
        connection.close()
        server.send_signal(signal.SIGINT)  # a clean exit: cachegrind writes its file
        server.wait(timeout=600)
    finally:
        if server.poll() is None:
            server.kill()
    lines = out.read_text().splitlines()
    [summary] = [line for line in lines if line.startswith("summary:")]
    return int(summary.split()[1])


def connect(server: subprocess.Popen[bytes], port: int) -> http.client.HTTPConnection:
    """A connection that has had one answer: start-up is slow under cachegrind."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited under cachegrind")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            connection.request("GET", "/hello")
            connection.getresponse().read()
            return connection
        except OSError:
            connection.close()
            time.sleep(1)
    raise RuntimeError("the server did not start under cachegrind in 600 s")
