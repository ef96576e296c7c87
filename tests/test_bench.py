"""The benchmark suite still runs: its smoke mode, end to end.

This checks that bench/run.py renders, starts, loads and stops its services and
writes a table and plots. It asserts nothing about the figures: smoke runs are
seconds long, and speed goals are reported by the full suite, never tested.
"""

import re
import sys
from pathlib import Path

import pytest
from helpers import REPO, run

SCENARIOS = 7  # bench/scenarios: s0 to s6


@pytest.mark.timeout(600)
def test_smoke_mode_writes_a_table_and_plots(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    command = ["bench/run.py", "--smoke", "--out", str(out), "--work", str(work)]
    run(sys.executable, *command, cwd=REPO)

    page = (out / "benchmarks.md").read_text()
    assert "FAILED" not in page
    assert len(re.findall(r"^## \d\. ", page, re.MULTILINE)) == SCENARIOS
    for goal in (
        "P1 blocking_io",
        "P1 async_io",
        "P1 cpu_bound",
        "P1 mixed",
        "P2",
        "P3",
    ):
        assert f"| {goal} |" in page

    plots = set(re.findall(r"\]\((bench-[\w-]+\.png)\)", page))
    expected = {
        "bench-loop-freedom.png",
        "bench-thread-pool.png",
        "bench-cpu-bound.png",
    }
    copier_yml = (REPO / "copier.yml").read_text()
    if re.search(r"^shed_load:", copier_yml, re.MULTILINE):  # the lag issue landed
        expected.add("bench-overload.png")
        assert "| P5 503s |" in page and "| P5 /health |" in page
    assert plots >= expected
    for plot in plots:
        assert (out / plot).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

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
