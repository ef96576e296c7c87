"""Durability: jobs lost when the Celery worker is SIGKILLed mid-run.

The measurement is bench/durability.py's (from the durable issue): the same
jobs with Celery's defaults and with loopsafe's preset, on Redis and on
RabbitMQ, the worker killed mid-run, the jobs that never complete counted. This
scenario runs that script as it is and shows what it printed; it measures
nothing itself.
"""

from harness import Context
from report import Goal, Section, Skip
from services import check_options, find_script, run_script

TITLE = "6. Durability"
NEEDS: tuple[str, ...] = ()
SCRIPT = "durability.py"


def run(ctx: Context) -> Section:
    path = find_script(ctx.template, SCRIPT)
    if path is None:
        raise Skip(
            f"bench/{SCRIPT} (the durable issue's side-by-side SIGKILL script) is "
            f"not in {ctx.template} nor in this checkout; rerun once it has landed"
        )
    if ctx.smoke:
        # A real crash run takes minutes: smoke runs check only that it starts.
        check_options(path, [])
        raise Skip(f"smoke mode: bench/{SCRIPT} answers --help; not run")
    output = run_script(path, [], timeout=420)
    section = Section(
        TITLE,
        about=f"From `bench/{SCRIPT}`, run as it is.",
        raw={"output": output},
    )
    section.notes.append(f"What it printed:\n\n```\n{output.strip()}\n```")
    section.goals.append(
        Goal("0 jobs lost", "no job lost with the preset", "see section 6", None)
    )
    return section
