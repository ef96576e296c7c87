"""Thread pool: blocking-I/O throughput at 200 concurrent calls against pool size.

The rendered blocking_io service, restarted with THREAD_POOL_SIZE at AnyIO's
default (40), the Little's-law size for this load (200 clients each holding a
thread 100 ms: 2,000 calls/s × 0.1 s = 200) and twice that. The ceiling is
Little's law too: min(threads, clients) / 0.1 s (goal P2).
"""

import time

from harness import Context, start_all
from plots import bars
from report import Goal, Section, fmt_spread, percent, rate, spread
from services import finish_loadgen, start_loadgen

TITLE = "2. Thread pool size"
NEEDS = ("blocking_io",)
CLIENTS = 200
CALL_S = 0.1
# Little's law: threads = arrival rate × time in the system. Every client sends
# a call each CALL_S at full speed: CLIENTS / CALL_S calls/s × CALL_S s.
LITTLE = CLIENTS
SIZES = {"40 (AnyIO's default)": 40, f"{LITTLE} (Little's law)": LITTLE}
SIZES[f"{2 * LITTLE} (2× Little's law)"] = 2 * LITTLE
P2_SHARE = 0.9
# Shedding measures something else (scenario 5): limits it never reaches.
NO_SHEDDING = {"SHED_MAX_WAITERS": "1000000", "SHED_LAG_P99_MS": "1000000"}


def limit(threads: int) -> float:
    return min(threads, CLIENTS) / CALL_S


def run(ctx: Context) -> Section:
    warmup_s, measure_s = ctx.seconds(1, 0.3), ctx.seconds(3, 0.7)
    servers = {
        label: ctx.server(
            "blocking_io", f"s2-pool-{size}", THREAD_POOL_SIZE=str(size), **NO_SHEDDING
        )
        for label, size in SIZES.items()
    }
    throughput: dict[str, list[float]] = {label: [] for label in SIZES}
    cpu_share: dict[str, list[float]] = {label: [] for label in SIZES}
    start_all(list(servers.values()))
    try:
        for _ in range(ctx.reps):
            for label, server in servers.items():
                load = {
                    "port": server.port,
                    "requests": [["GET", f"/blocking/wait?ms={CALL_S * 1000:.0f}"]],
                    "concurrency": CLIENTS,
                    "warmup_s": warmup_s,
                    "duration_s": measure_s,
                }
                loading = start_loadgen(load)
                time.sleep(warmup_s)
                cpu = server.cpu_seconds()
                time.sleep(measure_s)
                cpu_share[label].append((server.cpu_seconds() - cpu) / measure_s)
                result = finish_loadgen(loading, warmup_s + measure_s + 20)
                if result["errors"] or set(result["statuses"]) - {"200"}:
                    raise RuntimeError(
                        f"{label}: {result['statuses']}, {result['errors']} errors"
                    )
                throughput[label].append(result["completed"] / result["window_s"])
    finally:
        for server in servers.values():
            server.stop()
    section = Section(
        TITLE,
        about=(
            f"`GET /blocking/wait?ms=100` from {CLIENTS} concurrent clients (closed "
            "loop) on the rendered blocking_io service, with THREAD_POOL_SIZE set "
            "at start; the limit is min(threads, clients) / 100 ms."
        ),
        header=[
            "Threads",
            "Throughput",
            "Little's-law limit",
            "Share of the limit",
            "Server CPU",
        ],
        raw={"throughput": throughput, "server_cpu": cpu_share},
    )
    for label, size in SIZES.items():
        shares = [value / limit(size) for value in throughput[label]]
        section.rows.append(
            [
                label,
                fmt_spread(throughput[label], rate),
                rate(limit(size)),
                fmt_spread(shares, percent),
                fmt_spread(cpu_share[label], percent),
            ]
        )
        if size == LITTLE:
            share = spread(shares)[0]
            section.goals.append(
                Goal(
                    "P2",
                    f"blocking-I/O throughput ≥ {P2_SHARE:.0%} of Little's-law limit",
                    f"{fmt_spread(shares, percent)} of {rate(limit(size))} "
                    f"({LITTLE} threads)",
                    share >= P2_SHARE,
                )
            )
    section.notes.append(
        "Server CPU: the server process's CPU time over the measured window, in % "
        "of one core. Near 100%, one worker process is CPU-bound before its "
        "threads run out: the limit then needs more worker processes."
    )
    plot = "bench-thread-pool.png"
    bars(
        ctx.out / plot,
        f"Blocking-I/O throughput, {CLIENTS} concurrent 100 ms calls "
        "(whiskers: min–max of the repeats)",
        list(SIZES),
        {"measured": [throughput[label] for label in SIZES]},
        "calls answered per second",
        lines=[limit(size) for size in SIZES.values()],
        line_label="Little's-law limit",
    )
    section.plots.append(plot)
    return section
