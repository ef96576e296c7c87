"""What a scenario hands back, the statistics it uses, and the Markdown it becomes."""

import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Goal:
    name: str  # "P1 async_io"
    target: str  # "/health p99 loaded ≤ 1.5× idle"
    measured: str  # "1.2× [1.1–1.3]"
    passed: bool | None  # None: not measured


@dataclass
class Section:
    """One scenario's results: a table, goals, plots (file names) and notes."""

    title: str
    about: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the scenario did not run
    # Every measurement, for latest.json.
    raw: dict[str, Any] = field(default_factory=dict)
    machine: "Machine | None" = None  # how busy the machine was meanwhile


# Other processes using more than this many cores on average while a scenario
# measured make its figures those of a busy machine: reported, not results.
BUSY_CORES = 0.25
# So does a machine slow to wake a sleeping thread, which a shared VM can be with
# no other process running: the probe's own send lag p99 while idle was 0.7-1.4
# ms in quiet runs here, and 5.6 ms in one whose latency floor (the tiny server's
# idle p99) was four times that of the run half an hour before.
SLOW_WAKE_S = 0.002


@dataclass
class Machine:
    """How busy the machine was around a scenario, apart from the suite itself.

    The load average alone cannot tell: the suite's own load (a process pool
    keeping every core busy) raises it for minutes. So the suite counts the CPU
    time of the machine, less its own processes', over the scenario.
    """

    load_before: float  # 1-minute load average
    load_after: float
    others_cores: float  # cores other processes used, on average
    # The median of the scenario's idle probes' own send lag p99, in seconds;
    # None where the scenario probes no latency.
    wake_lag: float | None = None

    @property
    def slow_wake(self) -> bool:
        return self.wake_lag is not None and self.wake_lag > SLOW_WAKE_S

    @property
    def busy(self) -> bool:
        return self.others_cores > BUSY_CORES or self.slow_wake

    def describe(self) -> str:
        state = "**busy machine: not a result**" if self.busy else "quiet"
        wake = ""
        if self.wake_lag is not None:
            wake = (
                f"; the idle probe's own send lag p99 {self.wake_lag * 1000:.1f} ms "
                f"({'slow wake-ups' if self.slow_wake else 'prompt wake-ups'})"
            )
        return (
            f"Machine meanwhile: load average {self.load_before:.2f} → "
            f"{self.load_after:.2f}; other processes used "
            f"{self.others_cores:.2f} cores on average{wake} ({state})."
        )


# --- statistics -----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Latency:
    """Percentiles of one open-loop run, in seconds.

    Requests unanswered at the deadline count with the time they had waited so
    far: then the percentiles are lower bounds, and `censored` says how many.
    """

    p50: float
    p99: float
    max: float
    count: int
    censored: int
    statuses: dict[int, int]
    send_lag_p99: float  # the generator's own share of the latency

    @classmethod
    def of(cls, result: dict[str, Any], status: int | None = None) -> "Latency":
        """Latency of the run's answers, or only of those with `status`."""
        picked = [
            latency
            for latency, code in zip(result["latency"], result["status"], strict=True)
            if latency is not None and (status is None or code == status)
        ]
        censored = result["censored"] if status is None else []
        values = picked + censored or [math.nan]
        statuses: dict[int, int] = {}
        for code in result["status"]:
            statuses[code] = statuses.get(code, 0) + 1
        pairs = zip(result["send_lag"], result["status"], strict=True)
        lags = [lag for lag, code in pairs if code]  # answered requests only
        return cls(
            percentile(values, 50),
            percentile(values, 99),
            max(values),
            len(values),
            len(censored),
            statuses,
            percentile(lags, 99) if lags else math.nan,
        )


def spread(values: list[float]) -> tuple[float, float, float]:
    """Median, minimum and maximum of repeated measurements."""
    return statistics.median(values), min(values), max(values)


def ms(seconds: float) -> str:
    if math.isnan(seconds):
        return "–"
    value = seconds * 1000
    if value >= 10_000:
        return f"{value / 1000:,.1f} s"
    return f"{value:,.0f} ms" if value >= 100 else f"{value:.1f} ms"


def fmt_spread(
    values: list[float], unit: Callable[[float], str] = ms, bound: bool = False
) -> str:
    """`median [min–max]`; `≥` when some runs hit the deadline (a lower bound)."""
    values = [value for value in values if not math.isnan(value)]
    if not values:
        return "–"
    middle, low, high = spread(values)
    prefix = "≥ " if bound else ""
    if len(values) == 1:
        return prefix + unit(middle)
    return f"{prefix}{unit(middle)} [{unit(low)}–{unit(high)}]"


def times(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:,.0f}×" if value >= 100 else f"{value:.2f}×"


def p99_ratio(ratios: list[float], idle: list[float], loaded: list[float]) -> str:
    """A latency goal's figure: each repeat's p99 loaded ÷ idle, and the median
    idle and loaded p99 it came from."""
    return (
        f"{fmt_spread(ratios, times)} ({ms(spread(idle)[0])} → {ms(spread(loaded)[0])})"
    )


def rate(value: float) -> str:
    return f"{value:,.0f}/s"


def percent(value: float) -> str:
    return f"{value:.0%}"


def verdict(passed: bool | None, busy: bool = False) -> str:
    if busy and passed is not None:
        return "busy machine (" + ("pass" if passed else "miss") + ", not a result)"
    return {True: "pass", False: "**miss**", None: "not measured"}[passed]


# --- the machine ----------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        wrk = wrk.split()[1] if wrk else "absent"
    except OSError:
        wrk = "absent"
    return {
        "cores (nproc)": str(os.cpu_count()),
        "CPU": cpu,
        "Python": platform.python_version(),
        "OS": f"{platform.system()} {platform.release()}",
        "wrk": wrk,
        "load average at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


# --- Markdown -------------------------------------------------------------------


def busy(section: Section) -> bool:
    return section.machine is not None and section.machine.busy


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(
    sections: list[Section],
    about_run: dict[str, str],
    plot_prefix: str = "",
    preamble: str = "",
) -> str:
    parts = [preamble.strip()] if preamble else []
    rows = [
        [g.name, g.target, g.measured, verdict(g.passed, busy(section))]
        for section in sections
        for g in section.goals
    ]
    if rows:
        parts.append("## Goals\n\n" + table(["Goal", "Target", "Measured", ""], rows))
    if any(busy(section) for section in sections):
        parts.append(
            "**Some figures were taken on a busy machine** (other processes used "
            f"more than {BUSY_CORES} cores meanwhile, or the idle probe's own send "
            f"lag p99 passed {SLOW_WAKE_S * 1000:g} ms: the machine woke threads "
            "late): they are marked so, and are not results. Rerun on a quiet "
            "machine."
        )
    for section in sections:
        text = [f"## {section.title}"]
        if section.about:
            text.append(section.about)
        if section.skipped:
            text.append(f"*Skipped:* {section.skipped}")
        if section.rows:
            text.append(table(section.header, section.rows))
        text += [f"![{section.title}]({plot_prefix}{plot})" for plot in section.plots]
        text += [f"- {note}" for note in section.notes]
        if section.machine:
            text.append(section.machine.describe())
        parts.append("\n\n".join(text))
    run_rows = [[key, value] for key, value in about_run.items()]
    parts.append("## The run\n\n" + table(["", ""], run_rows))
    return "\n\n".join(parts) + "\n"
