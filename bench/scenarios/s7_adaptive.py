"""Adaptive thread pool: does the pool follow its load, where no fixed size can?

The rendered blocking_io service (bench/apps/adaptive.py adds the routes) in
three variants: its pool fixed at the copy-time answer (40 threads), fixed at
400, and adaptive from 40 (THREAD_POOL_ADAPTIVE, default bounds). They run side
by side and get the same open-loop loads at the same moments, so a noisy
moment of the machine hits them alike; so does a bare asyncio server with no
pool at all (bench/apps/unlimited.py), the floor no pool size beats.

- a step: 100/s of 50 ms calls, then 250/s of 400 ms, then 20/s of 50 ms:
  Little's law (arrivals per second × seconds each holds a thread) gives 5,
  100, then 1 thread(s);
- a saturated downstream: 300/s of 200 ms calls through a downstream that
  admits 30 at once, so 150/s at most: threads past 30 only wait on it;
- steady load, adaptive only: 150/s of 400 ms calls, 60 threads throughout.

Meanwhile /health is polled ten times a second on each adaptive server, on a
connection of its own: the size, the need it measures, threads in use, calls
waiting (goals P7).
"""

import json
import math
import os
import signal
import statistics
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..harness import BenchProcess, Context, settle, start_all
from ..plots import COLORS, timeline
from ..report import Goal, Latency, Section, fmt_spread, percent, rate, spread
from ..services import Server, finish_loadgen, kill, start_loadgen

TITLE = "7. Adaptive thread pool"
NEEDS = ("blocking_io",)  # bench/apps/adaptive.py serves it
START = 40  # THREAD_POOL_SIZE: what a blocking_io render answers by default
ADAPTIVE = f"adaptive, from {START}"
VARIANTS = {
    f"fixed {START} (the copy-time answer)": {
        "THREAD_POOL_ADAPTIVE": "false",
        "THREAD_POOL_SIZE": str(START),
    },
    "fixed 400": {"THREAD_POOL_ADAPTIVE": "false", "THREAD_POOL_SIZE": "400"},
    ADAPTIVE: {"THREAD_POOL_ADAPTIVE": "true", "THREAD_POOL_SIZE": str(START)},
}
FIXED = [label for label in VARIANTS if label != ADAPTIVE]
FLOOR = "no pool (the floor)"
# Shedding measures something else (scenario 5): limits it never reaches.
NO_SHEDDING = {"SHED_MAX_WAITERS": "1000000", "SHED_LAG_P99_MS": "1000000"}

# The step's phases: calls per second, seconds each holds a thread.
STEP = [(100, 0.050), (250, 0.400), (20, 0.050)]
# The saturated downstream: SLOTS calls at once, each DOWNSTREAM_S long.
SLOTS = 30
DOWNSTREAM_S = 0.2
CAPACITY = SLOTS / DOWNSTREAM_S
OFFERED = 2 * CAPACITY
# Steady: a need above the start size, so the pool has to grow to it first.
STEADY = (150, 0.400)

SERVED = 0.95  # of each step phase, answered 200 in time
STEP_P99 = 1.3  # × the best fixed variant's, each phase
BAND = 0.10  # the size within this share of the need...
REACH_S = 2.0  # ...this soon after each step
SATURATED_SIZE = 45
SATURATED_P99 = 1.2
STEADY_CV = 0.10

# A repeat takes well over a minute; in each the variants run side by side, so
# every comparison is paired within it and fewer repeats are needed than where
# variants take turns. Two keep the scenario near three minutes.
MAX_REPS = 2
POLL_RATE = 10  # /health polls per second
# The loads start together this long after they are launched (full, smoke): a
# load generator's interpreter starts in a fraction of it, even on a busy machine.
LEAD_S = (1.0, 0.5)


# --- the servers and loads --------------------------------------------------------


def service(ctx: Context, name: str, env: dict[str, str]) -> Server:
    """The rendered blocking_io service with the bench routes and `env`."""
    return ctx.bench_app(
        "adaptive",
        name,
        BENCH_PACKAGE=ctx.projects["blocking_io"].package,
        BENCH_DOWNSTREAM_SLOTS=str(SLOTS),
        **NO_SHEDDING,
        **env,
    )


def call(path: str, hold_s: float) -> list[Any]:
    return ["GET", f"/bench/{path}?ms={hold_s * 1000:.0f}"]


def step_load(port: int, phase_s: float, grace_s: float) -> dict[str, Any]:
    return {
        "port": port,
        "requests": [],
        "phases": [[per_s, phase_s, call("wait", hold)] for per_s, hold in STEP],
        "duration_s": phase_s * len(STEP),
        "grace_s": grace_s,
        # A pool too small queues the step's calls, one connection each.
        "max_connections": 4096,
    }


def constant_load(
    port: int, request: list[Any], per_s: float, seconds: float, grace_s: float
) -> dict[str, Any]:
    return {
        "port": port,
        "requests": [request],
        "rate": per_s,
        "duration_s": seconds,
        "grace_s": grace_s,
        "max_connections": 4096,
    }


def poll(port: int, seconds: float) -> dict[str, Any]:
    """/health, POLL_RATE a second: the pool's state, in the bodies kept."""
    load = constant_load(port, ["GET", "/health"], POLL_RATE, seconds, 0.5)
    return load | {"keep_bodies": True}


def warm(server: Server) -> None:
    """A few calls on each route, unmeasured: the first pay for thread starts
    and the routes' first dispatch."""
    for path in ("wait", "downstream"):
        for _ in range(3):
            with urllib.request.urlopen(server.url(f"/bench/{path}?ms=1"), timeout=10):
                pass


def at_once(
    ctx: Context, loads: dict[str, dict[str, Any]], timeout_s: float
) -> dict[str, Any]:
    """Run every load (bench/loadgen.py, a process each) from one shared start
    time, and return their results by name."""
    lead_s = ctx.seconds(*LEAD_S)
    start_at = time.monotonic() + lead_s
    running = {
        name: start_loadgen(load | {"start_at": start_at})
        for name, load in loads.items()
    }
    try:
        return {
            name: finish_loadgen(process, lead_s + timeout_s + 15)
            for name, process in running.items()
        }
    finally:
        for process in running.values():
            if process.returncode is None:
                kill(process)


# --- reading the results ----------------------------------------------------------


def window(result: dict[str, Any], begin: float, end: float) -> dict[str, Any]:
    """The requests of an open-loop result due in [begin, end), as a result."""
    keys = ("due", "latency", "send_lag", "status")
    part: dict[str, list[Any]] = {key: [] for key in (*keys, "censored")}
    censored = iter(result["censored"])  # one per unanswered request, in order
    for values in zip(*(result[key] for key in keys), strict=True):
        due, latency = values[:2]
        waited = next(censored) if latency is None else None
        if begin <= due < end:
            for key, value in zip(keys, values, strict=True):
                part[key].append(value)
            if waited is not None:
                part["censored"].append(waited)
    return part


def served(part: dict[str, Any], by: float) -> float:
    """The share of the requests answered 200 no later than `by` (seconds
    from the start)."""
    answered = sum(
        1
        for due, latency, status in zip(
            part["due"], part["latency"], part["status"], strict=True
        )
        if status == 200 and latency is not None and due + latency <= by
    )
    return answered / max(1, len(part["due"]))


def throughput(result: dict[str, Any], begin: float, end: float) -> float:
    """200s answered per second between `begin` and `end`, whenever they were due."""
    answered = sum(
        1
        for due, latency, status in zip(
            result["due"], result["latency"], result["status"], strict=True
        )
        if status == 200 and latency is not None and begin <= due + latency < end
    )
    return answered / (end - begin)


def samples(polled: dict[str, Any]) -> list[dict[str, Any]]:
    """The pool's state at each poll answered: {"t": due time, size, need...}."""
    found = []
    for due, body in zip(polled["due"], polled["bodies"], strict=True):
        if body:
            pool = json.loads(body).get("thread_pool", {})
            found.append({"t": due} | pool)
    return found


def between(
    found: list[dict[str, Any]], begin: float, end: float, key: str
) -> list[float]:
    return [s.get(key, math.nan) for s in found if begin <= s["t"] < end]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def target(found: list[dict[str, Any]], need: float) -> float:
    """The size a pool bounded as /health says should have for `need`."""
    low = found[0].get("min", 1) if found else 1
    high = found[0].get("max", math.inf) if found else math.inf
    return min(max(need, low), high)


def reach(found: list[dict[str, Any]], begin: float, end: float, goal: float) -> float:
    """Seconds from `begin` until the size is within BAND of `goal`; nan: never
    before `end`."""
    for s in found:
        if begin <= s["t"] < end and abs(s.get("size", math.nan) - goal) <= BAND * goal:
            reached: float = s["t"] - begin
            return reached
    return math.nan


def latency_figures(
    part: dict[str, Any], by: float, begin: float, end: float
) -> dict[str, Any]:
    latency = Latency.of(part)
    return {
        "served": served(part, by),
        "p50": latency.p50,
        "p99": latency.p99,
        "censored": latency.censored,
        "throughput": throughput(part, begin, end),
    }


def add(into: dict[str, Any], figures: dict[str, Any]) -> None:
    for key, value in figures.items():
        into.setdefault(key, []).append(value)


# --- the rounds -------------------------------------------------------------------


def run(ctx: Context) -> Section:
    phase_s = ctx.seconds(15, 1.5)
    saturated_s = ctx.seconds(10, 1.5)
    settle_s = ctx.seconds(3, 0.5)  # the saturated and steady runs, left out
    loads = [f"step {k + 1}" for k in range(len(STEP))] + ["saturated", "steady"]
    figures: dict[str, dict[str, dict[str, Any]]] = {load: {} for load in loads}
    last: dict[str, Any] = {}
    # Repeats interleave the rounds; in each, every variant runs at once.
    for _ in range(min(ctx.reps, MAX_REPS)):
        last = step_round(ctx, phase_s, settle_s, figures)
        last |= saturated_round(ctx, saturated_s, settle_s, figures)
    return report(ctx, figures, last, phase_s, saturated_s, settle_s)


@contextmanager
def fresh(ctx: Context, round_: str, extra: int = 0) -> Iterator[list[Server]]:
    """A fresh server of each variant (the adaptive one last), and `extra` more
    adaptive ones, started side by side, warmed, and stopped on exit: a fixed
    pool's queue takes long to drain, and an adaptive pool remembers its load.
    Each round starts its own: idle servers would add to the machine's noise."""
    envs = [*VARIANTS.values(), *[VARIANTS[ADAPTIVE]] * extra]
    servers = [service(ctx, f"s7-{round_}-{i}", env) for i, env in enumerate(envs)]
    try:
        start_all(servers)
        for server in servers:
            warm(server)
        # Once: every server's /health, and the machine, settle alike.
        settle(servers[len(VARIANTS) - 1])
        yield servers
    finally:
        stop_all(servers)


def stop_all(servers: list[Server]) -> None:
    """Stop servers together: each with calls still queued outlasts the
    graceful wait of `Server.stop`, and one after another those waits add up."""
    for server in servers:
        if server.process is not None and server.process.poll() is None:
            os.killpg(server.process.pid, signal.SIGTERM)
    for server in servers:
        server.stop()


def step_round(
    ctx: Context, phase_s: float, settle_s: float, figures: dict[str, Any]
) -> dict[str, Any]:
    """The step on every variant and the floor, and the steady load meanwhile on
    an adaptive server of its own."""
    total_s = phase_s * len(STEP)
    with (
        fresh(ctx, "step", extra=1) as servers,
        BenchProcess("unlimited", str(SLOTS)) as floor,
    ):
        step = dict(zip(VARIANTS, servers[: len(VARIANTS)], strict=True))
        steady = servers[-1]
        ports = {label: server.port for label, server in step.items()}
        loads = {
            label: step_load(port, phase_s, ctx.grace)
            for label, port in (ports | {FLOOR: floor.port}).items()
        }
        loads["steady"] = constant_load(
            steady.port, call("wait", STEADY[1]), STEADY[0], total_s, ctx.grace
        )
        loads["poll step"] = poll(step[ADAPTIVE].port, total_s)
        loads["poll steady"] = poll(steady.port, total_s)
        results = at_once(ctx, loads, total_s + ctx.grace)
    found = samples(results["poll step"])
    for k, (per_s, hold_s) in enumerate(STEP):
        begin, end = k * phase_s, (k + 1) * phase_s
        into = figures[f"step {k + 1}"]
        for label in [*VARIANTS, FLOOR]:
            part = window(results[label], begin, end)
            add(
                into.setdefault(label, {}),
                latency_figures(part, end + ctx.grace, begin, end),
            )
        best = min(into[label]["p99"][-1] for label in FIXED)
        later = begin + phase_s / 2  # the phase's second half: where it settled
        add(
            into[ADAPTIVE],
            {
                "ratio": into[ADAPTIVE]["p99"][-1] / best,
                "reach": reach(found, begin, end, target(found, per_s * hold_s)),
                "size": median(between(found, later, end, "size")),
                "need": median(between(found, later, end, "need")),
            },
        )
    steady_found = samples(results["poll steady"])
    sizes = between(steady_found, settle_s, total_s, "size")
    mean = statistics.fmean(sizes) if sizes else math.nan
    cv = statistics.pstdev(sizes) / mean if len(sizes) > 1 and mean else math.nan
    part = window(results["steady"], 0, total_s)
    add(
        figures["steady"].setdefault(ADAPTIVE, {}),
        latency_figures(part, total_s + ctx.grace, 0, total_s)
        | {
            "size": mean,
            "cv": cv,
            "need": median(between(steady_found, settle_s, total_s, "need")),
        },
    )
    return {"step": results | {"found": found}, "steady": steady_found}


def saturated_round(
    ctx: Context, seconds: float, settle_s: float, figures: dict[str, Any]
) -> dict[str, Any]:
    """Twice the downstream's capacity on every variant and the floor; the queue
    it leaves is waited for, so that each latency is measured, not censored."""
    drain_s = seconds * (OFFERED / CAPACITY - 1)
    grace_s = drain_s + ctx.grace
    request = call("downstream", DOWNSTREAM_S)
    with (
        fresh(ctx, "saturated") as servers,
        BenchProcess("unlimited", str(SLOTS)) as floor,
    ):
        saturated = dict(zip(VARIANTS, servers, strict=True))
        ports = {label: server.port for label, server in saturated.items()}
        loads = {
            label: constant_load(port, request, OFFERED, seconds, grace_s)
            for label, port in (ports | {FLOOR: floor.port}).items()
        }
        loads["poll"] = poll(saturated[ADAPTIVE].port, seconds)
        results = at_once(ctx, loads, seconds + grace_s)
    into = figures["saturated"]
    for label in [*VARIANTS, FLOOR]:
        part = window(results[label], 0, seconds)
        add(
            into.setdefault(label, {}),
            latency_figures(part, seconds + grace_s, 0, seconds),
        )
    found = samples(results["poll"])
    sizes = between(found, settle_s, seconds, "size")
    best = min(into[label]["p99"][-1] for label in FIXED)
    add(
        into[ADAPTIVE],
        {
            "ratio": into[ADAPTIVE]["p99"][-1] / best,
            "size": median(sizes),
            "size_max": max(sizes) if sizes else math.nan,
            "need": median(between(found, settle_s, seconds, "need")),
        },
    )
    return {"saturated": found}


# --- the section ------------------------------------------------------------------


def times(values: list[float]) -> str:
    return fmt_spread(values, lambda x: f"{x:.2f}×")


def threads(values: list[float]) -> str:
    return fmt_spread(values, lambda x: f"{x:,.0f}")


def reached(values: list[float]) -> str:
    """Seconds to reach the need, each repeat's; nan: never."""
    never = sum(math.isnan(value) for value in values)
    if never == len(values):
        return "never"
    text = fmt_spread(values)
    return text + (f" (never in {never} of {len(values)})" if never else "")


def worst(values: list[float]) -> float:
    """The median of the repeats, a repeat that never got there counting as
    the worst."""
    return spread([math.inf if math.isnan(v) else v for v in values])[0]


def rising() -> list[bool]:
    """Whether each step phase needs more threads than the one before (the
    first: than the pool's start)."""
    needs = [START] + [per_s * hold_s for per_s, hold_s in STEP]
    return [after > before for before, after in zip(needs, needs[1:], strict=False)]


def calls(per_s: float, hold_s: float) -> str:
    return f"{rate(per_s)} × {hold_s * 1000:.0f} ms"


def load_labels(phase_s: float, saturated_s: float) -> dict[str, Any]:
    labels = {
        f"step {k + 1}": f"step {k + 1}: {calls(per_s, hold_s)} "
        f"(need {per_s * hold_s:,.0f}), {phase_s:g} s"
        for k, (per_s, hold_s) in enumerate(STEP)
    }
    labels["saturated"] = (
        f"saturated: {calls(OFFERED, DOWNSTREAM_S)}, {SLOTS} at once "
        f"downstream ({rate(CAPACITY)} at most), {saturated_s:g} s"
    )
    per_s, hold_s = STEADY
    labels["steady"] = (
        f"steady: {calls(per_s, hold_s)} (need {per_s * hold_s:,.0f}), "
        f"{phase_s * len(STEP):g} s"
    )
    return labels


def pool_cells(load: str, label: str, f: dict[str, Any]) -> list[str]:
    """Size, reported need and time to reach the need, for the table."""
    if label == FLOOR:
        return ["unbounded", "–", "–"]
    if label != ADAPTIVE:
        return [VARIANTS[label]["THREAD_POOL_SIZE"], "–", "–"]
    if load == "saturated":
        size = f"{threads(f['size'])} (max {threads(f['size_max'])})"
        return [size, threads(f["need"]), "–"]
    if load == "steady":
        size = f"{threads(f['size'])} (CV {fmt_spread(f['cv'], percent)})"
        return [size, threads(f["need"]), "–"]
    return [threads(f["size"]), threads(f["need"]), reached(f["reach"])]


def report(
    ctx: Context,
    figures: dict[str, Any],
    last: dict[str, Any],
    phase_s: float,
    saturated_s: float,
    settle_s: float,
) -> Section:
    labels = load_labels(phase_s, saturated_s)
    section = Section(
        TITLE,
        about=(
            "The rendered blocking_io service, its thread pool fixed at "
            f"{START} threads (the copy-time answer, THREAD_POOL_ADAPTIVE=false), "
            f"fixed at 400, and adaptive from {START} (default bounds), all "
            "side by side under the same open-loop loads of blocking `def` calls "
            "(`time.sleep`), with a bare asyncio server that starts every call "
            "at once as the floor. Latency runs from each call's scheduled "
            "time. /health is polled ten times a second on each adaptive "
            "server. Shedding is off (limits it never reaches). Each repeat "
            f"starts fresh servers; {min(ctx.reps, MAX_REPS)} repeat(s), at most "
            f"{MAX_REPS} (a repeat takes over a minute)."
        ),
        header=[
            "Load",
            "Threads",
            "answered 200 in time",
            "p50",
            "p99",
            "p99 ÷ best fixed",
            "answered per second",
            "pool size",
            "need it reports",
            "size within 10% of the need after",
        ],
        raw={"figures": figures, "last repeat's polls": compact(last)},
    )
    for load, by_label in figures.items():
        for label, f in by_label.items():
            bound = any(f["censored"])
            ratio = times(f["ratio"]) if "ratio" in f else "–"
            section.rows.append(
                [
                    labels[load],
                    label,
                    fmt_spread(f["served"], percent),
                    fmt_spread(f["p50"], bound=bound),
                    fmt_spread(f["p99"], bound=bound),
                    ratio,
                    fmt_spread(f["throughput"], rate),
                    *pool_cells(load, label, f),
                ]
            )
    goals(section, figures, settle_s)
    notes(section, settle_s)
    plot(ctx, section, last, phase_s)
    return section


def goals(section: Section, figures: dict[str, Any], settle_s: float) -> None:
    steps = [f"step {k + 1}" for k in range(len(STEP))]
    adaptive = {load: figures[load][ADAPTIVE] for load in figures}
    shares = [spread(adaptive[s]["served"])[0] for s in steps]
    section.goals.append(
        Goal(
            "P7 step: answered",
            f"adaptive answers ≥ {SERVED:.0%} of each step phase with 200 in time",
            " / ".join(fmt_spread(adaptive[s]["served"], percent) for s in steps),
            min(shares) >= SERVED,
        )
    )
    ratios = [spread(adaptive[s]["ratio"])[0] for s in steps]
    section.goals.append(
        Goal(
            "P7 step: p99",
            f"adaptive p99 ≤ {STEP_P99:g}× the best fixed size's, each phase",
            " / ".join(times(adaptive[s]["ratio"]) for s in steps),
            max(ratios) <= STEP_P99,
        )
    )
    # A pool that shrinks slowly, as it must (hysteresis), is not within 10% of
    # a need that fell 2 s ago: the goal holds for the steps up; the steps down
    # are reported beside it.
    ups = [s for s, rises in zip(steps, rising(), strict=True) if rises]
    section.goals.append(
        Goal(
            "P7 step: size",
            f"adaptive size within {BAND:.0%} of the need ≤ {REACH_S:g} s after "
            "each step up (steps down: shrinking slowly, as it must)",
            " / ".join(reached(adaptive[s]["reach"]) for s in steps),
            max(worst(adaptive[s]["reach"]) for s in ups) <= REACH_S,
        )
    )
    saturated = adaptive["saturated"]
    section.goals.append(
        Goal(
            "P7 saturated: size",
            f"adaptive size ≤ {SATURATED_SIZE} with a downstream taking {SLOTS} at "
            f"once (the median after {settle_s:g} s: the size it settles at; the "
            "max shows its probes)",
            f"median {threads(saturated['size'])}, max "
            f"{threads(saturated['size_max'])}",
            spread(saturated["size"])[0] <= SATURATED_SIZE,
        )
    )
    section.goals.append(
        Goal(
            "P7 saturated: p99",
            f"adaptive p99 ≤ {SATURATED_P99:g}× the best fixed size's",
            times(saturated["ratio"]),
            spread(saturated["ratio"])[0] <= SATURATED_P99,
        )
    )
    section.goals.append(
        Goal(
            "P7 steady: size",
            f"adaptive size's coefficient of variation ≤ {STEADY_CV:.0%} under "
            f"constant need (after {settle_s:g} s)",
            fmt_spread(adaptive["steady"]["cv"], percent),
            spread(adaptive["steady"]["cv"])[0] <= STEADY_CV,
        )
    )


def notes(section: Section, settle_s: float) -> None:
    section.notes.append(
        "Answered 200 in time: by the end of the call's own phase plus the run's "
        "grace (the saturated run: until its queue has drained). Answered per "
        "second: 200s whose answer came within the phase, whenever they were due."
    )
    section.notes.append(
        "Pool size and need: the median of the polls over each step phase's "
        f"second half; saturated and steady, from {settle_s:g} s on. The need is "
        "the pool's own measure (arrivals per second × seconds each holds a "
        "thread); the need in the load's label is Little's law on what was "
        f"offered. Within {BAND:.0%} of the need: of the load's need, clamped to "
        "the pool's bounds as /health reports them; the time from the phase's "
        "start to the first poll within it."
    )
    section.notes.append(
        "The routes are annotated like the service's own (`-> dict[str, int]`): "
        "FastAPI then validates a `def` endpoint's return value on the thread "
        "pool too, so each call takes the pool twice, and while calls queue for "
        "a thread, its answer queues a second time behind them. Where a pool "
        "keeps a queue, its answers per second fall short of what its threads "
        "complete (bench/apps/unlimited.py has no such second trip)."
    )
    if any("≥" in cell for row in section.rows for cell in row):
        section.notes.append(
            "≥: calls still unanswered when the run ended count with the time "
            "they had waited, so the figure is a lower bound."
        )


def compact(last: dict[str, Any]) -> dict[str, Any]:
    """The last repeat's polls of each adaptive server, for latest.json."""
    keys = ("t", "size", "need", "in_use", "waiting", "ceiling")
    return {
        name: {key: [round(s.get(key, math.nan), 2) for s in found] for key in keys}
        for name, found in (
            ("step", last["step"]["found"]),
            ("saturated", last["saturated"]),
            ("steady", last["steady"]),
        )
    }


def plot(ctx: Context, section: Section, last: dict[str, Any], phase_s: float) -> None:
    """The adaptive pool through the step (last repeat): its size and need, the
    load's, and every variant's latencies meanwhile."""
    found = last["step"]["found"]
    xs = [s["t"] for s in found]
    offered = [STEP[min(int(t // phase_s), len(STEP) - 1)] for t in xs]
    pool = {
        "size": (xs, [s.get("size", math.nan) for s in found], COLORS[2]),
        "need it reports": (xs, [s.get("need", math.nan) for s in found], COLORS[1]),
        "in use": (xs, [s.get("in_use", math.nan) for s in found], COLORS[0]),
        "the load's need": (xs, [per_s * hold for per_s, hold in offered], "black"),
        # Only while it holds the pool under its maximum: a saturation found.
        "ceiling, when under the maximum": (
            xs,
            [
                s["ceiling"]
                if s.get("ceiling", math.inf) < s.get("max", 0)
                else math.nan
                for s in found
            ],
            COLORS[3],
        ),
    }
    waiting = {
        "calls waiting for a thread": (
            xs,
            [s.get("waiting", math.nan) for s in found],
            COLORS[3],
        )
    }
    latencies = {}
    for k, label in enumerate([*VARIANTS, FLOOR]):
        result = last["step"][label]
        answered = [
            (due, max(latency, 1e-4))
            for due, latency in zip(result["due"], result["latency"], strict=True)
            if latency is not None
        ]
        latencies[label] = (
            [due for due, _ in answered],
            [latency for _, latency in answered],
            [COLORS[0], COLORS[4], COLORS[2], "gray"][k],
        )
    name = "bench-adaptive.png"
    timeline(
        ctx.out / name,
        "The step on the adaptive pool: "
        + " → ".join(calls(per_s, hold_s) for per_s, hold_s in STEP)
        + " (last repeat)",
        [
            ("threads (adaptive)", pool, True),
            ("calls waiting (adaptive)", waiting, False),
            ("latency of each call (s)", latencies, True),
        ],
        xlabel="seconds into the step",
    )
    section.plots.append(name)
