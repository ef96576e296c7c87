"""Middleware and lag-monitor overhead: maximum throughput on a trivial route.

The measurement is bench/middleware_overhead.py's (from the lag issue): wrk
against GET /health on the rendered service, on a bare FastAPI app serving the
very same handler, and on that bare app behind a pass-through
BaseHTTPMiddleware, one uvicorn worker each. This scenario runs that script as
it is, with the suite's repeats and durations, and reports its figures against
goal P4; it measures nothing itself.
"""

import re

from harness import Context
from report import Goal, Section, Skip, fmt_spread, rate, spread, times
from services import check_options, find_script, run_script

TITLE = "4. Middleware and lag-monitor overhead"
NEEDS: tuple[str, ...] = ()
SCRIPT = "middleware_overhead.py"
P4_SHARE = 0.97
SERVICE, BARE = "service", "bare FastAPI"
ROUND = re.compile(r"^round (\d+): (.+?)\s+([\d.]+) req/s$", re.MULTILINE)


def run(ctx: Context) -> Section:
    path = find_script(ctx.template, SCRIPT)
    plot = "bench-overhead.png"
    # One stall: the stall that follows it is answered 503 by load shedding
    # (the first one pushed the lag p99 past the limit), and the script then
    # waits for a stall that never comes.
    options = {"--rounds": ctx.reps, "--duration": 2, "--idle": 2, "--stalls": 1}
    options["--plot"] = ctx.out / plot
    if ctx.smoke:
        # The script renders and serves on its own (about 40 s even at its
        # shortest): smoke runs check only that it takes the options given here.
        check_options(path, list(options))
        raise Skip(f"smoke mode: bench/{SCRIPT} takes the suite's options; not run")
    args = [str(part) for option in options.items() for part in option]
    output = run_script(path, args, timeout=240)
    measured: dict[str, list[float]] = {}
    for _, name, value in ROUND.findall(output):
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
    summary = output[output.find("idle CPU") :].split("\nplot:")[0].strip()
    if summary:
        section.notes.append(f"The script's other figures:\n\n```\n{summary}\n```")
    section.plots.append(plot)
    return section
