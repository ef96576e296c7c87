"""The supported answer combinations: the one list behind every matrix.

The template's pytest matrices (tests/test_render.py, tests/test_update.py)
import COMBINATIONS; dev.py builds its `render:<id>` shards, and so the CI
workflow's matrix, from the same list. Needs nothing but the standard library:
dev.py imports it before any dependency is installed.

`python tests/combinations.py` prints the list as JSON (a GitHub matrix).

LOOPSAFE_PYTHON picks the Python every entry is rendered for (its
`python_version` answer); CI sets it per job, locally it defaults to 3.11, the
only Python installed on the development machines.
"""

import json
import os
from typing import NamedTuple

WORKLOADS = ("async_io", "blocking_io", "cpu_bound", "mixed")
BACKGROUND = (("ephemeral", None), ("durable", "redis"), ("durable", "rabbitmq"))
PYTHON_VERSIONS = ("3.11", "3.12", "3.13")  # copier.yml's python_version choices
DEFAULT_PYTHON = "3.11"
PYTHON = os.environ.get("LOOPSAFE_PYTHON") or DEFAULT_PYTHON


class Combination(NamedTuple):
    workload: str
    task_durability: str
    broker: str | None
    shed_load: bool = True
    examples: bool = True
    python_version: str = DEFAULT_PYTHON
    opentelemetry: bool = False

    @property
    def id(self) -> str:
        """Readable and unique; the same whatever Python it is rendered for."""
        parts = [self.workload, self.task_durability, self.broker]
        parts.append(None if self.shed_load else "no-shedding")
        parts.append(None if self.examples else "no-examples")
        parts.append("otel" if self.opentelemetry else None)
        return "-".join(part for part in parts if part)

    @property
    def durable(self) -> bool:
        return self.task_durability == "durable"

    @property
    def suite_options(self) -> tuple[str, ...]:
        """The pytest options the template's CI runs this entry's generated suite
        with. Every entry runs its default suite, the one `uv run pytest` runs,
        less the tests another entry runs on the same code (skipped_tests); the
        entries of CRASH_TESTED run the tests marked `recovery` too (crash,
        restart, chaos), less the chaos test outside CHAOS_TESTED, each on the
        database it names. All but PARALLEL_TESTED run in one process: the
        template's CI runs many suites side by side already."""
        options = ["-m", ""] if self.id in CRASH_TESTED else []
        if self.id != PARALLEL_TESTED:
            options += ["--numprocesses", "0"]
        return (*options, *(f"--deselect={node}" for node in self.skipped_tests))

    @property
    def skipped_tests(self) -> tuple[str, ...]:
        """The generated tests the template's CI leaves out of this entry, as
        pytest's `--deselect` takes them (a file, or one test's node id): the
        shared tests outside the entries that run them (SHARED_TESTS,
        DURABLE_TESTS), the chaos test outside CHAOS_TESTED, and in CRASH_TESTED
        each test on both databases on the other database than the one named."""
        whole = self.id == PARALLEL_TESTED  # run as its owner runs it: all of it
        skipped: list[str] = []
        if not whole and self.id not in EVERY_PYTHON:
            skipped += SHARED_TESTS
        if self.durable and not whole and self.id not in CRASH_TESTED:
            skipped += DURABLE_TESTS
        if self.id not in CRASH_TESTED:
            return tuple(skipped)
        named = (
            (CRASH_TEST, CRASH_TESTED),
            (CHAOS_TEST, CHAOS_TESTED),
            (REGISTRY_TEST, CRASH_TESTED),
            (TAKEOVER_TEST, CRASH_TESTED),
        )
        for path, tested in named:
            if self.id not in tested:
                skipped.append(path)
                continue
            other = next(db for db in DATABASES if db != tested[self.id])
            skipped += [f"{path}::{test}[{other}]" for test in DATABASE_TESTS[path]]
        return tuple(skipped)

    @property
    def answers(self) -> dict[str, str]:
        """The answers that pick this combination, as `--data` would pass them.

        Answers left at their default are left out, so the list also renders
        with releases that predate a question.
        """
        answers = {"workload": self.workload, "task_durability": self.task_durability}
        if self.broker:
            answers["broker"] = self.broker
        if not self.shed_load:
            answers["shed_load"] = "false"
        if not self.examples:
            answers["examples"] = "false"
        if self.opentelemetry:
            answers["opentelemetry"] = "true"
        if self.python_version != DEFAULT_PYTHON:
            answers["python_version"] = self.python_version
        return answers


ENTRIES = [
    *(
        Combination(workload, durability, broker)
        for workload in WORKLOADS
        for durability, broker in BACKGROUND
    ),
    # The non-default answers, each on the combinations with the most code it removes.
    Combination("mixed", "ephemeral", None, shed_load=False),
    Combination("async_io", "ephemeral", None, examples=False),
    Combination("blocking_io", "durable", "redis", examples=False),
    Combination("cpu_bound", "durable", "rabbitmq", examples=False),
    Combination("mixed", "ephemeral", None, examples=False),
    # OpenTelemetry on where it instruments the most: requests, aiohttp calls,
    # and jobs whose trace crosses the broker into prefork worker processes.
    Combination("mixed", "durable", "redis", opentelemetry=True),
]

# Rendered on every Python in PYTHON_VERSIONS by CI; one per workload, both
# brokers and ephemeral work among them. Every other entry: DEFAULT_PYTHON only.
EVERY_PYTHON = (
    "async_io-ephemeral",
    "blocking_io-durable-redis",
    "cpu_bound-durable-rabbitmq",
    "mixed-ephemeral",
)

# The generated recovery tests (marked `recovery`, left out of a plain
# `uv run pytest`: the crash and restart tests of tests/runtime/test_durability.py
# and tests/examples/test_jobs.py, and tests/runtime/test_chaos.py) test the
# durable preset, which differs by broker and by the worker's pool (threads for
# async_io and blocking_io, prefork for cpu_bound and mixed), not by the rest of
# the answers: the template's CI runs them on these four, one per broker and
# pool. The chaos test runs once per broker, one of them on each pool. Their
# tests that take the `jobs_database` fixture run on SQLite and on PostgreSQL
# in a generated project; here each entry runs them on the database it names,
# so that each database still meets each broker and each pool
# (tests/test_workflows.py checks both pairings).
CRASH_TESTED = {
    "blocking_io-durable-redis": "postgresql",  # threads
    "async_io-durable-rabbitmq": "sqlite",  # threads
    "cpu_bound-durable-rabbitmq": "postgresql",  # prefork
    "mixed-durable-redis": "sqlite",  # prefork
}
CHAOS_TESTED = {
    "blocking_io-durable-redis": "sqlite",  # threads
    "cpu_bound-durable-rabbitmq": "postgresql",  # prefork
}
DATABASES = ("sqlite", "postgresql")  # the `jobs_database` fixture's parameters
CRASH_TEST = "tests/runtime/test_durability.py"
CHAOS_TEST = "tests/runtime/test_chaos.py"
REGISTRY_TEST = "tests/runtime/test_registry.py"
TAKEOVER_TEST = "tests/runtime/test_durability_registry.py"
DATABASE_TESTS = {  # each file's tests that take `jobs_database`
    CRASH_TEST: (
        "test_a_job_committed_but_never_published_is_published_again",
        "test_a_backlog_is_not_taken_for_a_loss",
    ),
    CHAOS_TEST: ("test_chaos_loses_no_job_and_applies_no_effect_twice",),
    # The durable preset's other tests on both databases (DURABLE_TESTS): in
    # CRASH_TESTED entries, on the database each names, as the crash tests.
    REGISTRY_TEST: (
        "test_the_migrations_make_the_tables_the_code_uses",
        "test_a_registry_from_before_versions_keeps_its_rows",
        "test_processes_starting_together_upgrade_once",
        "test_a_schema_newer_than_this_release_is_refused",
        "test_retention_deletes_expired_rows_a_batch_at_a_time",
        "test_reconcilers_deleting_at_once_delete_every_row_once",
        "test_the_command_line_lists_shows_cancels_and_purges",
    ),
    TAKEOVER_TEST: (
        "test_a_registry_from_the_previous_release_is_taken_over_with_no_job_lost",
        "test_a_failed_job_keeps_its_reason_and_is_retried_or_cancelled_by_an_operator",
        "test_a_worker_refuses_a_schema_newer_than_it_knows",
    ),
}

# Generated tests of what renders the same for every entry with the same
# workload and background work, or differs only where the EVERY_PYTHON entries
# differ (a process pool or none; ephemeral work, Redis or RabbitMQ): the
# launchers, liveness, JSON logs, the image's commands, start-up errors, metrics
# over several processes and the thread pool under load. (Promtool's lint of
# one process's and of the worker's metrics runs everywhere: the metrics an
# entry exports depend on its answers.) They are the slowest tests of a suite
# (each starts real servers, several workers each, or holds a load for
# seconds), and would test the same code again elsewhere: the template's CI
# runs them in the EVERY_PYTHON entries (one per workload) and in
# PARALLEL_TESTED, and leaves them out of the others.
SHARED_TESTS = (
    "tests/runtime/test_launchers.py",
    "tests/runtime/test_liveness.py",
    "tests/runtime/test_metrics_lint.py::test_metrics_of_several_processes_pass_promtool",
    "tests/runtime/test_logs.py",
    "tests/runtime/test_container.py",
    "tests/runtime/test_settings.py",
    "tests/runtime/test_lag.py::test_metrics_add_up_across_worker_processes",
    "tests/runtime/test_thread_pool.py::test_the_pool_follows_a_step_up_and_back_down",
    "tests/runtime/test_thread_pool.py"
    "::test_a_saturated_downstream_does_not_drive_the_pool_far_past_it",
    "tests/runtime/test_thread_pool.py"
    "::test_lowering_the_size_under_load_never_over_grants",
)
# The durable preset's tests with real workers (the registry, its operators'
# commands, retries, second starts): like the recovery tests, they differ by
# broker and worker pool only, and run where those do (CRASH_TESTED) and in
# PARALLEL_TESTED.
DURABLE_TESTS = (CRASH_TEST, REGISTRY_TEST, TAKEOVER_TEST)

# A generated project runs its tests in parallel (pytest-xdist, from its
# pyproject's addopts); the template's CI runs each suite in one process, but
# for this one, the largest, run as its owner runs it.
PARALLEL_TESTED = "mixed-durable-redis-otel"

COMBINATIONS = [entry._replace(python_version=PYTHON) for entry in ENTRIES]

if __name__ == "__main__":
    print(json.dumps({"include": [c.answers | {"id": c.id} for c in COMBINATIONS]}))
