"""Durability: a chaos run for Celery's defaults, the preset without its
reconciler and the preset with it, on Redis and on RabbitMQ.

bench/durability.py runs each configuration (see its docstring for the chaos);
this module runs it once per broker and configuration, in the rendered durable
project's environment, and makes the table, the goal and the plot. Counts more
than timings: the machine's load changes the time to recover, not what is lost.
"""

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from .. import durability
from ..harness import Context, log
from ..plots import COLORS
from ..report import Goal, Section
from ..services import REPO, kill, project_env, spawn

TITLE = "6. Durability"
NEEDS = ("durable_redis", "durable_rabbitmq")
SMOKE_NEEDS = ("durable_redis",)  # a smoke run: Redis only, the same code
BROKERS = {
    "redis": ("durable_redis", durability.PRIVATE_REDIS),
    "rabbitmq": ("durable_rabbitmq", durability.RABBITMQ),
}
DEFAULTS, NO_RECONCILER, RECONCILER = durability.MODES
# The same chaos for every configuration: the kills' moments and the jobs.
SEED = int(os.environ.get("BENCH_SEED", "2026"))
PLOT = "bench-durability.png"
# Jobs a run may finish twice: a worker killed between a job's end and the
# record of its success runs it again.
MAX_TWICE = 2


def run(ctx: Context) -> Section:
    timing = durability.SMOKE if ctx.smoke else durability.FULL
    brokers = {
        broker: (name, url)
        for broker, (name, url) in BROKERS.items()
        if name in (SMOKE_NEEDS if ctx.smoke else NEEDS)
    }
    # Every run at once, each with workers, a queue, a database (and on Redis a
    # broker) of its own: they share the machine only. What they count (jobs
    # lost, run twice) does not depend on its load; the time to recover does.
    runs = {
        (broker, mode): start_chaos_run(ctx, name, url, mode, timing)
        for broker, (name, url) in brokers.items()
        for mode in durability.MODES
    }
    results: dict[str, dict[str, dict[str, Any]]] = {broker: {} for broker in brokers}
    for (broker, mode), chaos in runs.items():
        results[broker][mode] = finish(chaos, timing)
    plot(results, timing, ctx.out / PLOT)
    section = Section(
        TITLE,
        about=about(timing),
        header=[
            "Broker",
            "Configuration",
            "Jobs lost",
            "Jobs run twice to the end (an unkeyed effect doubled)",
            "Keyed effect doubled",
            "Published again by the reconciler",
            "Worker SIGKILLs",
            "All done",
        ],
        raw={"seed": SEED, "timing": timing, "results": results},
    )
    for broker, modes in results.items():
        for mode, r in modes.items():
            section.rows.append(
                [broker, mode]
                + [f"{r['lost']} of {r['jobs']}", str(r["doubled"])]
                + [str(r["keyed_doubled"])]
                + ["–" if r["republished"] is None else str(r["republished"])]
                + [str(r["kills"]), done_after(r)]
            )
        r = modes[RECONCILER]
        section.goals.append(
            Goal(
                f"0 jobs lost, {broker}",
                "under chaos, the preset (reconciler on) loses no job and applies "
                "no keyed effect twice",
                f"{r['lost']} of {r['jobs']} lost, {r['keyed_doubled']} doubled, "
                f"all done {done_after(r)}",
                r["lost"] == 0 and r["keyed_doubled"] == 0,
            )
        )
        section.goals.append(
            Goal(
                f"Single recovery, {broker}",
                f"under chaos, the preset (reconciler on) runs at most {MAX_TWICE} "
                "jobs to their end twice, and publishes again no more jobs than "
                "were really gone (never published, or dropped by the Redis restart)",
                f"{r['doubled']} of {r['jobs']} run twice, {r['republished']} "
                f"published again, {r['gone']} gone",
                r["doubled"] <= MAX_TWICE and r["republished"] <= r["gone"],
            )
        )
    section.plots.append(PLOT)
    section.notes += notes(results)
    return section


def notes(results: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    said = [
        f"{NO_RECONCILER}: the preset with JOB_LOST_AFTER_S={durability.NEVER_LOST_S}"
        ", so its reconciler never takes a job for lost: the preset as it was "
        "before the job registry's reconciler.",
        "Lost with Celery's defaults: jobs acknowledged as they started, then "
        "killed running; on Redis also jobs a killed worker had reserved, which Redis "
        "hands back only after its default visibility timeout of 1 hour.",
        "Without a reconciler, the jobs committed and never published are lost; "
        "on Redis, so are the jobs queued when it restarted.",
    ]
    said.append(
        f"{RECONCILER}: the reconciler publishes again only the jobs the broker "
        "no longer has (a killed worker's unacknowledged jobs are the broker's to "
        "hand back), and a copy of a job that succeeded is skipped when it starts. "
        "Gone: the jobs never published, and those the Redis restart dropped "
        "(queued, or unacknowledged: the running ones among them finish unless "
        "their worker is killed too); a worker killed between popping a job from "
        "Redis and recording it as unacknowledged loses one more, uncounted."
    )
    if any(modes.get(RECONCILER, {}).get("doubled") for modes in results.values()):
        said.append(
            f"Run twice, {RECONCILER}: a worker killed after a job's last line and "
            "before its success was recorded; the job runs again. The keyed effect "
            "is applied once."
        )
    return said


class ChaosRun(NamedTuple):
    name: str
    mode: str
    workdir: Path
    process: subprocess.Popen[str]


def start_chaos_run(
    ctx: Context, name: str, broker_url: str, mode: str, timing: dict[str, Any]
) -> ChaosRun:
    """One configuration's run, started in the project's interpreter: the
    module bench.durability, from this repository (PYTHONPATH), which needs
    nothing of the suite's own environment."""
    project = ctx.projects[name]
    workdir = ctx.work / f"chaos-{name}-{mode.replace(' ', '-').replace(',', '')}"
    command = [str(project.python), "-m", durability.__name__, "--mode", mode]
    command += ["--broker-url", broker_url, "--package", project.package]
    command += ["--timing", json.dumps(timing), "--seed", str(SEED)]
    command += ["--workdir", str(workdir)]
    process = spawn(
        command,
        cwd=project.path,
        env=project_env(PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return ChaosRun(name, mode, workdir, process)


def finish(run: ChaosRun, timing: dict[str, Any]) -> dict[str, Any]:
    """The run's figures, once it has ended."""
    try:
        out, err = run.process.communicate(timeout=timing["recovery_s"] + 240)
    finally:
        kill(run.process)  # a run that overran: SIGTERM stops its workers and Redis
    if run.process.returncode != 0:
        raise RuntimeError(
            f"{run.mode} on {run.name} failed (logs in {run.workdir}):\n{err}"
        )
    figures: dict[str, Any] = json.loads(out.splitlines()[-1])
    log(f"  {run.name}, {run.mode}: {figures}")
    return figures


def done_after(r: dict[str, Any]) -> str:
    if r["all_done_s"] is None:
        return f"never (not within {r['recovery_s']} s of the last kill)"
    # The first look comes right after the last kill, the next 0.2 s later: under
    # that, every job was done before it (slow worker starts make a slow chaos).
    if r["all_done_s"] < 0.2:
        return "before the last kill"
    return f"{r['all_done_s']:.1f} s after the last kill"


def about(timing: dict[str, Any]) -> str:
    low, high = timing["job_s"]
    after_low, after_high = timing["kill_after_s"]
    return (
        "Once per broker and configuration, all of them at once, the same chaos "
        f"(seed {SEED}, "
        "`BENCH_SEED` to change it): "
        f"{timing['jobs']} jobs of {low}–{high} s submitted one every "
        f"{timing['submit_every_s']} s to {durability.WORKERS} workers of "
        f"{durability.CONCURRENCY} threads, while a random worker's process group "
        f"is SIGKILLed {after_low}–{after_high} s after it is ready (at least "
        f"{timing['kills']} times; started again at once); on Redis, a private "
        "redis-server without persistence restarted empty a third of the way "
        "through; and "
        f"{durability.UNPUBLISHED} more jobs committed to the registry and never "
        "published (an API killed between its commit and its publish; with "
        "Celery's defaults, no registry: never sent). The preset's settings: "
        + ", ".join(f"{k}={v}" for k, v in timing["env"].items())
        + ". Lost: the job's keyed effect never applied. Run twice: the job "
        "reached its end twice, so an effect not keyed by the job id would have "
        f"doubled. The run ends when every job is done, or {timing['recovery_s']} s "
        "after the last kill."
    )


def plot(
    results: dict[str, dict[str, dict[str, Any]]], timing: dict[str, Any], png: Path
) -> None:
    brokers = list(results)
    modes = durability.MODES
    width = 0.8 / len(modes)
    fig, axes = plt.subplots(1, 3, figsize=(11, 4), dpi=100)
    panels: list[tuple[str, Callable[[dict[str, Any]], float | None]]] = [
        ("jobs lost", lambda r: r["lost"]),
        ("jobs run twice to the end", lambda r: r["doubled"]),
        (
            "seconds from the last kill to all done\n(hatched: never, the run's end)",
            lambda r: r["all_done_s"],
        ),
    ]
    for panel, (ax, (ylabel, value)) in enumerate(zip(axes, panels, strict=True)):
        for k, mode in enumerate(modes):
            xs = [i + (k - (len(modes) - 1) / 2) * width for i in range(len(brokers))]
            figures = [value(results[b][mode]) for b in brokers]
            # Never done (None): a hatched bar up to the run's end, labelled so.
            heights = [timing["recovery_s"] if f is None else f for f in figures]
            bars = ax.bar(
                xs, heights, width, color=COLORS[k], label=None if panel else mode
            )
            for bar, figure in zip(bars, figures, strict=True):
                if figure is None:
                    bar.set_hatch("//")
                    bar.set_alpha(0.5)
            labels = ["never" if f is None else f"{f:g}" for f in figures]
            ax.bar_label(bars, labels=labels, fontsize=8)
        ax.set_xticks(range(len(brokers)), brokers)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_ylim(0, max(1.0, ax.get_ylim()[1]))  # counts of 0: an axis from 0
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", alpha=0.3)
    jobs = results[brokers[0]][modes[0]]["jobs"]
    fig.suptitle(
        f"Chaos: {jobs} jobs, workers SIGKILLed at random, seed {SEED}", fontsize=10
    )
    fig.legend(loc="lower center", ncol=len(modes), fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(png)
    plt.close(fig)
