"""CPU-bound work: /health latency while 4 CPU-heavy requests run at once.

The rendered cpu_bound service computes in a process pool (one worker per
core), its workers at low priority (nice 10, the default), at the lowest
(SCHED_IDLE, PROCESS_POOL_PRIORITY=idle) and at normal priority
(PROCESS_POOL_PRIORITY=normal, the pool before 0.4), and a pool one worker
smaller than the cores (PROCESS_POOL_SIZE): the latency each buys, and the CPU
throughput each keeps. Against them, the same
work in a plain `def` endpoint (on AnyIO's threads), and pure-Python work of
about the same length in `def` (goal P3).
"""

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..harness import BenchProcess, Context, probe, settle, start_all, under_load, warm
from ..plots import idle_and_loaded_p99
from ..report import (
    Goal,
    Latency,
    Section,
    fmt_spread,
    p99_ratio,
    rate,
    spread,
    times,
)
from ..services import Server, kill, spawn

TITLE = "3. CPU-bound work"
NEEDS = ("cpu_bound", "blocking_io")  # blocking_io's interpreter runs bench/apps
CONCURRENCY = 4
BODY = {"secret": "bench", "salt": "salt"}  # 100,000 PBKDF2 rounds by default
P3_LIMIT = 1.5
# A pool that leaves the event loop a core of its own: the latency it buys, and
# the CPU throughput it costs.
SPARED_POOL = max(1, (os.cpu_count() or 1) - 1)
# The machine's own share: the cheapest server there is (bench/apps/tiny.py)
# probed while one busy loop per core runs at SCHED_IDLE, the lowest priority
# Linux has. No server does better than this while every core is busy.
MACHINE = "the machine alone: tiny asyncio server, every core busy at SCHED_IDLE"
BUSY_LOOP = (
    "import os\n"
    "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n"
    "while True: pass"
)


@contextmanager
def every_core_busy(warmup_s: float) -> Iterator[None]:
    """One busy loop per core, each at SCHED_IDLE before this yields: until its
    interpreter has started and reached the first line, a loop runs at normal
    priority, and a probe begun then would measure its start-up, not the floor."""
    cores = os.cpu_count() or 1
    loops = [spawn([sys.executable, "-c", BUSY_LOOP]) for _ in range(cores)]
    try:
        deadline = time.monotonic() + 15
        while not all(at_idle_priority(loop.pid) for loop in loops):
            if time.monotonic() > deadline:
                raise RuntimeError("the busy loops never reached SCHED_IDLE")
            time.sleep(0.01)
        time.sleep(warmup_s)  # as long as the other variants' load runs unprobed
        yield
    finally:
        for loop in loops:
            kill(loop)


def at_idle_priority(pid: int) -> bool:
    try:
        return os.sched_getscheduler(pid) == os.SCHED_IDLE
    except ProcessLookupError:
        raise RuntimeError("a busy loop exited") from None


@dataclass
class Variant:
    label: str
    server: Server
    path: str | None  # None: no requests, the cores kept busy by busy loops
    rendered: bool = False


def heavy_load(variant: Variant) -> dict[str, Any]:
    return {"requests": [["POST", variant.path, BODY]], "concurrency": CONCURRENCY}


def loaded_probe(
    ctx: Context, variant: Variant, floor: int, warmup_s: float, loaded_s: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """/health probed under the variant's load (the trivial server at `floor`
    too, under "floor"), and what that load achieved."""
    if variant.path is None:
        with every_core_busy(warmup_s):
            probed = probe(ctx, variant.server, loaded_s, idle=False, floor=floor)
            return probed, None
    return under_load(
        ctx, variant.server, heavy_load(variant), warmup_s, loaded_s, floor=floor
    )


def run(ctx: Context) -> Section:
    idle_s, warmup_s, loaded_s = (
        ctx.seconds(2, 0.5),
        ctx.seconds(0.5, 0.3),
        ctx.seconds(2, 0.7),
    )
    cpu_def = ctx.bench_app("cpu_def")
    chosen = [
        Variant(
            "loopsafe cpu_bound: process pool, workers at nice 10",
            ctx.server("cpu_bound", "s3-cpu_bound"),
            "/cpu/hash",
            rendered=True,
        ),
        Variant(
            "loopsafe cpu_bound: process pool, workers at SCHED_IDLE",
            ctx.server("cpu_bound", "s3-cpu_bound-idle", PROCESS_POOL_PRIORITY="idle"),
            "/cpu/hash",
        ),
        Variant(
            "loopsafe cpu_bound: process pool, workers at normal priority",
            ctx.server(
                "cpu_bound", "s3-cpu_bound-normal", PROCESS_POOL_PRIORITY="normal"
            ),
            "/cpu/hash",
        ),
        Variant(
            f"loopsafe cpu_bound: a pool of cores − 1 ({SPARED_POOL}), nice 10",
            ctx.server(
                "cpu_bound", "s3-cpu_bound-spared", PROCESS_POOL_SIZE=str(SPARED_POOL)
            ),
            "/cpu/hash",
        ),
        Variant("def: PBKDF2 (releases the GIL)", cpu_def, "/cpu/hash"),
        Variant("def: pure Python (holds the GIL)", cpu_def, "/cpu/python"),
    ]
    servers = list({id(v.server): v.server for v in chosen}.values())
    figures: dict[str, dict[str, list[Any]]] = {v.label: {} for v in chosen}
    start_all(servers)
    with BenchProcess("tiny") as tiny, BenchProcess("tiny") as floor:
        chosen.append(Variant(MACHINE, tiny, None))
        figures[MACHINE] = {}
        try:
            for variant in chosen:
                if variant.path:
                    warm(ctx, variant.server, heavy_load(variant))
            for _ in range(ctx.reps):
                for variant in chosen:
                    settle(variant.server)
                    idle_probed = probe(ctx, variant.server, idle_s, floor=floor.port)
                    probed, heavy = loaded_probe(
                        ctx, variant, floor.port, warmup_s, loaded_s
                    )
                    idle, loaded = Latency.of(idle_probed), Latency.of(probed)
                    floor_ratio = (
                        Latency.of(probed["floor"]).p99
                        / Latency.of(idle_probed["floor"]).p99
                    )
                    calls = (heavy or {}).get("latencies") or [float("nan")]
                    f = figures[variant.label]
                    for key, value in {
                        "idle_p99": idle.p99,
                        "loaded_p99": loaded.p99,
                        "ratio_p99": loaded.p99 / idle.p99,
                        "floor_ratio_p99": floor_ratio,
                        "cpu_rate": heavy["completed"] / heavy["window_s"]
                        if heavy
                        else float("nan"),
                        "cpu_call_median": sorted(calls)[len(calls) // 2],
                        "censored": loaded.censored,
                    }.items():
                        f.setdefault(key, []).append(value)
        finally:
            for server in servers:
                server.stop()
    section = Section(
        TITLE,
        about=(
            f"/health p99, probed open loop at 100/s, idle and while {CONCURRENCY} "
            "clients (closed loop) keep CPU-heavy requests running: PBKDF2-SHA256, "
            "100,000 rounds. The pure-Python variant loops for about as long."
        ),
        header=[
            "Variant",
            "idle p99",
            "loaded p99",
            "p99 loaded ÷ idle",
            "machine floor: the same ÷ of a trivial server",
            "CPU calls answered",
            "CPU call latency (median)",
        ],
        raw=figures,
    )
    for variant in chosen:
        f = figures[variant.label]
        bound = any(f["censored"])
        section.rows.append(
            [
                variant.label,
                fmt_spread(f["idle_p99"]),
                fmt_spread(f["loaded_p99"], bound=bound),
                fmt_spread(f["ratio_p99"], times, bound=bound),
                fmt_spread(f["floor_ratio_p99"], times),
                fmt_spread(f["cpu_rate"], rate),
                fmt_spread(f["cpu_call_median"]),
            ]
        )
        if variant.rendered:
            section.goals.append(
                Goal(
                    "P3",
                    f"cpu_bound /health p99 under load ≤ {P3_LIMIT:g}× idle",
                    p99_ratio(f["ratio_p99"], f["idle_p99"], f["loaded_p99"])
                    + f"; machine floor {fmt_spread(f['floor_ratio_p99'], times)}",
                    spread(f["ratio_p99"])[0] <= P3_LIMIT,
                )
            )
    section.notes.append(
        "CPU calls answered: hashes per second, the CPU throughput. At idle "
        "priority the pool's workers give a core up to any other thread that "
        "wants it (the event loop first), and keep every spare cycle."
    )
    section.notes.append(
        "Machine floor: a second bench/apps/tiny.py probed at the same moments "
        "as each variant, idle and loaded, its p99 loaded ÷ idle: how much the "
        "machine itself, its cores busy with the variant's work, adds to any "
        "server's latency."
    )
    section.notes.append(
        "OpenSSL's PBKDF2 releases the GIL, so on threads it mostly competes for "
        "cores, not for the interpreter; pure-Python work holds the GIL and the "
        "event loop waits for it."
    )
    plot = "bench-cpu-bound.png"
    idle_and_loaded_p99(
        ctx.out / plot,
        f"/health p99, idle and under {CONCURRENCY} concurrent CPU-heavy requests "
        "(log scale; whiskers: min–max)",
        [v.label for v in chosen],
        figures,
    )
    section.plots.append(plot)
    return section
