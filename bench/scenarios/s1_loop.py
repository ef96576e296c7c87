"""Loop freedom: does /health stay fast while 50 heavy calls run at once?

Each variant's /health is probed idle, then under 50 concurrent heavy calls
(closed loop). The naive scaffold blocks its loop in every call; the default
scaffold is right for the loop but has AnyIO's 40 threads; the rendered
services are loopsafe's, one per workload (goal P1).
"""

from dataclasses import dataclass
from typing import Any

from ..harness import (
    BenchProcess,
    Context,
    probe,
    settle,
    start_all,
    under_load,
    warm,
)
from ..plots import idle_and_loaded_p99
from ..report import (
    Goal,
    Latency,
    Section,
    fmt_spread,
    p99_ratio,
    percent,
    rate,
    spread,
    times,
)
from ..services import Server

TITLE = "1. Loop freedom"
NEEDS = ("blocking_io", "async_io", "cpu_bound", "mixed")
CONCURRENCY = 50
WAIT = ["GET", "/blocking/wait?ms=100"]
# One call to an upstream in its own process (bench/apps/upstream.py), which
# answers after 100 ms: the service's event loop runs the HTTP client's side
# only, as in a deployment.
UPSTREAM = ["GET", "/upstream/fan-out?calls=1&ms=100"]
HASH = ["POST", "/cpu/hash", {"secret": "bench", "salt": "salt"}]
P1_LIMIT = 1.5


@dataclass
class Variant:
    label: str
    server: Server
    heavy: list[Any]  # the heavy requests, cycled through
    workload: str | None = None  # a rendered service: reported against P1
    # The naive scaffold: nothing to warm, and after a loaded run its loop is
    # stuck for seconds with the calls already accepted. Measured once: every
    # repeat gave the same bound (the loop held for the whole loaded window).
    stalls: bool = False


def variants(ctx: Context, upstream_url: str) -> list[Variant]:
    calls_upstream = {"UPSTREAM_URL": upstream_url}
    return [
        Variant(
            "naive: async def + time.sleep", ctx.bench_app("naive"), [WAIT], stalls=True
        ),
        Variant("default: def, 40 threads", ctx.bench_app("default"), [WAIT]),
        Variant(
            "loopsafe blocking_io",
            ctx.server("blocking_io", "s1-blocking_io"),
            [WAIT],
            "blocking_io",
        ),
        Variant(
            "loopsafe async_io",
            ctx.server("async_io", "s1-async_io", **calls_upstream),
            [UPSTREAM],
            "async_io",
        ),
        Variant(
            "loopsafe cpu_bound",
            ctx.server("cpu_bound", "s1-cpu_bound"),
            [HASH],
            "cpu_bound",
        ),
        Variant(
            "loopsafe mixed",
            ctx.server("mixed", "s1-mixed", **calls_upstream),
            [WAIT, UPSTREAM, HASH],
            "mixed",
        ),
    ]


def heavy_load(variant: Variant) -> dict[str, Any]:
    return {"requests": variant.heavy, "concurrency": CONCURRENCY}


def run(ctx: Context) -> Section:
    idle_s, warmup_s, loaded_s = (
        ctx.seconds(2, 0.3),
        ctx.seconds(0.5, 0.2),
        ctx.seconds(2, 0.5),
    )
    with BenchProcess("upstream") as upstream, BenchProcess("tiny") as floor:
        url = f"http://127.0.0.1:{upstream.port}/slow"
        chosen = variants(ctx, url)
        figures = measure_all(ctx, chosen, floor.port, idle_s, warmup_s, loaded_s)
    return report(ctx, chosen, figures)


def measure_all(
    ctx: Context,
    chosen: list[Variant],
    floor: int,
    idle_s: float,
    warmup_s: float,
    loaded_s: float,
) -> dict[str, dict[str, list[Any]]]:
    figures: dict[str, dict[str, list[Any]]] = {v.label: {} for v in chosen}
    start_all([v.server for v in chosen])
    try:
        for variant in chosen:
            if not variant.stalls:
                warm(ctx, variant.server, heavy_load(variant))
        # Repeats interleave the variants, so a noisy moment hits them all alike.
        for rep in range(ctx.reps):
            for variant in chosen:
                if variant.stalls and rep > 0:
                    continue
                settle(variant.server)
                measure(
                    ctx,
                    variant,
                    floor,
                    (idle_s, warmup_s, loaded_s),
                    figures[variant.label],
                )
    finally:
        for variant in chosen:
            variant.server.stop()
    return figures


def measure(
    ctx: Context,
    variant: Variant,
    floor: int,
    seconds: tuple[float, float, float],
    into: dict[str, list[Any]],
) -> None:
    """/health idle, then under the variant's heavy load; a trivial server
    (port `floor`) probed alike at the same time: the machine floor."""
    idle_s, warmup_s, loaded_s = seconds
    idle_probed = probe(ctx, variant.server, idle_s, floor=floor)
    idle = Latency.of(idle_probed)
    probed, heavy_result = under_load(
        ctx, variant.server, heavy_load(variant), warmup_s, loaded_s, floor=floor
    )
    loaded = Latency.of(probed)
    floor_ratio = Latency.of(probed["floor"]).p99 / Latency.of(idle_probed["floor"]).p99
    for key, value in {
        "idle_p50": idle.p50,
        "idle_p99": idle.p99,
        "loaded_p50": loaded.p50,
        "loaded_p99": loaded.p99,
        "ratio_p99": loaded.p99 / idle.p99,
        "floor_ratio_p99": floor_ratio,
        "censored": loaded.censored,
        "heavy_rate": heavy_result["completed"] / heavy_result["window_s"],
        "server_cpu": heavy_result["server_cpu"],
        "probe_send_lag_p99": loaded.send_lag_p99,
        "heavy_statuses": heavy_result["statuses"] | {"errors": heavy_result["errors"]},
    }.items():
        into.setdefault(key, []).append(value)


def report(ctx: Context, chosen: list[Variant], figures: dict[str, Any]) -> Section:
    section = Section(
        TITLE,
        about=(
            f"/health p50 and p99, probed open loop at 100/s, idle and under "
            f"{CONCURRENCY} concurrent heavy calls (closed loop): `GET "
            f"/blocking/wait?ms=100` (a 100 ms blocking call), `GET "
            f"/upstream/fan-out?calls=1&ms=100` for async_io (one call through "
            f"the service's aiohttp session to an upstream in another process, "
            f"answering in 100 ms), `POST /cpu/hash` (PBKDF2, "
            f"100,000 rounds) for cpu_bound, all three in turn for mixed. The "
            f"rendered blocking_io service answers the sizing questions for this "
            f"load (500 calls/s of 100 ms: 50 threads)."
        ),
        header=[
            "Variant",
            "idle p50",
            "idle p99",
            "loaded p50",
            "loaded p99",
            "p99 loaded ÷ idle",
            "machine floor: the same ÷ of a trivial server",
            "heavy calls answered",
            "server CPU, loaded",
            "probe's own lag p99, loaded",
        ],
        raw=figures,
    )
    for variant in chosen:
        f = figures[variant.label]
        bound = any(f["censored"])
        codes: dict[str, int] = {}
        for statuses in f["heavy_statuses"]:
            for code, n in statuses.items():
                codes[code] = codes.get(code, 0) + n
        others = sum(n for code, n in codes.items() if code != "200" and n)
        answered = fmt_spread(f["heavy_rate"], rate)
        if others:
            answered += f" ({others} not 200: {codes})"
        section.rows.append(
            [
                variant.label,
                fmt_spread(f["idle_p50"]),
                fmt_spread(f["idle_p99"]),
                fmt_spread(f["loaded_p50"], bound=bound),
                fmt_spread(f["loaded_p99"], bound=bound),
                fmt_spread(f["ratio_p99"], times, bound=bound),
                fmt_spread(f["floor_ratio_p99"], times),
                answered,
                fmt_spread(f["server_cpu"], percent),
                fmt_spread(f["probe_send_lag_p99"]),
            ]
        )
        if variant.workload:
            ratio = spread(f["ratio_p99"])[0]
            section.goals.append(
                Goal(
                    f"P1 {variant.workload}",
                    f"/health p99 under load ≤ {P1_LIMIT}× idle",
                    p99_ratio(f["ratio_p99"], f["idle_p99"], f["loaded_p99"])
                    + f"; machine floor {fmt_spread(f['floor_ratio_p99'], times)}",
                    ratio <= P1_LIMIT,
                )
            )
    section.notes.append(
        "Server CPU: the server process's CPU time over the loaded window, in % of "
        "one core (its event loop and threads; a process pool's workers not "
        "included). The probe's own lag: how late the probe process sent its "
        "requests, already part of the latencies above; on a busy machine it is "
        "much of the idle p99."
    )
    section.notes.append(
        "Machine floor: bench/apps/tiny.py, the cheapest server asyncio can be, "
        "probed at the same moments as each variant, idle and loaded, its p99 "
        "loaded ÷ idle. The heavy load runs on the variant alone, yet the floor "
        "rises with it: that much of the variant's ratio is the machine's (its "
        "cores busy with the variant's threads and the load generators), not "
        "the event loop's."
    )
    section.notes.append(
        "The naive scaffold runs in the first repeat only: its loop is held for the "
        "whole loaded window every time, so its figures are lower bounds."
    )
    if any(any(figures[v.label]["censored"]) for v in chosen):
        section.notes.append(
            "≥: some probes were still unanswered when the run ended; they count "
            "with the time they had waited, so the figure is a lower bound."
        )
    plot = "bench-loop-freedom.png"
    idle_and_loaded_p99(
        ctx.out / plot,
        f"/health p99, idle and under {CONCURRENCY} concurrent heavy calls "
        "(log scale; whiskers: min–max of the repeats)",
        [v.label for v in chosen],
        figures,
    )
    section.plots.append(plot)
    return section
