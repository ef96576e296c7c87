"""Overload: twice the service's capacity, with load shedding on and off.

The rendered blocking_io service with 40 threads serves 100 ms calls at most
40 / 0.1 s = 400 calls/s; the open-loop load offers 800/s. With shedding on,
the excess is answered 503 + Retry-After at once and /health stays fast (goal
P5). With it off (limits it never reaches, set through SHED_MAX_WAITERS and
SHED_LAG_P99_MS), the queue for threads grows for as long as the overload lasts.
"""

import json
from typing import Any

from ..harness import PROBE_RATE, Context, probe, settle, under_load
from ..plots import COLORS, timeline
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

TITLE = "5. Overload"
NEEDS = ("blocking_io",)
THREADS = 40
CALL_S = 0.1
CAPACITY = THREADS / CALL_S
OFFERED = 2 * CAPACITY
P5_503_S = 0.050
P5_HEALTH = 1.5
# Plot colours: one per variant, a lighter one for its 503s.
SHADES = {"shedding on": (COLORS[0], "#9ecae1"), "shedding off": (COLORS[1], "#fdae6b")}
SHEDDING = {
    "shedding on": {},
    "shedding off": {"SHED_MAX_WAITERS": "1000000", "SHED_LAG_P99_MS": "1000000"},
}


def waiting_series(probed: dict[str, Any]) -> tuple[list[float], list[float]]:
    """(due time, calls waiting for a thread) from the /health bodies the probe kept."""
    xs, ys = [], []
    for due, body in zip(probed["due"], probed["bodies"], strict=True):
        if body:
            xs.append(due)
            ys.append(json.loads(body)["thread_pool"]["waiting"])
    return xs, ys


def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares growth per second."""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var


def run(ctx: Context) -> Section:
    idle_s, overload_s = ctx.seconds(2, 0.5), ctx.seconds(4, 1)
    heavy = {
        "requests": [["GET", f"/blocking/wait?ms={CALL_S * 1000:.0f}"]],
        "rate": OFFERED,
        "max_connections": 4096,
    }
    figures: dict[str, dict[str, list[Any]]] = {label: {} for label in SHEDDING}
    series: dict[str, dict[str, Any]] = {}
    for _ in range(ctx.reps):
        for label, env in SHEDDING.items():
            # A fresh process each time: an unshed queue takes seconds to drain.
            server = ctx.server(
                "blocking_io",
                f"s5-{label.replace(' ', '-')}",
                THREAD_POOL_SIZE=str(THREADS),
                **env,
            )
            with server:
                settle(server)
                idle = Latency.of(probe(ctx, server, idle_s))
                probed, loaded = under_load(
                    ctx, server, heavy, 0, overload_s, keep_bodies=True
                )
            health = Latency.of(probed)
            ok, shed = Latency.of(loaded, 200), Latency.of(loaded, 503)
            xs, ys = waiting_series(probed)
            half = len(xs) // 2
            for key, value in {
                "idle_p99": idle.p99,
                "health_p99": health.p99,
                "health_ratio": health.p99 / idle.p99,
                "shed_share": loaded["status"].count(503) / len(loaded["status"]),
                "shed_p50": shed.p50,
                "shed_p99": shed.p99,
                "ok_rate": loaded["status"].count(200) / overload_s,
                "ok_p50": ok.p50,
                "ok_p99": ok.p99,
                "ok_censored": Latency.of(loaded).censored,
                "server_cpu": loaded["server_cpu"],
                "waiting_end": ys[-1] if ys else float("nan"),
                "waiting_growth": slope(xs[half:], ys[half:]),
                "other": len(loaded["status"])
                - loaded["status"].count(200)
                - loaded["status"].count(503),
                "errors": loaded["errors"],
            }.items():
                figures[label].setdefault(key, []).append(value)
            series[label] = {"waiting": (xs, ys), "loaded": loaded}
    return report(ctx, figures, series, overload_s)


def report(
    ctx: Context, figures: dict[str, Any], series: dict[str, Any], overload_s: float
) -> Section:
    section = Section(
        TITLE,
        about=(
            f"`GET /blocking/wait?ms=100` offered open loop at {rate(OFFERED)} for "
            f"{overload_s:g} s to the rendered blocking_io service with "
            f"THREAD_POOL_SIZE={THREADS} (capacity {rate(CAPACITY)}); /health "
            f"probed at {PROBE_RATE}/s meanwhile. Latency runs from each request's "
            "scheduled time; the queue is the number of calls waiting for a thread, "
            "as /health reports it."
        ),
        header=[
            "Shedding",
            "/health p99 (÷ idle)",
            "503s",
            "503 p50 / p99",
            "200s",
            "200 p50 / p99",
            "queue at the end",
            "queue growth",
            "server CPU",
        ],
        raw={"figures": figures},
    )
    for label, f in figures.items():
        bound = any(f["ok_censored"])
        shed = "–"
        if any(f["shed_share"]):
            shed = f"{fmt_spread(f['shed_p50'])} / {fmt_spread(f['shed_p99'])}"
        section.rows.append(
            [
                label,
                f"{fmt_spread(f['health_p99'])} "
                f"({fmt_spread(f['health_ratio'], times)})",
                fmt_spread(f["shed_share"], percent),
                shed,
                fmt_spread(f["ok_rate"], rate),
                f"{fmt_spread(f['ok_p50'], bound=bound)} / "
                f"{fmt_spread(f['ok_p99'], bound=bound)}",
                fmt_spread(f["waiting_end"], lambda x: f"{x:,.0f} calls"),
                fmt_spread(f["waiting_growth"], lambda x: f"{x:+,.0f} calls/s"),
                fmt_spread(f["server_cpu"], percent),
            ]
        )
    on = figures["shedding on"]
    if any(on["shed_share"]):
        section.goals.append(
            Goal(
                "P5 503s",
                f"under overload, 503s arrive within {P5_503_S * 1000:.0f} ms (p99)",
                fmt_spread(on["shed_p99"]),
                spread(on["shed_p99"])[0] <= P5_503_S,
            )
        )
    else:
        section.goals.append(
            Goal("P5 503s", "503s within 50 ms", "no request was shed", False)
        )
    section.goals.append(
        Goal(
            "P5 /health",
            f"under overload, /health p99 ≤ {P5_HEALTH:g}× idle",
            p99_ratio(on["health_ratio"], on["idle_p99"], on["health_p99"]),
            spread(on["health_ratio"])[0] <= P5_HEALTH,
        )
    )
    if any(any(f["other"]) for f in figures.values()):
        section.notes.append(
            "Requests with neither 200 nor 503, per repeat (of them, connections "
            "refused or reset; the rest unanswered when the run ended): "
            + "; ".join(
                f"{label}: "
                + ", ".join(
                    f"{n:,} ({e:,})"
                    for n, e in zip(f["other"], f["errors"], strict=True)
                )
                for label, f in figures.items()
            )
        )
    if any(any(f["ok_censored"]) for f in figures.values()):
        section.notes.append(
            "≥: requests still unanswered when the run ended count with the time "
            "they had waited, so the figure is a lower bound."
        )
    panels = [
        (
            "calls waiting for a thread",
            {label: (*s["waiting"], SHADES[label][0]) for label, s in series.items()},
            False,
        ),
        ("latency of each call (s)", latency_points(series), True),
    ]
    plot = "bench-overload.png"
    timeline(
        ctx.out / plot,
        f"{rate(OFFERED)} offered to a service that serves {rate(CAPACITY)} "
        "(last repeat)",
        panels,
    )
    section.plots.append(plot)
    return section


def latency_points(
    series: dict[str, Any],
) -> dict[str, tuple[list[float], list[float], str]]:
    """Each answered call's latency by its scheduled time: 200s, and 503s."""
    points = {}
    for label, s in series.items():
        loaded = s["loaded"]
        for status, color in zip((200, 503), SHADES[label], strict=True):
            xs, ys = [], []
            for due, latency, code in zip(
                loaded["due"], loaded["latency"], loaded["status"], strict=True
            ):
                if code == status and latency is not None:
                    xs.append(due)
                    ys.append(max(latency, 1e-4))
            if xs:
                points[f"{label}: {status}"] = (xs, ys, color)
    return points
