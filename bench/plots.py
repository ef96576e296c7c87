"""The suite's plots, PNG files: grouped bars of repeated figures, time series."""

import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from .report import spread  # noqa: E402

COLORS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]


def in_ms(seconds: list[float]) -> list[float]:
    return [value * 1000 for value in seconds]


def bars(
    path: Path,
    title: str,
    labels: list[str],
    series: dict[str, list[list[float]]],
    ylabel: str,
    log: bool = False,
    lines: list[float] | None = None,
    line_label: str = "",
) -> None:
    """One group of bars per label, one bar per series: the median of the
    repeats, with a whisker from their minimum to their maximum. `lines` draws
    one limit per label (a short black line across its group)."""
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=100)
    width = 0.8 / len(series)
    for k, (name, per_label) in enumerate(series.items()):
        stats = [spread(values) for values in per_label]
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        middles = [s[0] for s in stats]
        errors = [[s[0] - s[1] for s in stats], [s[2] - s[0] for s in stats]]
        ax.bar(
            xs,
            middles,
            width,
            yerr=errors,
            capsize=3,
            label=name,
            color=COLORS[k % len(COLORS)],
        )
    if lines:
        for i, limit in enumerate(lines):
            ax.hlines(
                limit,
                i - 0.45,
                i + 0.45,
                colors="black",
                linestyles="dashed",
                # One legend entry for all: matplotlib leaves "_nolegend_" out.
                label=line_label if i == 0 else "_nolegend_",
            )
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if log:
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        # Between the powers of ten, label only the 2s and 5s.
        ax.yaxis.set_minor_formatter(
            FuncFormatter(
                lambda value, _: f"{value:g}" if f"{value:g}"[0] in "25" else ""
            )
        )
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


Points = tuple[list[float], list[float], str]  # xs, ys, colour


def timeline(
    path: Path,
    title: str,
    panels: list[tuple[str, dict[str, Points], bool]],
    xlabel: str = "seconds into the overload",
) -> None:
    """Stacked panels sharing the time axis; each is (ylabel, {name: points}, log)."""
    fig, axes = plt.subplots(
        len(panels),
        1,
        figsize=(8, 2.6 * len(panels)),
        dpi=100,
        sharex=True,
        squeeze=False,
    )
    for ax, (ylabel, named, log) in zip(axes[:, 0], panels, strict=True):
        for name, (xs, ys, color) in named.items():
            ax.plot(xs, ys, ".", markersize=2, label=name, color=color)
        ax.set_ylabel(ylabel, fontsize=9)
        if log:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, markerscale=4)
    axes[0, 0].set_title(title, fontsize=10)
    axes[-1, 0].set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def idle_and_loaded_p99(
    path: Path, title: str, labels: list[str], figures: dict[str, Any]
) -> None:
    """Idle and loaded /health p99 side by side for each variant, on a log scale."""
    bars(
        path,
        title,
        [textwrap.fill(label, 17) for label in labels],  # six bars side by side
        {
            "idle": [in_ms(figures[label]["idle_p99"]) for label in labels],
            "under load": [in_ms(figures[label]["loaded_p99"]) for label in labels],
        },
        "milliseconds",
        log=True,
    )
