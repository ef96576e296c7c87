"""loopsafe's benchmark suite: render services, load them, write the tables and plots.

    uv run python -m bench               # everything, about 13 minutes on 2 cores
    uv run python -m bench --smoke       # seconds per scenario: does it still run?
    uv run python -m bench --only s1,s3  # some scenarios
    uv run python -m bench --template ../other-checkout  # another template tree

A full run writes docs/benchmarks.md and its plots, docs/bench-*.png (committed),
and bench/results/latest.json, every measurement (not committed); with --only,
the other scenarios' sections are kept from latest.json. --smoke, or --out,
writes all of it to one directory instead (bench/results/smoke by default).
It exits 1 when a scenario failed, and says so in its section.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .harness import IDLE_SEND_LAGS, PROJECTS, Context, log
from .report import Goal, Machine, Section, machine, markdown
from .scenarios import SCENARIOS
from .services import REPO, Project, kill_all, ticks_busy, ticks_ours

RERUN = """\
## Rerun them

From a clone of loopsafe, on a quiet machine (the figures are only as steady as
the machine: nothing else should run meanwhile):

```sh
uv run python -m bench            # every scenario, about 13 minutes
uv run python -m bench --only s2  # one scenario; --smoke: seconds, as a check
```

It renders each service from this checkout with Copier into a temporary
directory, `uv sync`s it, starts it with uvicorn (one worker, 127.0.0.1, no
access log), drives the load, and rewrites this page and its plots. Maximum
throughputs come from wrk where it is installed (`apt-get install -y wrk`),
from the suite's Python generator otherwise; scenario 0 gives the ceiling of
each. Scenario 6 needs RabbitMQ on 127.0.0.1 and the `redis-server` binary
(it starts Redis servers of its own).
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds per scenario")
    parser.add_argument("--only", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument(
        "--template", type=Path, default=REPO, help="template tree (default: this repo)"
    )
    parser.add_argument("--reps", type=int, help="repeats of each figure (default 3)")
    parser.add_argument("--out", type=Path, help="write everything here instead")
    parser.add_argument(
        "--work", type=Path, help="renders and logs (default: temporary)"
    )
    args = parser.parse_args()
    # The bench starts many Python processes (servers, a Celery worker after
    # each kill, load generators, servers under cachegrind) from a handful of
    # virtualenvs: with bytecode caching each start after the first reads .pyc
    # files instead of compiling every module again. Some machines turn it off
    # for everything (dev.py does the same for the test suite).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

    # SIGTERM unwinds like Ctrl-C: every `finally` runs and stops its processes.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    chosen = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    out = args.out or (
        REPO / "bench" / "results" / "smoke" if args.smoke else REPO / "docs"
    )
    out.mkdir(parents=True, exist_ok=True)
    reps = args.reps or (1 if args.smoke else 3)
    started = time.monotonic()
    about_run = {"date": time.strftime("%Y-%m-%d %H:%M %Z")} | machine()
    # Before the run: it rewrites docs/, which is no change to the template.
    template = commit(args.template.resolve())
    with tempfile.TemporaryDirectory(prefix="loopsafe-bench-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        ctx = Context(args.template.resolve(), work, out, args.smoke, reps)
        try:
            sections, failed = run_scenarios(ctx, chosen)
        finally:
            kill_all()
    about_run |= {
        "template": template,
        "mode": "smoke (figures meaningless)" if args.smoke else "full",
        "repeats per figure": str(reps),
        "duration": f"{time.monotonic() - started:.0f} s",
        "load average at the end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }
    full = not (args.smoke or args.out)
    if full and args.only:
        sections, about_run = keep_the_others(sections, about_run, chosen)
    write(sections, about_run, out, full)
    return 1 if failed else 0


def keep_the_others(
    sections: list[Section], about_run: dict[str, Any], chosen: list[str]
) -> tuple[list[Section], dict[str, Any]]:
    """This run's sections, and the other scenarios' from the last full run."""
    latest = REPO / "bench" / "results" / "latest.json"
    if not latest.exists():
        return sections, about_run
    previous = json.loads(latest.read_text())
    kept = {s["title"]: s for s in previous["sections"]}
    kept |= {s.title: asdict(s) for s in sections}
    merged = [
        Section(
            **kept[m.TITLE]
            | {
                "goals": [Goal(**g) for g in kept[m.TITLE]["goals"]],
                "machine": Machine(**kept[m.TITLE]["machine"])
                if kept[m.TITLE].get("machine")
                else None,
            }
        )
        for m in SCENARIOS.values()
        if m.TITLE in kept
    ]
    # The page describes the full run; a line says what was measured since.
    rerun = f"{about_run['date']}, template {about_run['template']}, load average "
    rerun += (
        f"{about_run['load average at start']} → {about_run['load average at the end']}"
    )
    run = previous["run"] | {f"rerun of {', '.join(chosen)}": rerun}
    return merged, run


def run_scenarios(ctx: Context, chosen: list[str]) -> tuple[list[Section], bool]:
    needed = set()
    for key in chosen:
        scenario = SCENARIOS[key]
        smoke_needs = getattr(scenario, "SMOKE_NEEDS", scenario.NEEDS)
        needed |= set(smoke_needs if ctx.smoke else scenario.NEEDS)
    wanted = {
        ctx.work / name: {
            "project_name": f"bench {name}",
            "workload": name,
            "task_durability": "ephemeral",
            "examples": "true",  # the loads call the examples' routes
            **PROJECTS[name],
        }
        for name in PROJECTS
        if name in needed
    }
    log(f"rendering {', '.join(sorted(needed)) or 'nothing'} from {ctx.template}")
    for project in Project.render_all(ctx.template, wanted):
        ctx.projects[project.path.name] = project
    sections, failed = [], False
    for key in chosen:
        scenario = SCENARIOS[key]
        log(f"{scenario.TITLE} ...")
        begun = time.monotonic()
        load, busy, ours = os.getloadavg()[0], ticks_busy(), ticks_ours()
        IDLE_SEND_LAGS.clear()
        try:
            section = scenario.run(ctx)
            seconds = time.monotonic() - begun
            others = (ticks_busy() - busy) - (ticks_ours() - ours)
            section.machine = Machine(
                load,
                os.getloadavg()[0],
                max(0.0, others / os.sysconf("SC_CLK_TCK") / seconds),
                statistics.median(IDLE_SEND_LAGS) if IDLE_SEND_LAGS else None,
            )
        except Exception:
            failed = True
            traceback.print_exc()
            error = traceback.format_exc().strip().splitlines()[-1]
            section = Section(scenario.TITLE, skipped=f"FAILED: {error}")
        log(f"{scenario.TITLE}: {time.monotonic() - begun:.0f} s")
        sections.append(section)
    return sections, failed


def commit(template: Path) -> str:
    """The template's commit, and whether files differed from it: never a path."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=template, capture_output=True, text=True
        ).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    return head + (" + uncommitted changes" if git("status", "--porcelain") else "")


# The page's own prose, after its tables: what the runs mean, figure by figure.
NOTES = "<!-- Everything below is written by hand; `python -m bench` keeps it"


def kept_notes(page: Path) -> str:
    """The hand-written part of an existing page, from its marker on ("": none)."""
    text = page.read_text() if page.exists() else ""
    return text[text.index(NOTES) :] if NOTES in text else ""


def write(
    sections: list[Section], about_run: dict[str, Any], out: Path, full: bool
) -> None:
    title = "# Benchmarks\n\nMeasured by `python -m bench`: the median of the repeats, "
    title += "[minimum–maximum]. What the figures mean, and how they are taken, "
    title += "follows the tables ([What the runs mean](#what-the-runs-mean))."
    page = markdown(sections, about_run, preamble=title) + "\n" + RERUN
    notes = kept_notes(out / "benchmarks.md")
    (out / "benchmarks.md").write_text(page + ("\n" + notes if notes else ""))
    raw = {"run": about_run, "sections": [asdict(s) for s in sections]}
    results = REPO / "bench" / "results" if full else out
    results.mkdir(parents=True, exist_ok=True)
    (results / "latest.json").write_text(json.dumps(raw, indent=1, default=str))
    log(f"wrote {out / 'benchmarks.md'}")
    print(markdown(sections, about_run, preamble=title))


if __name__ == "__main__":
    sys.exit(main())
