"""The job registry's reconciler round with a million finished rows present, on
SQLite and PostgreSQL (issue 30's goal: a round stays within 50 ms).

    uv run python -m bench.registry_rounds                 # renders a project
    uv run python -m bench.registry_rounds --project DIR   # an already synced one
    uv run python -m bench.registry_rounds --rows 100000   # fewer rows, as a check

It renders a durable project (blocking_io, Redis), then runs this file with the
project's interpreter once per database: the registry's schema is made by its
migrations, ROWS finished jobs (within JOB_RETENTION_S, as a busy registry
keeps them) plus waiting and running ones are inserted by SQL, and `Reconciler.round`
is timed, the broker's answers stubbed (a queue never empty, no copy lost): the
round's database work is what grows with the table. Then one round with a full
batch of expired rows to delete. Each query a round makes is captured and
explained (PostgreSQL: EXPLAIN; SQLite: EXPLAIN QUERY PLAN), to show that it
follows an index. PostgreSQL: a fresh database on TEST_POSTGRES_URL's server
(postgresql://postgres@127.0.0.1:5432/test by default), dropped afterwards.
"""

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the project's, only there at run time (see measure)
    from sqlalchemy import Connection, Engine, TextClause

ROUNDS = 50
WAITING = 100
RUNNING = 20
POSTGRES = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
FRESH_POSTGRES = "fresh-postgresql"
ANSWERS = {"workload": "blocking_io", "task_durability": "durable", "broker": "redis"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.registry_rounds")
    parser.add_argument("--project", type=Path, help="a rendered, synced project")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # a database URL
    args = parser.parse_args()
    if args.inside == FRESH_POSTGRES:
        with FreshPostgres() as database_url:
            print(json.dumps(measure(database_url, args.rows)))
        return
    if args.inside:
        print(json.dumps(measure(args.inside, args.rows)))
        return
    from .services import REPO, Project, _render

    with tempfile.TemporaryDirectory(prefix="registry-rounds-") as scratch:
        if args.project is None:
            args.project = _render(REPO, Path(scratch) / "service", ANSWERS)
        project = Project(args.project)
        print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
        for name, database_url in databases(Path(scratch)):
            run = subprocess.run(
                [str(project.python), __file__, "--inside", database_url]
                + ["--rows", str(args.rows)],
                cwd=project.path,
                env={**os.environ, "BENCH_PACKAGE": project.package},
                capture_output=True,
                text=True,
                check=False,
            )
            if run.returncode != 0:
                sys.exit(f"{name}: failed\n{run.stderr}")
            report(name, json.loads(run.stdout.splitlines()[-1]))
        print(f"load after: {Path('/proc/loadavg').read_text().strip()}")


def databases(scratch: Path) -> list[tuple[str, str]]:
    """Each database's URL; FRESH_POSTGRES: one made for the run (inside)."""
    return [
        ("sqlite", f"sqlite:///{scratch / 'registry.sqlite3'}"),
        ("postgresql", FRESH_POSTGRES),
    ]


class FreshPostgres:
    """A database of its own on POSTGRES's server, dropped on exit (with the
    project's psycopg)."""

    def __enter__(self) -> str:
        import psycopg

        self.name = f"bench_registry_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        return POSTGRES.rsplit("/", 1)[0] + f"/{self.name}"

    def __exit__(self, *_: object) -> None:
        import psycopg

        with psycopg.connect(POSTGRES, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{self.name}" WITH (FORCE)')


def report(name: str, figures: dict[str, Any]) -> None:
    rows = f"{figures['rows']:,} finished rows"
    print(f"\n{name}: {rows}, {WAITING} waiting, {RUNNING} running")
    print(f"  inserted in {figures['insert_s']:.1f} s")
    rounds = figures["rounds_ms"]
    print(
        f"  round: median {statistics.median(rounds):.1f} ms, "
        f"p95 {sorted(rounds)[int(len(rounds) * 0.95) - 1]:.1f} ms, "
        f"max {max(rounds):.1f} ms ({len(rounds)} rounds)"
    )
    print(
        f"  round deleting a batch of expired rows: {figures['purge_round_ms']:.1f} ms "
        f"({figures['purged']} deleted)"
    )
    for statement, plan in figures["plans"]:
        print(f"  query: {statement}")
        for line in plan:
            print(f"    {line}")


# Inside the project's interpreter, from here on.


def measure(database_url: str, rows: int) -> dict[str, Any]:
    package = os.environ["BENCH_PACKAGE"]
    database = importlib.import_module(f"{package}.runtime.database")
    registry_module = importlib.import_module(f"{package}.runtime.registry")
    reconciler_module = importlib.import_module(f"{package}.runtime.reconciler")
    from sqlalchemy import event, text

    engine = database.get_engine(database_url, 2, 2)
    registry = registry_module.JobRegistry.of(engine)  # the migrations make it
    started = time.perf_counter()
    fill(engine, rows, text)
    insert_s = time.perf_counter() - started
    reconciler = reconciler_module.Reconciler(
        registry,
        "bench-worker",
        lost_after_s=60,
        retention_s=7 * 86400,
        queue_sizes=lambda: {"bench": 3},  # never empty
        held_copies=lambda jobs: set(jobs),  # every copy held
        publish=lambda job: None,
    )
    for _ in range(3):  # connections opened, caches warm
        reconciler.round()
    rounds_ms = []
    for _ in range(ROUNDS):
        began = time.perf_counter()
        reconciler.round()
        rounds_ms.append((time.perf_counter() - began) * 1000)

    captured: list[tuple[str, object]] = []

    def capture(
        conn: "Connection",
        cursor: Any,
        statement: str,
        parameters: Any,
        context: Any,
        executemany: bool,
    ) -> None:
        if not statement.lstrip().upper().startswith(("SELECT PG_", "PRAGMA")):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    reconciler.round()
    event.remove(engine, "before_cursor_execute", capture)
    plans = [
        explain(engine, statement, parameters) for statement, parameters in captured
    ]

    # Every finished row expired: the round deletes one full batch.
    with engine.begin() as db:
        expire = "UPDATE job_registry SET finished_at = finished_at - 8 * 86400"
        db.execute(text(expire + " WHERE finished_at IS NOT NULL"))
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text("VACUUM ANALYZE job_registry"))
    before = count(engine, text)
    began = time.perf_counter()
    reconciler.round()
    purge_round_ms = (time.perf_counter() - began) * 1000
    purged = before - count(engine, text)
    return {
        "rows": rows,
        "insert_s": insert_s,
        "rounds_ms": rounds_ms,
        "purge_round_ms": purge_round_ms,
        "purged": purged,
        "plans": plans,
    }


COLUMNS = (
    "id, task, queue, args, kwargs, state, retries, published_at, publications, "
    "started_at, worker, finished_at, accepted_at"
)
# Finished job i: published `:rows - i` steps before :now (inserted oldest
# first, as a registry fills), started a second later, finished two; every
# fiftieth failed.
FINISHED_ROW = (
    "SELECT 'done-' || i, 'bench.task', 'bench', '[]', '{}', "
    "CASE WHEN i % 50 = 0 THEN 'failed' ELSE 'succeeded' END, 0, "
    ":now - (:rows - i) * :step, 1, :now - (:rows - i) * :step + 1, "
    "'bench-worker', :now - (:rows - i) * :step + 2, :now - (:rows - i) * :step"
)


def fill(engine: "Engine", rows: int, text: Callable[[str], "TextClause"]) -> None:
    """ROWS finished jobs over the last six days, then waiting and running ones."""
    now = time.time()
    if engine.dialect.name == "postgresql":
        numbers, series = "", "generate_series(1, :rows) AS n(i)"
    else:
        numbers = "WITH RECURSIVE n(i) AS "
        numbers += "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :rows) "
        series = "n"
    finished = (
        f"{numbers}INSERT INTO job_registry ({COLUMNS}) {FINISHED_ROW} FROM {series}"
    )
    one = (
        f"INSERT INTO job_registry ({COLUMNS}) VALUES (:id, 'bench.task', 'bench', "
        "'[]', '{}', :state, 0, :now, 1, :started, :worker, NULL, :now)"
    )
    # Waiting 90 s, past JOB_LOST_AFTER_S: the round looks into each of them.
    waiting = {"state": "accepted", "now": now - 90, "started": None, "worker": None}
    running = {"state": "started", "now": now, "started": now, "worker": "bench-worker"}
    with engine.begin() as db:
        step = 6 * 86400 / rows
        db.execute(text(finished), {"rows": rows, "now": now - 60, "step": step})
        db.execute(
            text(one), [waiting | {"id": f"waiting-{i}"} for i in range(WAITING)]
        )
        db.execute(
            text(one), [running | {"id": f"running-{i}"} for i in range(RUNNING)]
        )
    if engine.dialect.name == "postgresql":
        # What autovacuum would do soon after: the planner's statistics.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text("VACUUM ANALYZE job_registry"))
    else:
        with engine.begin() as db:
            db.execute(text("ANALYZE"))


def explain(engine: "Engine", statement: str, parameters: Any) -> tuple[str, list[str]]:
    prefix = (
        "EXPLAIN " if engine.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN "
    )
    with engine.connect() as db:
        found = db.exec_driver_sql(prefix + statement, parameters).all()
        db.rollback()
    shown = " ".join(statement.split())
    if engine.dialect.name == "postgresql":
        return shown, [row[0] for row in found]
    return shown, [str(row[-1]) for row in found]


def count(engine: "Engine", text: Callable[[str], "TextClause"]) -> int:
    with engine.connect() as db:
        rows: int = db.execute(text("SELECT count(*) FROM job_registry")).scalar_one()
        return rows


if __name__ == "__main__":
    main()
