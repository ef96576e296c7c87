"""The benchmark suite still runs: its smoke mode, end to end, every scenario.

This checks that `python -m bench --smoke` renders, starts, loads and stops its
services and writes every scenario's table, goals and plots: a scenario that
fails, or produces no figures, fails this test. It asserts nothing about the
figures themselves: smoke runs are seconds long, and speed goals are reported
by the full suite, never tested.
"""

import re
import sys
from pathlib import Path

import pytest
from helpers import REPO, run

SCENARIOS = 8  # bench/scenarios: s0 to s7
GOALS = [
    "P1 blocking_io",
    "P1 async_io",
    "P1 cpu_bound",
    "P1 mixed",
    "P2",
    "P3",
    "P4",
    "P4 user route",
    "P5 503s",
    "P5 /health",
    "0 jobs lost, redis",  # smoke runs: Redis only
    "Single recovery, redis",
    "P7 step: answered",
    "P7 step: p99",
    "P7 step: size",
    "P7 saturated: size",
    "P7 saturated: p99",
    "P7 steady: size",
]
PLOTS = {
    "bench-loop-freedom.png",
    "bench-thread-pool.png",
    "bench-cpu-bound.png",
    "bench-overhead.png",
    "bench-user-route.png",
    "bench-overload.png",
    "bench-durability.png",
    "bench-adaptive.png",
}


@pytest.mark.timeout(600)
def test_smoke_mode_runs_every_scenario(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    # The page as committed: its hand-written notes must outlive the rewrite.
    out.mkdir()
    committed = (REPO / "docs" / "benchmarks.md").read_text()
    notes = committed[committed.index("<!-- Everything below is written by hand") :]
    (out / "benchmarks.md").write_text(committed)
    command = ["-m", "bench", "--smoke", "--out", str(out), "--work", str(work)]
    run(sys.executable, *command, cwd=REPO)  # fails the test unless it exits 0

    page = (out / "benchmarks.md").read_text()
    assert page.endswith(notes) and page.count(notes) == 1
    page = page.removesuffix(notes)  # the rest is what this run wrote
    assert "FAILED" not in page and "Skipped" not in page
    sections = re.findall(r"^## (\d)\. ", page, re.MULTILINE)
    assert sections == [str(n) for n in range(SCENARIOS)]
    for goal in GOALS:
        assert f"| {goal} |" in page
    plots = set(re.findall(r"\]\((bench-[\w-]+\.png)\)", page))
    assert plots == PLOTS
    for plot in plots:
        assert (out / plot).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert str(REPO) not in page and str(tmp_path) not in page  # no local paths

    # Every server the suite started has been stopped: none runs from its renders.
    assert not processes_mentioning(str(work))


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, NotADirectoryError):
            continue
        if text in cmdline:
            found.append(cmdline)
    return found
