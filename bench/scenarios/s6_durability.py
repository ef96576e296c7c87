"""Durability: jobs lost when the Celery worker is SIGKILLed mid-run.

With bench/durability.py: the same jobs with Celery's defaults and with
loopsafe's preset, on Redis and on RabbitMQ, the worker SIGKILLed a third of the
way through, the jobs whose effect never happens counted. A count, not a
timing: the machine's load does not change it.
"""

from .. import durability
from ..harness import Context
from ..report import Goal, Section

TITLE = "6. Durability"
NEEDS = ("durable_redis", "durable_rabbitmq")
SMOKE_NEEDS = ("durable_redis",)  # a smoke run: Redis only, the same code
BROKERS = {
    "redis": ("durable_redis", "redis://127.0.0.1:6379/15"),
    "rabbitmq": ("durable_rabbitmq", "amqp://guest:guest@127.0.0.1:5672//"),
}
PRESET = "loopsafe preset"


def run(ctx: Context) -> Section:
    jobs = int(ctx.seconds(40, 16))
    timing = durability.SHORT if ctx.smoke else durability.FULL
    # Smoke runs: the preset only (with Celery's defaults jobs are lost, so a
    # run always waits out the whole settling time), on Redis only.
    modes = (PRESET,) if ctx.smoke else durability.MODES
    results = {}
    for broker, (name, url) in BROKERS.items():
        if name not in (SMOKE_NEEDS if ctx.smoke else NEEDS):
            continue
        project = ctx.projects[name]
        results[broker] = durability.crash_runs(
            project.python, project.path, project.package, url, jobs, timing, modes
        )
    plot = "bench-durability.png"
    durability.plot(results, jobs, timing["job_s"], ctx.out / plot)
    section = Section(
        TITLE,
        about=(
            f"Once per broker and configuration: {jobs} jobs of {timing['job_s']} s "
            f"on a worker with {durability.CONCURRENCY} threads, SIGKILLed once a "
            "third are done; a second worker then runs until nothing changes. "
            "Lost: jobs whose effect never happened."
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
        raw={"results": results},
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
