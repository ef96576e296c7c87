"""What every scenario shares: the run's context, and /health probed under load."""

import os
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .report import Latency, fmt_spread, rate
from .services import (
    APPS,
    Project,
    Server,
    finish_loadgen,
    free_port,
    have_wrk,
    spawn,
    start_loadgen,
    tcp_ready,
    ticks_busy,
    wrk,
)

# The rendered services, by name: the workload of that name, ephemeral, unless
# the answers given say otherwise. The blocking_io one answers the sizing
# questions for scenario 1's load (50 calls of 100 ms at once: 500 calls/s), so
# Little's law gives it 50 threads.
PROJECTS = {
    "blocking_io": {"peak_blocking_calls_per_s": "500", "blocking_call_ms": "100"},
    "async_io": {},
    "cpu_bound": {},
    "mixed": {},
    # Scenario 6's: the example job and its effects on each broker.
    "durable_redis": {
        "workload": "blocking_io",
        "task_durability": "durable",
        "broker": "redis",
    },
    "durable_rabbitmq": {
        "workload": "blocking_io",
        "task_durability": "durable",
        "broker": "rabbitmq",
    },
}

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PROBE = [["GET", "/health"]]
PROBE_RATE = 100  # probes per second, open loop: light, and 100 samples a second


@dataclass
class Context:
    """The run: where the template is, where files go, how long to measure."""

    template: Path
    work: Path  # rendered projects and server logs
    out: Path  # plots
    smoke: bool
    reps: int
    projects: dict[str, Project] = field(default_factory=dict)
    # Scenario 0's figures, for the scenarios that read a throughput: the most
    # each load generator can drive, {"wrk": [...], "python": [...]} per second.
    ceilings: dict[str, list[float]] = field(default_factory=dict)

    def seconds(self, full: float, smoke: float) -> float:
        return smoke if self.smoke else full

    @property
    def grace(self) -> float:
        """How long an open-loop run waits for its last answers before censoring."""
        return self.seconds(2.0, 0.5)

    def server(self, project: str, name: str, **env: str) -> Server:
        return Server.of(self.projects[project], name, self.work, **env)

    def bench_app(self, module: str, name: str = "", **env: str) -> Server:
        """An app from bench/apps/, on the blocking_io project's interpreter;
        `name` (default: the module's) names its log, for apps started twice."""
        server = Server.bench_app(self.projects["blocking_io"], module, self.work)
        server.env.update(env)
        if name:
            server.name, server.log_path = name, self.work / f"{name}.log"
        return server


def log(message: str) -> None:
    """A progress line on stderr, time-stamped."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class BenchProcess(Server):
    """bench/apps/<name>.py, a bare asyncio server, on the suite's interpreter;
    `args` follow its port on the command line. A Server but for how it starts
    (no uvicorn, no project, its output left on the suite's) and when it is
    ready (once it accepts connections), so scenarios probe both alike."""

    def __init__(self, name: str, *args: str):
        super().__init__(name, Path(sys.executable), str(APPS / f"{name}.py"), APPS)
        self.args = list(args)

    def launch(self) -> None:
        self.port = free_port()
        self.process = spawn([str(self.python), self.app, str(self.port), *self.args])

    def wait_ready(self, timeout: float = 10) -> None:
        assert self.process is not None
        tcp_ready(self.port, self.process, timeout)


def start_all(servers: list[Server]) -> None:
    """Start servers side by side (their imports overlap), then wait for each."""
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready()


# The machine counts as idle again below this many busy cores (the idle
# servers' own lag monitors use a few hundredths each).
IDLE_CORES = 0.25


def settle(server: Server, timeout: float = 20) -> None:
    """Wait until /health answers promptly again, after a run that swamped it,
    and until the machine is idle: a process pool left with queued work (50
    CPU calls sent, two done at a time) keeps every core busy for seconds after
    its load stops, while /health already answers promptly at low priority."""
    deadline = time.monotonic() + timeout
    prompt = 0
    while prompt < 3 and time.monotonic() < deadline:
        start = time.monotonic()
        try:
            with urllib.request.urlopen(server.url("/health"), timeout=timeout):
                pass
        except OSError:
            time.sleep(0.1)
            continue
        prompt = prompt + 1 if time.monotonic() - start < 0.05 else 0
        time.sleep(0.05)
    # A cap, so that a machine busy with something else cannot stall the run.
    deadline = min(deadline, time.monotonic() + 5)
    while time.monotonic() < deadline:
        busy, start = ticks_busy(), time.monotonic()
        time.sleep(0.2)
        cores = (ticks_busy() - busy) / CLOCK_TICKS / (time.monotonic() - start)
        if cores < IDLE_CORES:
            return


def warm(ctx: Context, server: Server, heavy: dict[str, Any]) -> None:
    """Run `heavy` once, unmeasured: first calls pay for imports (a process pool's
    workers import the task's module on their first call) and connection setup."""
    seconds = ctx.seconds(0.5, 0.3)
    load = {"port": server.port, "duration_s": seconds, "grace_s": 0, **heavy}
    finish_loadgen(start_loadgen(load), seconds + 15)


# The probe's own send lag (p99) in each idle probe of the scenario running: how
# late this machine wakes a sleeping thread, which no CPU accounting shows.
IDLE_SEND_LAGS: list[float] = []


def probe(
    ctx: Context,
    server: Server,
    duration: float,
    idle: bool = True,
    floor: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """/health, open loop at PROBE_RATE for `duration` seconds: the raw result.
    `idle`: nothing else loads the machine meanwhile (see IDLE_SEND_LAGS).
    `floor`: the port of a trivial server (bench/apps/tiny.py) probed alike at
    the same time, its result under "floor": what the machine itself costs."""
    loads = {"server": server.port} | ({"floor": floor} if floor else {})
    running = {
        name: start_loadgen(
            {
                "port": port,
                "requests": PROBE,
                "rate": PROBE_RATE,
                "duration_s": duration,
                "grace_s": ctx.grace,
                **extra,
            }
        )
        for name, port in loads.items()
    }
    results = {
        name: finish_loadgen(process, duration + ctx.grace + 15)
        for name, process in running.items()
    }
    result = results["server"]
    if idle:
        IDLE_SEND_LAGS.append(Latency.of(result).send_lag_p99)
    if floor:
        result["floor"] = results["floor"]
    return result


def under_load(
    ctx: Context,
    server: Server,
    heavy: dict[str, Any],
    warmup: float,
    duration: float,
    **probe_extra: Any,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Probe /health for `duration` s while `heavy` runs, from `warmup` s into it
    (`probe_extra`: `probe`'s options).

    `heavy` is a bench/loadgen.py Load without port and times: closed loop
    (`concurrency`) counts answers within the probe's window; open loop (`rate`)
    runs from the start of the warmup to the end of the probe.
    """
    load = {"port": server.port, "grace_s": ctx.grace, **heavy}
    if "rate" in heavy:
        load["duration_s"] = warmup + duration
    else:
        load |= {"warmup_s": warmup, "duration_s": duration}
    loading = start_loadgen(load)
    try:
        time.sleep(warmup)
        cpu, wall = server.cpu_seconds(), time.monotonic()
        probed = probe(ctx, server, duration, idle=False, **probe_extra)
        cpu, wall = server.cpu_seconds() - cpu, time.monotonic() - wall
    finally:
        heavy_result = finish_loadgen(loading, warmup + duration + ctx.grace + 15)
    # How busy the server's own process was meanwhile: near 100% of a core, the
    # event loop's thread is CPU-bound, and latency grows with it.
    heavy_result["server_cpu"] = cpu / wall
    return probed, heavy_result


def closed_loop_rate(
    server: Server, path: str, connections: int, warmup: float, seconds: float
) -> tuple[float, float, str]:
    """Answers per second to GET `path` from `connections` clients at full speed,
    the server process's CPU meanwhile (share of one core), and the client used:
    wrk where installed (far above the Python generator's ceiling, scenario 0),
    else bench/loadgen.py. Any answer but 200 fails the measurement."""
    if have_wrk():
        wrk(server.port, path, warmup, connections)
        cpu, wall = server.cpu_seconds(), time.monotonic()
        answered = wrk(server.port, path, seconds, connections)[0]
        cpu, wall = server.cpu_seconds() - cpu, time.monotonic() - wall
        return answered, cpu / wall, "wrk"
    load = {
        "port": server.port,
        "requests": [["GET", path]],
        "concurrency": connections,
        "warmup_s": warmup,
        "duration_s": seconds,
    }
    loading = start_loadgen(load)
    time.sleep(warmup)
    cpu = server.cpu_seconds()
    time.sleep(seconds)
    cpu = server.cpu_seconds() - cpu
    result = finish_loadgen(loading, warmup + seconds + 20)
    if result["errors"] or set(result["statuses"]) - {"200"}:
        raise RuntimeError(f"{path}: {result['statuses']}, {result['errors']} errors")
    return result["completed"] / result["window_s"], cpu / seconds, "Python"


def ceilings(ctx: Context) -> str:
    """Scenario 0's ceilings, to read a throughput against."""
    if not ctx.ceilings:
        return "not measured in this run (scenario 0)"
    return ", ".join(
        f"{name} {fmt_spread(values, rate)}"
        for name, values in ctx.ceilings.items()
        if values
    )
