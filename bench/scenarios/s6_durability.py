"""Durability: jobs lost when the Celery worker is SIGKILLed mid-run.

The measurement is bench/durability.py's (from the durable issue): it runs the
same jobs with Celery's defaults and with loopsafe's preset, on Redis and on
RabbitMQ, kills the worker, and counts the jobs that never complete. This
scenario runs that script as it is and reports its figures against the goal;
it measures nothing itself.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Context
from report import Goal, Section, Skip
from services import REPO, kill, spawn

TITLE = "6. Durability"
NEEDS: tuple[str, ...] = ()


def script(ctx: Context) -> Path:
    for tree in (ctx.template, REPO):
        candidate = tree / "bench" / "durability.py"
        if candidate.exists():
            return candidate
    raise Skip(
        "bench/durability.py (the durable issue's side-by-side SIGKILL script) is "
        f"not in {ctx.template} nor in {REPO}; rerun once it has landed"
    )


def run(ctx: Context) -> Section:
    path = script(ctx)
    options = subprocess.run(
        [sys.executable, str(path), "--help"], capture_output=True, text=True
    ).stdout
    command = [sys.executable, str(path)]
    if ctx.smoke and "--smoke" in options:
        command.append("--smoke")
    with tempfile.TemporaryDirectory() as temporary:
        figures_path = Path(temporary) / "durability.json"
        if "--json" in options:
            command += ["--json", str(figures_path)]
        process = spawn(
            command, cwd=path.parent.parent, stdout=subprocess.PIPE, text=True
        )
        try:
            output, _ = process.communicate(timeout=ctx.seconds(420, 180))
        finally:
            kill(process)
        if process.returncode != 0:
            raise RuntimeError(f"{path} exited {process.returncode}:\n{output}")
        rows = json.loads(figures_path.read_text()) if figures_path.exists() else None
    section = Section(
        TITLE,
        about=f"From `{path.relative_to(path.parent.parent)}`, run as it is.",
        raw={"output": output, "rows": rows},
    )
    if rows is None:
        section.notes.append(f"Its output:\n\n```\n{output.strip()}\n```")
        section.goals.append(
            Goal("0 jobs lost", "no job lost with the preset", "see section 6", None)
        )
        return section
    section.header = ["Broker", "Configuration", "Jobs", "Lost"]
    for row in rows:
        section.rows.append(
            [row["broker"], row["config"], str(row["submitted"]), str(row["lost"])]
        )
        if row["config"] == "preset":
            section.goals.append(
                Goal(
                    f"0 jobs lost, {row['broker']}",
                    "no job lost with the preset when the worker is SIGKILLed",
                    f"{row['lost']} of {row['submitted']}",
                    row["lost"] == 0,
                )
            )
    return section
