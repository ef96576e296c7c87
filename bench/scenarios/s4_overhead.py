"""Middleware and lag-monitor overhead: maximum throughput on a trivial route.

The measurements are bench/middleware_overhead.py's (from the lag issue): wrk
against GET /health on the rendered service, on a bare FastAPI app serving the
very same handler, and on that bare app behind a pass-through
BaseHTTPMiddleware, one uvicorn worker each; and bench/user_route.py's (issue
9): wrk against a trivial `async def` route added to the rendered service's
routes.py, and against the same route on bare FastAPI, in pairs, with each
layer's in-process cost per request. This scenario runs both scripts as they
are, with the suite's repeats, and reports their figures against goal P4; it
measures nothing itself.
"""

import json
import re

from harness import Context
from report import Goal, Section, Skip, fmt_spread, rate, spread, times
from services import check_options, find_script, run_script

TITLE = "4. Middleware and lag-monitor overhead"
NEEDS: tuple[str, ...] = ()
SCRIPT = "middleware_overhead.py"
USER_SCRIPT = "user_route.py"
P4_SHARE = 0.97
SERVICE, BARE = "service", "bare FastAPI"
# "round 1: service 9512  bare FastAPI 9730  BaseHTTPMiddleware 5120 req/s"
ROUND = re.compile(r"^round \d+: (.+) req/s$", re.MULTILINE)
FIGURE = re.compile(r"(\S.*?) ([\d.]+)(?:  |$)")


def run(ctx: Context) -> Section:
    path = find_script(ctx.template, SCRIPT)
    plot = "bench-overhead.png"
    # One stall: the stall that follows it is answered 503 by load shedding
    # (the first one pushed the lag p99 past the limit), and the script then
    # waits for a stall that never comes.
    options = {"--rounds": ctx.reps, "--duration": 2, "--idle": 2, "--stalls": 1}
    options["--plot"] = ctx.out / plot
    user_path = find_script(ctx.template, USER_SCRIPT)
    user_plot = "bench-user-route.png"
    user_options = {
        "--pairs": 2 * ctx.reps,
        "--duration": 5,
        "--warmup": 2,
        "--template": ctx.template,
        "--plot": ctx.out / user_plot,
    }
    if ctx.smoke:
        # The scripts render and serve on their own (about 40 s even at their
        # shortest): smoke runs check only that they take the options given here.
        check_options(path, list(options))
        check_options(user_path, list(user_options))
        raise Skip(
            f"smoke mode: bench/{SCRIPT} and bench/{USER_SCRIPT} take the suite's "
            "options; not run"
        )
    args = [str(part) for option in options.items() for part in option]
    output = run_script(path, args, timeout=240)
    measured: dict[str, list[float]] = {}
    for line in ROUND.findall(output):
        for name, value in FIGURE.findall(line):
            measured.setdefault(name, []).append(float(value))
    if SERVICE not in measured or BARE not in measured:
        raise RuntimeError(
            f"no throughput figures in the output of {SCRIPT}:\n{output}"
        )
    section = Section(
        TITLE,
        about=(
            f"From `bench/{SCRIPT}`, run as it is: `GET /health` at full speed (wrk, "
            "one thread) on the rendered async_io service (middleware, lag monitor, "
            "watchdog, load shedding on), on a bare FastAPI app serving the same "
            "handler, and on that app behind one pass-through BaseHTTPMiddleware; "
            "one uvicorn worker each, server and wrk pinned to different cores."
        ),
        header=["App", "Throughput", "÷ bare"],
        raw={"throughput": measured, "output": output},
    )
    bare = measured[BARE]
    for name in [BARE, SERVICE] + [n for n in measured if n not in (BARE, SERVICE)]:
        # The script alternates the variants round by round: pair them so.
        pairs = zip(measured[name], bare, strict=True)
        shares = [value / base for value, base in pairs]
        label = "loopsafe service" if name == SERVICE else name
        row = [label, fmt_spread(measured[name], rate), fmt_spread(shares, times)]
        section.rows.append(row)
        if name == SERVICE:
            section.goals.append(
                Goal(
                    "P4",
                    f"middleware + monitor ≥ {P4_SHARE}× bare throughput",
                    fmt_spread(shares, times),
                    spread(shares)[0] >= P4_SHARE,
                )
            )
    # The figures after the throughput (already in the table): the summary's
    # from "per-request cost in-process" on, not the progress lines.
    summary = output[output.find("per-request cost in") :].split("\nplot:")[0].strip()
    if summary:
        section.notes.append(f"The script's other figures:\n\n```\n{summary}\n```")
    section.plots.append(plot)
    args = [str(part) for option in user_options.items() for part in option]
    user_route(section, run_script(user_path, args, timeout=420), user_plot)
    return section


def user_route(section: Section, output: str, plot: str) -> None:
    """bench/user_route.py's figures: rows, goal P4 for a user's route, a note."""
    line = next(
        (line for line in output.splitlines() if line.startswith("RESULT ")), None
    )
    if line is None:
        raise RuntimeError(f"no RESULT line in the output of {USER_SCRIPT}:\n{output}")
    result = json.loads(line.removeprefix("RESULT "))
    pairs = result["pairs"]
    shares = [pair["ratio"] for pair in pairs]
    section.about += (
        f" And from `bench/{USER_SCRIPT}`: `GET /hello`, an `async def` route "
        "appended to the rendered service's routes.py (async_io, load shedding and "
        "examples on), against the same route on bare FastAPI; uvicorn with uvloop "
        "and httptools, a fresh server per measurement, in pairs taking turns."
    )
    bare = [pair["bare"] for pair in pairs]
    service = [pair["service"] for pair in pairs]
    section.rows.append(
        ["bare FastAPI, GET /hello", fmt_spread(bare, rate), fmt_spread([1.0], times)]
    )
    section.rows.append(
        [
            "loopsafe service, GET /hello in routes.py",
            fmt_spread(service, rate),
            fmt_spread(shares, times),
        ]
    )
    section.goals.append(
        Goal(
            "P4 user route",
            f"an `async def` route in routes.py ≥ {P4_SHARE}× bare FastAPI throughput",
            fmt_spread(shares, times),
            spread(shares)[0] >= P4_SHARE,
        )
    )
    costs = "\n".join(
        f"{name:<26} {us:6.1f} µs" for name, us in result["in_process_us"].items()
    )
    section.notes.append(
        f"`bench/{USER_SCRIPT}`: per-pair ratios "
        + ", ".join(f"{share:.3f}" for share in shares)
        + "; server CPU time per request, bare ÷ service (the same while the "
        "server has its core to itself, steadier when it does not): "
        + ", ".join(f"{pair['cpu_ratio']:.3f}" for pair in pairs)
        + f"; load average {result['load_before']} before, {result['load_after']} "
        f"after. Per request in-process (GET /hello, fastest batch):\n\n```\n"
        f"{costs}\n```"
    )
    section.raw["user_route"] = result
    section.plots.append(plot)
