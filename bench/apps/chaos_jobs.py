"""Scenario 6's Celery app and job, run by a rendered durable project's interpreter.

`celery -A chaos_jobs worker` (this directory on PYTHONPATH) runs one of the
configurations bench/durability.py compares, chosen by BENCH_MODE:

- "celery defaults": a plain Celery app with only the broker, the result
  backend and the queue set (acknowledged as it starts, 4 jobs reserved per
  thread, Redis's visibility timeout 1 hour);
- "preset, no reconciler" and "preset + reconciler": the rendered project's own
  app (`<package>.worker`), untouched; the first runs with a JOB_LOST_AFTER_S so
  long that its reconciler never publishes anything.

BENCH_PACKAGE names the rendered package. The job is the same in all three: it
logs its start, works, then applies two effects: one keyed by the job id (the
example's, `examples/effects.py`: applied once however often the job runs) and
one not (a row per completion, as a non-idempotent effect would be: an email
sent, a counter bumped), which shows every job that ran to its end twice.
"""

import importlib
import os
import time
from collections import Counter

from celery import Celery, Task
from kombu.exceptions import OperationalError
from sqlalchemy import Column, Engine, MetaData, String, Table, insert, select

DEFAULTS = "celery defaults"
NO_RECONCILER = "preset, no reconciler"
RECONCILER = "preset + reconciler"
MODES = (DEFAULTS, NO_RECONCILER, RECONCILER)

MODE = os.environ["BENCH_MODE"]
PACKAGE = os.environ["BENCH_PACKAGE"]
settings = importlib.import_module(f"{PACKAGE}.settings").get_settings()
database = importlib.import_module(f"{PACKAGE}.runtime.database")
effects = importlib.import_module(f"{PACKAGE}.examples.effects")
jobs = importlib.import_module(f"{PACKAGE}.runtime.registry")
# A submission refused while the broker restarts: a client's 503, tried again.
UNAVAILABLE = (OperationalError, jobs.JobNotAccepted)

if MODE == DEFAULTS:
    app = Celery(
        "defaults",
        broker=settings.broker_url,
        backend=database.celery_result_backend(settings.database_url),
    )
    app.conf.task_default_queue = settings.task_queue
else:
    app = importlib.import_module(f"{PACKAGE}.worker").app

metadata = MetaData()
# No key: a job that runs to its end twice leaves two rows.
completions = Table(
    "bench_unkeyed_effects", metadata, Column("job_id", String(64), nullable=False)
)
_prepared: set[Engine] = set()


def engine() -> Engine:
    """The database at DATABASE_URL, the registry's (or, for Celery's defaults,
    which have no registry, the same file)."""
    found = database.get_engine(
        settings.database_url, settings.thread_pool_size, settings.thread_pool_bounds[1]
    )
    if found not in _prepared:
        database.create_tables(metadata, found)
        _prepared.add(found)
    return found


@app.task(bind=True, name="bench.chaos_job")
def chaos_job(self: Task, duration_s: float) -> str:
    job_id: str = self.request.id
    effects.record_attempt(engine(), job_id)
    time.sleep(duration_s)  # stands in for the job's work
    with engine().begin() as db:
        db.execute(insert(completions).values(job_id=job_id))
    effects.apply_effect(engine(), job_id)
    return job_id


def completed(db: Engine) -> Counter[str]:
    """How many times each job ran to its end (its unkeyed effect)."""
    with db.connect() as connection:
        return Counter(connection.execute(select(completions.c.job_id)).scalars())
