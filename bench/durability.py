"""Jobs lost when a Celery worker is SIGKILLed mid-run: Celery's defaults against
loopsafe's durable preset, on Redis and on RabbitMQ (scenario 6).

`crash_runs` takes a rendered durable project (blocking_io workload, examples
on). For each configuration, N jobs are enqueued, a worker with 8 threads
starts, and once a third of the jobs are done its whole process group is
SIGKILLed. A second worker starts, and the run ends when every job's effect is
there or nothing has changed for longer than the preset's recovery bound.

Per configuration: jobs lost (effect never happened), split into those that
were running at the kill and those only reserved by the dead worker; reruns
(jobs started again after the kill); and how long after the kill the
interrupted jobs, then all jobs, were done.

"Celery's defaults" is an app with only the broker, backend and queue set: the
message is acknowledged when a job starts, and each thread reserves 4 more.
The preset is the generated `worker.py`, untouched (short time limits by env).

Needs Redis on 127.0.0.1:6379 (database 15 is used, so other users' workers,
which sweep database 0 for jobs of dead workers, cannot touch these runs) and
RabbitMQ on 127.0.0.1:5672 (guest/guest). Each run is this file, run by the
project's interpreter (`--scenario`): it imports the rendered package, and only
the standard library besides.
"""

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PACKAGE = "bench_service"  # replaced by the rendered project's package
BROKERS = {
    "redis": "redis://127.0.0.1:6379/15",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
MODES = ("celery defaults", "loopsafe preset")
# The preset's limits for a run (and what they imply on Redis: jobs are
# redelivered VISIBILITY_TIMEOUT_S after a crash, plus one sweep), and how long
# a run waits for a change before it ends: above that recovery bound.
FULL = {
    "env": {
        "JOB_SOFT_TIME_LIMIT_S": "4",
        "JOB_TIME_LIMIT_S": "5",
        "JOB_RETRY_BACKOFF_MAX_S": "1",
        "VISIBILITY_TIMEOUT_S": "10",
    },
    "settle_s": 14,  # counted from the second worker's start: 10 s + a 1 s sweep
    "job_s": 0.5,
}
SHORT = {  # smoke runs: the same steps, seconds long
    "env": {
        "JOB_SOFT_TIME_LIMIT_S": "1",
        "JOB_TIME_LIMIT_S": "2",
        "JOB_RETRY_BACKOFF_MAX_S": "1",
        "VISIBILITY_TIMEOUT_S": "4",
    },
    "settle_s": 6,
    "job_s": 0.2,
}
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


def scenario(mode: str, jobs: int, package: str, timing: dict) -> dict[str, object]:
    """One SIGKILL run, inside the rendered project's environment."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-durability-"))
    env = {
        **os.environ,
        "TASK_QUEUE": f"bench-{uuid.uuid4().hex[:8]}",
        "JOBS_DATABASE_PATH": str(workdir / "jobs.sqlite3"),
        "RESULT_BACKEND": f"db+sqlite:///{workdir / 'results.sqlite3'}",
        "WORKER_CONCURRENCY": str(CONCURRENCY),
        **timing["env"],
    }
    os.environ.update(env)
    sys.path.insert(0, os.getcwd())  # celery_defaults.py, beside the project
    effects = importlib.import_module(f"{package}.examples.effects")
    from celery import Celery

    if mode == "loopsafe preset":
        app_module = f"{package}.worker"
        app = importlib.import_module(app_module).app
    else:
        import celery_defaults

        app = celery_defaults.app
        app_module = "celery_defaults"
    assert isinstance(app, Celery)
    db = env["JOBS_DATABASE_PATH"]

    ids = [str(uuid.uuid4()) for _ in range(jobs)]
    for job_id in ids:
        effects.register(db, job_id, None)
        job = (job_id, timing["job_s"], 0)
        app.send_task(f"{package}.process_job", job, task_id=job_id)

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
    # The settling time runs from when the second worker is ready: starting
    # it takes seconds more on a loaded machine.
    ready_by = time.monotonic() + 60
    while b" ready." not in (workdir / "worker-2.log").read_bytes():
        if time.monotonic() > ready_by or second.poll() is not None:
            raise RuntimeError(f"the second worker did not start, see {workdir}")
        time.sleep(0.1)
    last_change, seen = time.monotonic(), len(effects.applied(db))
    interrupted_done_at = None
    while seen < jobs and time.monotonic() - last_change < timing["settle_s"]:
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


def plot(
    results: dict[str, dict[str, dict]], jobs: int, job_s: float, png: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    brokers = list(results)
    width = 0.38
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for offset, mode, colour in ((-1, MODES[0], "#c0392b"), (1, MODES[1], "#27ae60")):
        if mode not in results[brokers[0]]:
            continue  # not run
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
    ax.set_title(f"SIGKILL mid-run: {CONCURRENCY} worker threads, {job_s} s jobs")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    plt.close(fig)


def crash_runs(
    python: Path,
    project: Path,
    package: str,
    broker_url: str,
    jobs: int,
    timing: dict,
    modes: tuple[str, ...] = MODES,
) -> dict[str, dict]:
    """Configurations (`modes`) on one rendered project: {mode: figures}."""
    defaults = project / "celery_defaults.py"
    defaults.write_text(DEFAULTS_APP.replace(PACKAGE, package))
    results = {}
    for mode in modes:
        command = [str(python), __file__, "--scenario", mode, "--jobs", str(jobs)]
        command += ["--package", package, "--timing", json.dumps(timing)]
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV")}
        run = subprocess.run(
            command,
            cwd=project,
            env=env | {"BROKER_URL": broker_url},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if run.returncode != 0:
            raise RuntimeError(f"{mode} run failed:\n{run.stdout}\n{run.stderr}")
        results[mode] = json.loads(run.stdout.splitlines()[-1])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=MODES, required=True)
    parser.add_argument("--jobs", type=int, required=True)
    parser.add_argument("--package", required=True)
    parser.add_argument("--timing", type=json.loads, required=True)
    args = parser.parse_args()
    print(json.dumps(scenario(args.scenario, args.jobs, args.package, args.timing)))


if __name__ == "__main__":
    main()
