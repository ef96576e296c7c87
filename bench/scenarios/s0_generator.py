"""The load generators' own ceiling: how fast they go against a server that costs
next to nothing, so no figure in the other scenarios is read past it."""

from ..harness import BenchProcess, Context, probe
from ..report import Latency, Section, fmt_spread, rate
from ..services import have_wrk, run_loadgen, wrk

TITLE = "0. The load generators' ceiling"
NEEDS: tuple[str, ...] = ()
CONNECTIONS = 64


def run(ctx: Context) -> Section:
    seconds = ctx.seconds(1.5, 0.5)
    python, wrk_rates, floor_p50, floor_p99, lag_p99 = [], [], [], [], []
    with BenchProcess("tiny") as tiny:
        for _ in range(ctx.reps):
            closed = {"port": tiny.port, "requests": [["GET", "/"]]}
            closed |= {"concurrency": CONNECTIONS, "duration_s": seconds}
            result = run_loadgen(closed | {"warmup_s": 0.2}, seconds + 20)
            python.append(result["completed"] / result["window_s"])
            if have_wrk():
                wrk_rates.append(wrk(tiny.port, "/", seconds, CONNECTIONS)[0])
            latency = Latency.of(probe(ctx, tiny, seconds))
            floor_p50.append(latency.p50)
            floor_p99.append(latency.p99)
            lag_p99.append(latency.send_lag_p99)
    section = Section(
        TITLE,
        about=(
            "bench/apps/tiny.py answers every GET with a fixed response from a bare "
            "asyncio protocol: against it, a generator runs at its own ceiling. "
            f"Closed loop, {CONNECTIONS} keep-alive connections; the probe is the "
            "open-loop /health probe of the other scenarios (100 requests/s)."
        ),
        header=["Generator", "Ceiling (median [min–max])"],
        rows=[
            ["Python (asyncio streams), closed loop", fmt_spread(python, rate)],
            [
                "wrk, 1 thread",
                fmt_spread(wrk_rates, rate)
                if wrk_rates
                else "not installed (apt-get install wrk)",
            ],
            ["probe p50, no load (the floor)", fmt_spread(floor_p50)],
            ["probe p99, no load (the floor)", fmt_spread(floor_p99)],
            ["probe send lag p99 (the generator's share)", fmt_spread(lag_p99)],
        ],
        raw={
            "python": python,
            "wrk": wrk_rates,
            "floor_p50": floor_p50,
            "p99": floor_p99,
        },
    )
    ctx.ceilings = {"python": python, "wrk": wrk_rates}
    return section
