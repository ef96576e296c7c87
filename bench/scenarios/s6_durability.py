"""Durability: jobs lost when the Celery worker is SIGKILLed mid-run.

The measurement is bench/durability.py's (from the durable issue): the same
jobs with Celery's defaults and with loopsafe's preset, on Redis and on
RabbitMQ, the worker SIGKILLed a third of the way through, the jobs whose
effect never happens counted. This scenario runs that script as it is and
reports its figures against the goal; it measures nothing itself.
"""

import json

from harness import Context
from report import Goal, Section, Skip
from services import check_options, find_script, run_script

TITLE = "6. Durability"
NEEDS: tuple[str, ...] = ()
SCRIPT = "durability.py"
JOBS = 40
PRESET = "loopsafe preset"


def figures(output: str) -> dict[str, dict[str, dict]]:
    """The results the script prints as indented JSON: {broker: {mode: {...}}}."""
    lines = output.splitlines()
    start = lines.index("{")
    end = len(lines) - lines[::-1].index("}")
    return json.loads("\n".join(lines[start:end]))


def run(ctx: Context) -> Section:
    path = find_script(ctx.template, SCRIPT)
    plot = "bench-durability.png"
    options = {"--jobs": JOBS, "--png": ctx.out / plot}
    if ctx.smoke:
        # A crash run takes minutes: smoke runs check only the options used here.
        check_options(path, list(options))
        raise Skip(f"smoke mode: bench/{SCRIPT} takes the suite's options; not run")
    args = [str(part) for option in options.items() for part in option]
    output = run_script(path, args, timeout=420)
    try:
        results = figures(output)
    except ValueError:
        message = f"no JSON results in the output of {SCRIPT}:\n{output}"
        raise RuntimeError(message) from None
    section = Section(
        TITLE,
        about=(
            f"From `bench/{SCRIPT}`, run as it is, once per broker and configuration "
            f"(a count, not a timing): {JOBS} jobs of 0.5 s on a worker with 8 "
            "threads, SIGKILLed once a third are done; a second worker then runs "
            "until nothing changes. Lost: jobs whose effect never happened."
        ),
        header=[
            "Broker",
            "Configuration",
            "Lost",
            "of them running at the kill",
            "reserved, not started",
            "Reruns",
            "Effects applied twice",
        ],
        raw={"results": results, "output": output},
    )
    for broker, modes in results.items():
        for mode, r in modes.items():
            section.rows.append(
                [broker, mode]
                + [
                    f"{r[key]}"
                    for key in ("lost", "lost_running", "lost_reserved", "reruns")
                ]
                + [str(r.get("doubled", "–"))]
            )
            if mode == PRESET:
                section.goals.append(
                    Goal(
                        f"0 jobs lost, {broker}",
                        "no job lost with the preset when the worker is SIGKILLed",
                        f"{r['lost']} of {r['jobs']}",
                        r["lost"] == 0,
                    )
                )
    section.plots.append(plot)
    return section
