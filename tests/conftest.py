"""The suite's order: longest tests first.

pytest-xdist hands tests to its workers in collection order, one at a time
with `--maxschedchunk 1` (dev.py passes it), each worker taking the next when
it is free: started first, the long tests (a durable combination's
suite runs real workers and brokers for minutes) overlap each other and the
many short ones, instead of one of them starting last and running alone.
"""

import pytest
from combinations import (
    CHAOS_TESTED,
    CRASH_TESTED,
    DURABLE_TESTS,
    SHARED_TESTS,
    Combination,
)

# Rough cost of one test by where it is, longest first (seconds on 2 cores).
COST = {
    "test_render.py": 100,  # a rendered project's whole suite
    "test_update.py": 20,  # copies and an update
    "test_bench.py": 250,  # the benchmarks' smoke run: every scenario, briefly
    "test_container.py": 10,
}


def expected_cost(item: pytest.Item) -> float:
    cost: float = COST.get(item.path.name, 1)
    # Updates that then run the project's wiring tests, on a real worker too.
    slow = ("test_answer_change", "test_a_job_", "test_an_update_replaces")
    cost *= 3 if item.name.startswith(slow) else 1
    # Durable combinations start Celery workers and kill them: twice as long.
    cost *= 2 if "durable" in item.name else 1
    if item.path.name == "test_render.py":
        # The crash and chaos tests and OpenTelemetry's add a minute or two:
        # started last, one of them runs alone at the end.
        assert isinstance(item, pytest.Function)  # test_render.py holds no other
        combination = item.callspec.params["combination"]
        assert isinstance(combination, Combination)
        # Without the shared tests (combinations.py), a suite is half as long.
        left_out = set(combination.skipped_tests)
        cost *= 0.5 if left_out & set(SHARED_TESTS) else 1
        cost *= 0.6 if left_out & set(DURABLE_TESTS) else 1
        cost += 50 * (combination.id in CRASH_TESTED)
        cost += 100 * (combination.id in CHAOS_TESTED)
        cost += 100 * combination.opentelemetry
    return cost


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=expected_cost, reverse=True)  # stable: ties keep their order
