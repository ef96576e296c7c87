"""A chaos run against Celery's defaults, loopsafe's durable preset without its
reconciler, and the preset with it, on Redis and on RabbitMQ (scenario 6).

One run per broker and configuration, on a rendered durable project (blocking_io
workload, examples on), each with the same seeded chaos:

- two workers (CONCURRENCY threads each) start, and jobs are submitted one at
  a time, the preset's through `app.submit` (committed to the job registry,
  then published), Celery's defaults with a plain `apply_async`;
- meanwhile a random worker's whole process group is SIGKILLed at a random
  moment after it is ready (running jobs, or idle, fetching), and started
  again at once;
- on Redis, the broker is a private redis-server on a free port, without
  persistence (as the shared one runs): a third of the way through it is
  killed and restarted, every queued job gone. Never the shared 6379;
- UNPUBLISHED jobs are committed and never published, at random places in the
  stream: what an API killed between its commit and its publish leaves. With
  Celery's defaults there is no registry, so such a job is simply never sent.

Once the chaos is over (every job submitted and enough kills), the run waits
until every job's keyed effect is there, or `recovery_s` has passed since the
last kill. Counted: jobs lost (keyed effect never applied), jobs run to their
end twice (their unkeyed effect doubled), the keyed effect doubled (never, if
the key works), jobs published again by the reconciler beside the jobs really
gone (never published, or dropped by the Redis restart), and the time from the
last kill until every job was done.

The job and the three apps are bench/apps/chaos_jobs.py. Each run is this
module, `python -m bench.durability --mode ...` in the project's interpreter
(this repository on PYTHONPATH), with the standard library, the rendered
package and its dependencies; RabbitMQ runs use the shared broker on
127.0.0.1:5672 (guest/guest) with a queue of their own, deleted afterwards.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

APPS = Path(__file__).resolve().parent / "apps"
MODES = ("celery defaults", "preset, no reconciler", "preset + reconciler")
PRIVATE_REDIS = "private redis-server"  # the broker URL that asks for one
RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
CONCURRENCY = 4  # threads per worker
WORKERS = 2
UNPUBLISHED = 3
# "No reconciler": JOB_LOST_AFTER_S so long that it never finds a job lost.
NEVER_LOST_S = "1000000"

FULL = {
    "jobs": 100,  # submitted; UNPUBLISHED more are committed only
    "kills": 10,  # worker SIGKILLs, at least
    # A kill comes this long (uniformly at random) after its worker is ready.
    "kill_after_s": [0.5, 3.0],
    "submit_every_s": 0.25,
    "job_s": [0.5, 2.5],
    "recovery_s": 40,  # "never": not all done this long after the last kill
    "env": {
        "JOB_LOST_AFTER_S": "5",
        "JOB_SOFT_TIME_LIMIT_S": "4",
        "JOB_TIME_LIMIT_S": "5",
        "JOB_RETRY_BACKOFF_MAX_S": "1",
        "VISIBILITY_TIMEOUT_S": "10",
    },
}
SMOKE = {  # the same steps, seconds long
    "jobs": 20,
    "kills": 2,
    "kill_after_s": [0.3, 1.0],
    "submit_every_s": 0.1,
    "job_s": [0.1, 0.3],
    "recovery_s": 6,
    "env": {
        "JOB_LOST_AFTER_S": "2",
        "JOB_SOFT_TIME_LIMIT_S": "1",
        "JOB_TIME_LIMIT_S": "2",
        "JOB_RETRY_BACKOFF_MAX_S": "1",
        "VISIBILITY_TIMEOUT_S": "4",
    },
}


# --- inside the project's environment: one run ------------------------------------


class PrivateRedis:
    """A redis-server of the run's own, without persistence: restarting it
    drops every queued job, as a restart of the shared one would."""

    def __init__(self, directory: Path) -> None:
        server = shutil.which("redis-server")
        if server is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis")
        self.command = [server, "--save", "", "--appendonly", "no"]
        self.directory = directory
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*self.command, "--port", str(self.port), "--bind", "127.0.0.1"],
            cwd=self.directory,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart_empty(self) -> set[str]:
        """Restart it empty: the ids of the jobs it dropped (queued, or
        delivered and not acknowledged), as it held them just before."""
        import redis  # the project's: only Redis runs get here

        with redis.Redis(port=self.port) as client:
            lists = [key for key in client.keys() if client.type(key) == b"list"]
            queued = [raw for key in lists for raw in client.lrange(key, 0, -1)]
            messages = [json.loads(raw) for raw in queued]
            # kombu's unacked hash: [message, exchange, routing key] by delivery tag.
            messages += [json.loads(raw)[0] for raw in client.hvals("unacked")]
        self.stop()
        self.start()
        return {message.get("headers", {}).get("id") for message in messages} - {None}


class Workers:
    """WORKERS `celery worker` processes, each leading its own process group."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir, self.env = workdir, env
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.logs: dict[int, Path] = {}
        self.started = 0
        for slot in range(WORKERS):
            self.start(slot)

    def start(self, slot: int) -> None:
        self.started += 1
        log = self.logs[slot] = self.workdir / f"worker-{slot}-{self.started}.log"
        with log.open("ab") as out:
            self.processes[slot] = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "chaos_jobs", "worker"]
                + ["--pool", "threads", "--concurrency", str(CONCURRENCY)]
                + ["--loglevel", "INFO", "--without-gossip", "--without-mingle"]
                + ["--hostname", f"bench-{uuid.uuid4().hex[:8]}@%h"],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )

    def wait_ready(self, slot: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while b" ready." not in self.logs[slot].read_bytes():
            if time.monotonic() > deadline or self.processes[slot].poll() is not None:
                raise RuntimeError(f"worker not ready, see {self.logs[slot]}")
            time.sleep(0.05)

    def kill(self, slot: int) -> None:
        process = self.processes[slot]
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()

    def kill_all(self) -> None:
        for slot in self.processes:
            self.kill(slot)


class Chaos(threading.Thread):
    """SIGKILLs a random worker at a random moment of its life (some time after
    it is ready: running jobs, or idle, fetching) and starts it again at once,
    until told to stop with enough kills done. Not while it starts: on a busy
    machine a start takes seconds, and kills then would hit no job at all."""

    def __init__(self, workers: Workers, timing: dict[str, Any], seed: int) -> None:
        super().__init__(name="chaos", daemon=True)
        self.workers, self.timing = workers, timing
        self.random = random.Random(seed)
        self.kills = 0
        self.last_kill = time.monotonic()
        self.stopping = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not (self.stopping.is_set() and self.kills >= self.timing["kills"]):
                slot = self.random.randrange(WORKERS)
                after_s = self.random.uniform(*self.timing["kill_after_s"])
                self.workers.wait_ready(slot)
                time.sleep(after_s)
                self.workers.kill(slot)
                self.kills += 1
                self.last_kill = time.monotonic()
                self.workers.start(slot)
        except BaseException as error:  # reported by the run, not lost in a thread
            self.error = error


def chaos_run(
    mode: str,
    broker_url: str,
    package: str,
    timing: dict[str, Any],
    seed: int,
    workdir: Path,
) -> dict[str, object]:
    """One run, inside the rendered project's environment: its figures."""
    workdir.mkdir(parents=True, exist_ok=True)
    redis = PrivateRedis(workdir) if broker_url == PRIVATE_REDIS else None
    workers = None
    env = {
        **os.environ,
        **timing["env"],
        "BROKER_URL": redis.url if redis else broker_url,
        "DATABASE_URL": f"sqlite:///{workdir / 'jobs.sqlite3'}",
        "TASK_QUEUE": f"bench-chaos-{uuid.uuid4().hex[:8]}",
        "WORKER_CONCURRENCY": str(CONCURRENCY),
        "WORKER_METRICS_PORT": "0",  # any free port: two workers on one host
        "BENCH_MODE": mode,
        "BENCH_PACKAGE": package,
        "PYTHONPATH": str(APPS),
    }
    if mode == "preset, no reconciler":
        env["JOB_LOST_AFTER_S"] = NEVER_LOST_S
    os.environ.update(env)
    sys.path.insert(0, str(APPS))
    import chaos_jobs

    app, job = chaos_jobs.app, chaos_jobs.chaos_job
    settings = chaos_jobs.settings
    db = chaos_jobs.engine()
    effects = chaos_jobs.effects
    # Its own stream, so the kills' thread cannot shift the jobs' draws.
    draws = random.Random(seed + 1)
    unpublished_at = set(draws.sample(range(timing["jobs"]), UNPUBLISHED))
    try:
        workers = Workers(workdir, env)
        chaos = Chaos(workers, timing, seed)
        chaos.start()
        ids: list[str] = []
        redis_restarts, dropped = 0, set()
        for number in range(timing["jobs"]):
            if redis and number == timing["jobs"] // 3:
                dropped = redis.restart_empty() & set(ids)  # every queued job gone
                redis_restarts += 1
            duration_s = round(draws.uniform(*timing["job_s"]), 3)
            if number in unpublished_at:
                ids.append(commit_only(app, job, settings, duration_s))
            ids.append(submit(app, job, duration_s, chaos_jobs.UNAVAILABLE))
            time.sleep(timing["submit_every_s"])
        chaos.stopping.set()
        chaos.join()
        if chaos.error:
            raise chaos.error
        deadline = chaos.last_kill + timing["recovery_s"]
        done_at = None
        while time.monotonic() < deadline:
            if set(ids) <= effects.applied(db):
                done_at = time.monotonic()
                break
            time.sleep(0.2)
        workers.kill_all()
        applied = effects.applied(db)
        completed = chaos_jobs.completed(db)
        republished = None
        if mode != "celery defaults":
            publications = app.registry.publications()
            republished = sum(publications.get(i, 1) - 1 for i in ids)
        if not redis:
            with app.connection_for_write() as connection:
                connection.default_channel.queue_delete(settings.task_queue)
    finally:
        if workers:
            workers.kill_all()
        if redis:
            redis.stop()
    return {
        "jobs": len(ids),
        "unpublished": UNPUBLISHED,
        "kills": chaos.kills,
        "redis_restarts": redis_restarts,
        "worker_starts": workers.started,
        "lost": len(set(ids) - applied),
        "doubled": sum(1 for i in ids if completed[i] > 1),
        "keyed_doubled": effects.effects_total(db) - len(applied),
        "reruns": sum(n - 1 for n in effects.attempts(db).values() if n > 1),
        "republished": republished,
        # Jobs really gone, which the reconciler had to publish again: those
        # never published, and those the Redis restart dropped (the running
        # ones among them finish anyway, unless their worker is killed too).
        "gone": UNPUBLISHED + len(dropped),
        "all_done_s": None if done_at is None else round(done_at - chaos.last_kill, 1),
        "recovery_s": timing["recovery_s"],
        "seed": seed,
    }


# `app`, `job`, `settings`: chaos_jobs's, a plain Celery app's or the project's,
# told apart by what they have.
def submit(
    app: Any, job: Any, duration_s: float, unavailable: tuple[type[Exception], ...]
) -> str:
    """Submit a job as a client would, trying again while the broker restarts:
    the preset's through the registry, with an idempotency key (a retry never
    makes a second job), Celery's defaults with a plain `apply_async` (a retry
    sends the same id)."""
    key = str(uuid.uuid4())
    deadline = time.monotonic() + 30
    while True:
        try:
            if hasattr(app, "submit"):
                job_id: str = app.submit(job, duration_s, idempotency_key=key)
                return job_id
            job.apply_async((duration_s,), task_id=key)
            return key
        except unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def commit_only(app: Any, job: Any, settings: Any, duration_s: float) -> str:
    """A job whose API died between commit and publish: in the registry, never
    published. Celery's defaults have no registry: such a job was never sent."""
    if not hasattr(app, "registry"):
        return str(uuid.uuid4())
    job_id: str
    job_id, _ = app.registry.accept(job.name, settings.task_queue, [duration_s], {})
    return job_id


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.durability", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--broker-url", required=True)
    parser.add_argument("--package", required=True)
    parser.add_argument("--timing", type=json.loads, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C: the `finally` stops the workers and Redis.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    figures = chaos_run(
        args.mode, args.broker_url, args.package, args.timing, args.seed, args.workdir
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
