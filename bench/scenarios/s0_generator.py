"""The load generators' own ceiling: how fast they go against a server that costs
next to nothing, so no figure in the other scenarios is read past it."""

import sys

from harness import Context, probe
from report import Latency, Section, fmt_spread, rate
from services import APPS, free_port, kill, run_loadgen, run_wrk, spawn, tcp_ready

TITLE = "0. The load generators' ceiling"
NEEDS: tuple[str, ...] = ()
CONNECTIONS = 64


class Tiny:
    """bench/apps/tiny.py on the suite's own interpreter (no FastAPI)."""

    def __enter__(self) -> "Tiny":
        self.port = free_port()
        self.process = spawn([sys.executable, str(APPS / "tiny.py"), str(self.port)])
        tcp_ready(self.port, self.process)
        return self

    def __exit__(self, *exc: object) -> None:
        kill(self.process)


def run(ctx: Context) -> Section:
    seconds = ctx.seconds(1.5, 0.5)
    python, wrk, floor_p50, floor_p99, lag_p99 = [], [], [], [], []
    with Tiny() as tiny:
        for _ in range(ctx.reps):
            closed = {"port": tiny.port, "requests": [["GET", "/"]]}
            closed |= {"concurrency": CONNECTIONS, "duration_s": seconds}
            result = run_loadgen(closed | {"warmup_s": 0.2}, seconds + 20)
            python.append(result["completed"] / result["window_s"])
            found = run_wrk(tiny.port, "/", max(1, round(seconds)), CONNECTIONS)
            if found is not None:
                wrk.append(found)
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
                fmt_spread(wrk, rate) if wrk else "not installed (apt-get install wrk)",
            ],
            ["probe p50, no load (the floor)", fmt_spread(floor_p50)],
            ["probe p99, no load (the floor)", fmt_spread(floor_p99)],
            ["probe send lag p99 (the generator's share)", fmt_spread(lag_p99)],
        ],
        raw={"python": python, "wrk": wrk, "floor_p50": floor_p50, "p99": floor_p99},
    )
    return section
