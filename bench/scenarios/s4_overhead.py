"""Middleware and lag-monitor overhead: maximum throughput on a trivial route.

On the rendered async_io service (load shedding and examples on), with
bench/middleware_overhead.py: wrk against GET /health on the service, on a bare
FastAPI app serving the very same handler, and on that bare app behind a
pass-through BaseHTTPMiddleware, plus the in-process cost of each layer, the
idle CPU and how fast a stall is reported; with bench/user_route.py (issue 9):
wrk against a trivial `async def` route added to the service's routes.py, and
against the same route on bare FastAPI and on each layer of the service, side by
side on one core (goal P4).
"""

import itertools

from .. import middleware_overhead as overhead
from .. import user_route
from ..harness import Context, log
from ..report import Goal, Section, fmt_spread, ms, rate, spread, times
from ..services import Project, have_wrk

TITLE = "4. Middleware and lag-monitor overhead"
NEEDS = ("async_io",)
P4_SHARE = 0.97
SERVICE, BARE = "service", "bare FastAPI"


def run(ctx: Context) -> Section:
    if not have_wrk():
        # A single Python process cannot load a FastAPI worker to its limit.
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    project = ctx.projects["async_io"]
    overhead.prepare(project)
    user_route.prepare(project)
    log("  GET /health: throughput (wrk), idle CPU, stall detection")
    measured, idle, warn_ms, visible_ms = overhead.throughput(
        project, ctx.work, ctx.reps, ctx.seconds(2, 1), ctx.seconds(3, 0.5)
    )
    log("  GET /health in-process")
    # In-process timings are printed, not judged: between runs on a shared VM
    # they move by several µs, as much as a layer costs, however many batches.
    per_request = overhead.in_process(project, batches=int(ctx.seconds(40, 10)))
    plot = "bench-overhead.png"
    overhead.plot(ctx.out / plot, measured, per_request, idle, warn_ms)

    section = Section(
        TITLE,
        about=(
            "`GET /health` at full speed (wrk, one thread, 32 connections) on the "
            "rendered async_io service (middleware, lag monitor, watchdog, load "
            "shedding on), on a bare FastAPI app serving the same handler (its "
            "own OpenTelemetry hooks off, as the service has them), and on "
            "that app behind one pass-through BaseHTTPMiddleware; one uvicorn "
            "worker each, server and wrk pinned to different cores, the variants "
            "in turns within each round. And `GET /hello`, an `async def` route "
            "appended to the service's routes.py, against the same route on bare "
            "FastAPI, as FastAPI() comes and with its own OpenTelemetry hooks off "
            "(as the service has them), and on each layer of the service, a fresh "
            "server of each per round side by side on one core, each loaded at "
            "once by its own wrk."
        ),
        header=["App", "Throughput", "÷ bare (per round)"],
        raw={
            "throughput": measured,
            "in_process_us": per_request,
            "idle_cpu_percent": idle,
            "warning_ms": warn_ms,
            "metrics_ms": visible_ms,
        },
    )
    for name in [BARE, SERVICE] + [n for n in measured if n not in (BARE, SERVICE)]:
        shares = overhead.paired(measured, name)
        label = "loopsafe service, GET /health" if name == SERVICE else name
        section.rows.append(
            [label, fmt_spread(measured[name], rate), fmt_spread(shares, times)]
        )
        if name == SERVICE:
            section.goals.append(
                Goal(
                    "P4",
                    f"middleware + monitor ≥ {P4_SHARE}× bare throughput",
                    fmt_spread(shares, times),
                    spread(shares)[0] >= P4_SHARE,
                )
            )
    base = per_request[BARE]
    section.notes.append(
        "Per request in-process (GET /health, fastest batch): "
        + ", ".join(
            f"{name} {us:.1f} µs ({us - base:+.1f})" for name, us in per_request.items()
        )
        + ". Idle CPU, % of one core: "
        + ", ".join(f"{name} {value:.2f}" for name, value in idle.items())
        + f". A {overhead.STALL_MS} ms stall: the watchdog's warning "
        f"{ms(warn_ms[0] / 1000)} after it began, in /metrics "
        f"{ms(visible_ms[0] / 1000)} after the stalled response."
    )
    section.plots.append(plot)
    user_routes(ctx, project, section)
    return section


def user_routes(ctx: Context, project: Project, section: Section) -> None:
    """bench/user_route.py's figures: rows, goal P4 for a user's route, a note."""
    log("  GET /hello throughput (wrk), side by side")
    rounds = user_route.throughput(
        project,
        rounds=int(ctx.seconds(ctx.reps, 1)),
        seconds=ctx.seconds(5, 1),
        warmup=1,
        log_dir=ctx.work,
    )
    log("  GET /hello in-process")
    layers = user_route.in_process(
        project,
        rounds=int(ctx.seconds(15, 3)),
        requests=int(ctx.seconds(500, 200)),
    )
    counted = None
    if not ctx.smoke:  # minutes under valgrind: the full run only
        if not user_route.have_valgrind():
            raise RuntimeError("valgrind is missing (apt-get install -y valgrind)")
        log("  GET /hello instructions per request (cachegrind)")
        counted = user_route.instructions(project, ctx.work)
    plot = "bench-user-route.png"
    user_route.plot(ctx.out / plot, rounds, layers)
    shares = [round_["ratio"] for round_ in rounds]
    # Each layer on the one before (user_route.LAYERS), the service last.
    labels = {name: label for name, (label, _) in user_route.LAYERS.items()}
    labels["service"] = "loopsafe service"
    for name, label in labels.items():
        served = [round_[name] for round_ in rounds]
        ratios = [round_[name] / round_["bare"] for round_ in rounds]
        row = [f"GET /hello: {label}", fmt_spread(served, rate)]
        section.rows.append([*row, fmt_spread(ratios, times)])
    costs = [
        f"{labels[name]} "
        + fmt_spread([round_[name] / round_[before] for round_ in rounds], times)
        for before, name in itertools.pairwise(labels)
    ]
    section.goals.append(
        Goal(
            "P4 user route",
            f"an `async def` route in routes.py ≥ {P4_SHARE}× bare FastAPI throughput",
            fmt_spread(shares, times),
            spread(shares)[0] >= P4_SHARE,
        )
    )
    if counted:
        section.goals.append(
            Goal(
                "P4 user route, instructions",
                f"bare ÷ service instructions per request ≥ {P4_SHARE}",
                f"{counted['ratio']:.3f} ({counted['bare']:,.0f} ÷ "
                f"{counted['service']:,.0f}, cachegrind: load-independent)",
                counted["ratio"] >= P4_SHARE,
            )
        )
    own = [round_["own_ratio"] for round_ in rounds]
    section.notes.append(
        "GET /hello, a fresh server of each layer per round, side by side on one "
        "core, each loaded by its own wrk: service ÷ bare per round "
        + ", ".join(f"{share:.3f}" for share in shares)
        + "; server CPU time per request, bare ÷ service: "
        + ", ".join(f"{round_['cpu_ratio']:.3f}" for round_ in rounds)
        + f". The service's own layers (service ÷ bare with FastAPI's telemetry "
        f"off, as the service has it): {fmt_spread(own, times)}; each layer ÷ the "
        "one before it, over HTTP: " + ", ".join(costs) + ". "
        "Per request in-process (fastest batch), each layer on the one before "
        "(its own cost in brackets): "
        + ", ".join(
            [f"{name} {us:.1f} µs" for name, us in list(layers.items())[:1]]
            + [
                f"{name} {us:.1f} µs ({us - before:+.1f})"
                for (_, before), (name, us) in itertools.pairwise(layers.items())
            ]
        )
        + "."
    )
    section.raw["user_route"] = {
        "rounds": rounds,
        "in_process_us": layers,
        "instructions_per_request": counted,
    }
    section.plots.append(plot)
