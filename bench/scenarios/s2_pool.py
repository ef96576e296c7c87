"""Thread pool: blocking-I/O throughput at 200 concurrent calls against pool size.

The rendered blocking_io service with THREAD_POOL_SIZE at AnyIO's default (40),
and at the Little's-law size for this load (200 clients each holding a thread
100 ms: 2,000 calls/s × 0.1 s = 200 threads) in one worker process and split
over two (WORKERS=2, 100 threads each). The ceiling is Little's law too:
min(threads, clients) / 0.1 s (goal P2, on the one-process row).
"""

from ..harness import Context, ceilings, closed_loop_rate, start_all
from ..plots import bars
from ..report import Goal, Section, fmt_spread, ms, percent, rate, spread
from ..services import Server

TITLE = "2. Thread pool size"
NEEDS = ("blocking_io",)
CLIENTS = 200
CALL_S = 0.1
PATH = f"/blocking/wait?ms={CALL_S * 1000:.0f}"
# Little's law: threads = arrival rate × time in the system. Every client sends
# a call each CALL_S at full speed: CLIENTS / CALL_S calls/s × CALL_S s.
LITTLE = CLIENTS
# Label: (worker processes, threads in each).
SIZES = {
    "40 (AnyIO's default)": (1, 40),
    f"{LITTLE} (Little's law)": (1, LITTLE),
    f"{LITTLE} (Little's law) over 2 workers": (2, LITTLE // 2),
}
P2_SHARE = 0.9
# Shedding measures something else (scenario 5): limits it never reaches.
NO_SHEDDING = {"SHED_MAX_WAITERS": "1000000", "SHED_LAG_P99_MS": "1000000"}


def limit(workers: int, threads: int) -> float:
    return min(workers * threads, CLIENTS) / CALL_S


def pool_server(ctx: Context, workers: int, threads: int) -> Server:
    """The blocking_io service with `workers` processes of `threads` threads each."""
    name = f"s2-pool-{workers}x{threads}"
    env = {"THREAD_POOL_SIZE": str(threads), **NO_SHEDDING}
    server = ctx.server("blocking_io", name, **env)
    server.workers = workers
    return server


def run(ctx: Context) -> Section:
    warmup_s, measure_s = ctx.seconds(1, 1), ctx.seconds(3, 1)
    servers = {label: pool_server(ctx, *size) for label, size in SIZES.items()}
    throughput: dict[str, list[float]] = {label: [] for label in SIZES}
    cpu_share: dict[str, list[float]] = {label: [] for label in SIZES}
    clients = set()
    start_all(list(servers.values()))
    try:
        for _ in range(ctx.reps):
            for label, server in servers.items():
                answered, cpu, client = closed_loop_rate(
                    server, PATH, CLIENTS, warmup_s, measure_s
                )
                throughput[label].append(answered)
                cpu_share[label].append(cpu)
                clients.add(client)
    finally:
        for server in servers.values():
            server.stop()
    section = Section(
        TITLE,
        about=(
            f"`GET {PATH}` from {CLIENTS} concurrent clients (closed loop: "
            f"{' and '.join(sorted(clients))}) on the rendered blocking_io service, "
            "with THREAD_POOL_SIZE (threads per process) and uvicorn's worker "
            "processes set at start; the limit is min(threads, clients) / 100 ms. "
            f"The clients' own ceilings: {ceilings(ctx)}."
        ),
        header=[
            "Threads",
            "Throughput",
            "Little's-law limit",
            "Share of the limit",
            "Server CPU",
            "CPU per call",
        ],
        raw={"throughput": throughput, "server_cpu": cpu_share},
    )
    for label, size in SIZES.items():
        shares = [value / limit(*size) for value in throughput[label]]
        per_call = [
            cpu / answered
            for cpu, answered in zip(cpu_share[label], throughput[label], strict=True)
        ]
        section.rows.append(
            [
                label,
                fmt_spread(throughput[label], rate),
                rate(limit(*size)),
                fmt_spread(shares, percent),
                fmt_spread(cpu_share[label], percent),
                fmt_spread(per_call, ms),
            ]
        )
        if size == (1, LITTLE):
            share = spread(shares)[0]
            section.goals.append(
                Goal(
                    "P2",
                    f"blocking-I/O throughput ≥ {P2_SHARE:.0%} of Little's-law limit",
                    f"{fmt_spread(shares, percent)} of {rate(limit(*size))} "
                    f"({LITTLE} threads, one worker process)",
                    share >= P2_SHARE,
                )
            )
    section.notes.append(
        "Server CPU: the server's CPU time over the measured window (all its "
        "worker processes), in % of one core; CPU per call: that time over the "
        "calls answered. Near 100%, one worker process is CPU-bound before its "
        "threads run out, and more threads add nothing: the limit then needs "
        "more worker processes, and cores for them (the client runs on the "
        "same machine)."
    )
    plot = "bench-thread-pool.png"
    bars(
        ctx.out / plot,
        f"Blocking-I/O throughput, {CLIENTS} concurrent 100 ms calls "
        "(whiskers: min–max of the repeats)",
        list(SIZES),
        {"measured": [throughput[label] for label in SIZES]},
        "calls answered per second",
        lines=[limit(*size) for size in SIZES.values()],
        line_label="Little's-law limit",
    )
    section.plots.append(plot)
    return section
