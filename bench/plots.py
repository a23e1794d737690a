"""Plots for the report, drawn with matplotlib from the figures the run itself measured.

A benchmark attaches :class:`Plot` objects to its section (the same numbers its table shows,
or the series behind them); :func:`draw` renders each one as a PNG next to the report
(``docs/benchmarks/<name>.png`` for ``docs/benchmarks.md``) and the report links them. A
machine without matplotlib (the ``bench`` extra) still gets its tables: the report says
the plots were not drawn and why.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

LINE = "line"
BARS = "bars"  # stacked bars: ``xs`` are category names, one series per stacked part


@dataclass(frozen=True)
class Series:
    """One line (or one stacked part of the bars)."""

    label: str
    xs: tuple[float | str, ...]
    ys: tuple[float, ...]


@dataclass(frozen=True)
class Plot:
    """One figure: ``name`` is its file name without ``.png``."""

    name: str
    title: str
    xlabel: str
    ylabel: str
    series: tuple[Series, ...]
    kind: str = LINE
    goal: float | None = None  # drawn as a dashed horizontal line
    goal_label: str = ""


def image_dir(report: Path) -> Path:
    """Where a report's PNGs go: ``docs/benchmarks.md`` -> ``docs/benchmarks/``."""
    return report.with_suffix("")


def draw(plots: Sequence[Plot], directory: Path) -> dict[str, Path]:
    """Render every plot as ``<directory>/<name>.png``; name -> path.

    Raises ImportError when matplotlib is missing (the caller reports it).
    """
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    drawn: dict[str, Path] = {}
    for plot in plots:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
        try:
            if plot.kind == BARS:
                _bars(ax, plot)
            else:
                for s in plot.series:
                    ax.plot(list(s.xs), list(s.ys), marker="o", markersize=3, label=s.label)
            if plot.goal is not None:
                ax.axhline(plot.goal, color="tab:red", linestyle="--", linewidth=1,
                           label=plot.goal_label or "goal")  # fmt: skip
            ax.set_title(plot.title, fontsize=10)
            ax.set_xlabel(plot.xlabel)
            ax.set_ylabel(plot.ylabel)
            ax.grid(True, axis="y", alpha=0.3)
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=8)
            fig.tight_layout()
            path = directory / f"{plot.name}.png"
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fig.savefig(tmp, format="png")
            os.replace(tmp, path)
            drawn[plot.name] = path
        finally:
            plt.close(fig)
    return drawn


def _bars(ax: object, plot: Plot) -> None:
    categories = [str(x) for x in plot.series[0].xs]
    bottoms = [0.0] * len(categories)
    for s in plot.series:
        ax.bar(categories, list(s.ys), bottom=bottoms, label=s.label)  # type: ignore[attr-defined]
        bottoms = [b + y for b, y in zip(bottoms, s.ys)]
    for i, total in enumerate(bottoms):
        ax.annotate(f"{total:.1f}", (i, total), ha="center", va="bottom", fontsize=8)  # type: ignore[attr-defined]
