#!/usr/bin/env python3
# /// script
# requires-python = ">=3.11"
# dependencies = ["copier>=9.4", "matplotlib>=3.8"]
# ///
"""Jobs lost when a Celery worker is SIGKILLed mid-run: Celery's defaults against
loopsafe's durable preset, on Redis and on RabbitMQ.

    uv run bench/durability.py [--jobs 100] [--png bench/durability.png]

For each broker the template is rendered (blocking_io workload) and synced with
uv. Then, for each configuration, N jobs of 0.5 s are enqueued, a worker with 8
threads starts, and once a third of the jobs are done its whole process group
is SIGKILLed. A second worker starts, and the run ends when every job's effect
is there or nothing has changed for longer than the preset's recovery bound.

Printed per broker and configuration: jobs lost (effect never happened), split
into those that were running at the kill and those only reserved by the dead
worker; reruns (jobs started again after the kill); and how long after the kill
the interrupted jobs, then all jobs, were done. A PNG bar chart of the losses
is written beside this script.

"Celery's defaults" is an app with only the broker, backend and queue set: the
message is acknowledged when a job starts, and each thread reserves 4 more.
The preset is the generated `worker.py`, untouched (short time limits by env).

Needs Redis on 127.0.0.1:6379 (database 15 is used, so other users' workers,
which sweep database 0 for jobs of dead workers, cannot touch these runs) and
RabbitMQ on 127.0.0.1:5672 (guest/guest).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "bench_service"
BROKERS = {
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
MODES = ("celery defaults", "loopsafe preset")
# The preset's limits for this run (and what they imply on Redis): jobs are
# redelivered VISIBILITY_TIMEOUT_S after a crash, plus one sweep.
PRESET_ENV = {
    "JOB_SOFT_TIME_LIMIT_S": "4",
    "JOB_TIME_LIMIT_S": "5",
    "JOB_RETRY_BACKOFF_MAX_S": "1",
    "VISIBILITY_TIMEOUT_S": "10",
}
SETTLE_S = 20  # above the Redis recovery bound of this run: 10 s + a 1 s sweep
JOB_S = 0.5
CONCURRENCY = 8

DEFAULTS_APP = f'''"""Celery's defaults: acks on receipt, 4 jobs reserved per thread."""

import time

from celery import Celery

from {PACKAGE}.examples import effects
from {PACKAGE}.settings import get_settings

settings = get_settings()
app = Celery("defaults", broker=settings.broker_url, backend=settings.result_backend)
app.conf.task_default_queue = settings.task_queue


@app.task(name="{PACKAGE}.process_job")
def process_job(job_id, duration_s, fail_first=0):
    effects.record_attempt(settings.jobs_database_path, job_id)
    time.sleep(duration_s)
    return effects.apply_effect(settings.jobs_database_path, job_id)
'''


def render(broker: str, into: Path) -> Path:
    """The template at this checkout (uncommitted changes included), synced."""
    from copier import run_copy

    project = into / broker
    run_copy(
        str(REPO),
        str(project),
        data={
            "project_name": "bench service",
            "workload": "blocking_io",
            "task_durability": "durable",
            "broker": broker,
            "examples": True,  # the example job and its effects are measured
        },
        defaults=True,
        vcs_ref="HEAD",
        quiet=True,
    )
    (project / "celery_defaults.py").write_text(DEFAULTS_APP)
    subprocess.run(["uv", "sync", "-q"], cwd=project, check=True)
    return project


def start_worker(app_module: str, log: Path, env: dict[str, str]) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app_module, "worker"]
            + ["--pool", "threads", "--concurrency", str(CONCURRENCY)]
            + ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
            + ["--hostname", f"bench-{uuid.uuid4().hex[:8]}@%h"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def scenario(mode: str, jobs: int) -> dict[str, object]:
    """One SIGKILL run, inside the rendered project's environment."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    env = {
        **os.environ,
        "TASK_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "JOBS_DATABASE_PATH": str(workdir / "jobs.sqlite3"),
        "RESULT_BACKEND": f"db+sqlite:///{workdir / 'results.sqlite3'}",
        "WORKER_CONCURRENCY": str(CONCURRENCY),
        **PRESET_ENV,
    }
    os.environ.update(env)
    sys.path.insert(0, os.getcwd())  # celery_defaults.py, beside the project
    from bench_service.examples import effects  # the rendered package
    from celery import Celery

    if mode == "loopsafe preset":
        from bench_service.worker import app

        app_module = f"{PACKAGE}.worker"
    else:
        import celery_defaults

        app = celery_defaults.app
        app_module = "celery_defaults"
    assert isinstance(app, Celery)
    db = env["JOBS_DATABASE_PATH"]

    ids = [str(uuid.uuid4()) for _ in range(jobs)]
    for job_id in ids:
        effects.register(db, job_id, None)
        app.send_task(f"{PACKAGE}.process_job", (job_id, JOB_S, 0), task_id=job_id)

    first = start_worker(app_module, workdir / "worker-1.log", env)
    while len(effects.applied(db)) < jobs // 3:
        time.sleep(0.01)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = time.monotonic()
    done_at_kill = effects.applied(db)
    attempts = effects.attempts(db)
    started_at_kill = {i for i in ids if attempts[i]}
    interrupted = started_at_kill - done_at_kill

    second = start_worker(app_module, workdir / "worker-2.log", env)
    last_change, seen = time.monotonic(), len(done_at_kill)
    interrupted_done_at = None
    while seen < jobs and time.monotonic() - last_change < SETTLE_S:
        time.sleep(0.1)
        applied = effects.applied(db)
        if interrupted_done_at is None and interrupted <= applied:
            interrupted_done_at = time.monotonic()
        if len(applied) != seen:
            last_change, seen = time.monotonic(), len(applied)
    os.killpg(second.pid, signal.SIGTERM)
    second.wait()
    with app.connection_for_write() as connection:
        connection.default_channel.queue_delete(env["TASK_QUEUE"])

    lost = set(ids) - effects.applied(db)

    def after_kill(moment: float | None) -> float | None:
        return None if moment is None else round(moment - killed_at, 1)

    return {
        "jobs": jobs,
        "done_at_kill": len(done_at_kill),
        "running_at_kill": len(interrupted),
        "lost": len(lost),
        # Acknowledged when they started, then killed: gone for good.
        "lost_running": len(lost & started_at_kill),
        # Reserved by the dead worker, never started: with Redis they come back
        # after its visibility timeout (Celery's default: 1 hour).
        "lost_reserved": len(lost - started_at_kill),
        "reruns": sum(n - 1 for n in effects.attempts(db).values() if n > 1),
        "doubled": effects.effects_total(db) - len(effects.applied(db)),
        "interrupted_done_s_after_kill": after_kill(interrupted_done_at),
        "all_done_s_after_kill": after_kill(last_change) if seen == jobs else None,
    }


def plot(results: dict[str, dict[str, dict]], jobs: int, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    brokers = list(results)
    width = 0.38
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for offset, mode, colour in ((-1, MODES[0], "#c0392b"), (1, MODES[1], "#27ae60")):
        xs = [i + offset * width / 2 for i in range(len(brokers))]
        running = [results[b][mode]["lost_running"] for b in brokers]
        reserved = [results[b][mode]["lost_reserved"] for b in brokers]
        ax.bar(xs, running, width, color=colour, label=f"{mode}: were running")
        bars = ax.bar(
            xs,
            reserved,
            width,
            bottom=running,
            color=colour,
            alpha=0.45,
            label=f"{mode}: were reserved",
        )
        totals = [a + b for a, b in zip(running, reserved, strict=True)]
        ax.bar_label(bars, labels=[str(total) for total in totals])
    ax.set_xticks(range(len(brokers)), brokers)
    ax.set_ylabel(f"jobs lost of {jobs}")
    ax.set_title(f"SIGKILL mid-run: {CONCURRENCY} worker threads, {JOB_S} s jobs")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--png", type=Path, default=REPO / "bench" / "durability.png")
    parser.add_argument("--scenario", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario(args.scenario, args.jobs)))
        return

    results: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-render-") as tmp:
        for broker, url in BROKERS.items():
            project = render(broker, Path(tmp))
            for mode in MODES:
                run = subprocess.run(
                    [project / ".venv" / "bin" / "python", __file__]
                    + ["--scenario", mode, "--jobs", str(args.jobs)],
                    cwd=project,
                    env={**os.environ, "BROKER_URL": url},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                results.setdefault(broker, {})[mode] = json.loads(run.stdout)
    header = ("broker", "configuration", "lost", "running", "reserved", "reruns")
    print("{:<9} {:<16} {:>5} {:>8} {:>9} {:>7}".format(*header), end="")
    print("  interrupted done / all done after kill")
    for broker, modes in results.items():
        for mode, r in modes.items():
            row = (broker, mode, r["lost"], r["lost_running"], r["lost_reserved"])
            print("{:<9} {:<16} {:>5} {:>8} {:>9}".format(*row), end="")
            times = [r["interrupted_done_s_after_kill"], r["all_done_s_after_kill"]]
            shown = " / ".join("never" if t is None else f"{t} s" for t in times)
            print(f" {r['reruns']:>7}  {shown}")
    print(json.dumps(results, indent=1))
    plot(results, args.jobs, args.png)
    print(f"chart: {args.png}")


if __name__ == "__main__":
    main()
