"""Middleware and lag-monitor overhead: maximum throughput on a trivial route.

The rendered service's /health passes through its pure ASGI middleware (request
metrics, load shedding) while the lag monitor samples the loop. The bare app
serves the same handler with neither (goal P4). A bare app behind one
pass-through BaseHTTPMiddleware gives the scale of the usual alternative.
"""

from harness import Context, start_all
from plots import bars
from report import Goal, Section, Skip, fmt_spread, rate, spread, times
from services import run_loadgen, run_wrk

TITLE = "4. Middleware and lag-monitor overhead"
NEEDS = ("blocking_io",)
CONNECTIONS = 64
P4_SHARE = 0.97


def throughput(port: int, seconds: float) -> tuple[float, str]:
    """Requests/s on /health at full speed: wrk if installed, else the Python client."""
    found = run_wrk(port, "/health", max(1, round(seconds)), CONNECTIONS)
    if found is not None:
        return found, "wrk"
    load = {"port": port, "requests": [["GET", "/health"]]}
    load |= {"concurrency": CONNECTIONS, "duration_s": seconds, "warmup_s": 0.2}
    result = run_loadgen(load, seconds + 20)
    return result["completed"] / result["window_s"], "the Python client"


def run(ctx: Context) -> Section:
    project = ctx.projects["blocking_io"]
    if not (project.path / "src" / project.package / "lag.py").exists():
        raise Skip(
            f"the template at {ctx.template} has no lag monitor or metrics middleware "
            "yet (they come with the lag issue); rerun with --template pointing at a "
            "tree that has them"
        )
    seconds = ctx.seconds(3, 1)
    servers = {
        "bare FastAPI": ctx.bench_app("bare", BENCH_PACKAGE=project.package),
        "loopsafe: middleware + lag monitor": ctx.server("blocking_io", "s4-loopsafe"),
        "bare + 1 BaseHTTPMiddleware": ctx.bench_app(
            "base_http", BENCH_PACKAGE=project.package
        ),
    }
    measured: dict[str, list[float]] = {label: [] for label in servers}
    generator = ""
    start_all(list(servers.values()))
    try:
        if not ctx.smoke:
            for server in servers.values():
                throughput(server.port, 1)  # warm-up, unmeasured
        for _ in range(ctx.reps):
            for label, server in servers.items():
                value, generator = throughput(server.port, seconds)
                measured[label].append(value)
    finally:
        for server in servers.values():
            server.stop()
    bare = measured["bare FastAPI"]
    section = Section(
        TITLE,
        about=(
            f"`GET /health` at full speed ({generator}, one thread, {CONNECTIONS} "
            "keep-alive connections) on the rendered blocking_io service and on a "
            "bare FastAPI app serving the same handler, each in one uvicorn worker."
        ),
        header=["App", "Throughput", "÷ bare"],
        raw={"throughput": measured, "generator": generator},
    )
    for label, values in measured.items():
        shares = [value / base for value, base in zip(values, bare, strict=True)]
        section.rows.append(
            [label, fmt_spread(values, rate), fmt_spread(shares, times)]
        )
        if label.startswith("loopsafe"):
            section.goals.append(
                Goal(
                    "P4",
                    f"middleware + monitor ≥ {P4_SHARE}× bare throughput",
                    fmt_spread(shares, times),
                    spread(shares)[0] >= P4_SHARE,
                )
            )
    section.notes.append(
        "Each repeat's ratio is taken against the bare app's run of the same "
        "repeat (the runs interleave)."
    )
    plot = "bench-overhead.png"
    bars(
        ctx.out / plot,
        "Throughput on GET /health, one uvicorn worker (whiskers: min–max)",
        list(measured),
        {"requests/s": list(measured.values())},
        "requests per second",
    )
    section.plots.append(plot)
    return section
