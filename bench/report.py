"""Result rows and the Markdown report (docs/benchmarks.md).

A :class:`Row` is one measured figure with its same-run baseline and its goal; its verdict
is PASS or MISS when the issue set a goal, "no goal set" when it did not, and
"not measured: <why>" when the figure could not be measured (never a made-up number).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.plots import Plot

GROUPS = ("Peers", "Harness")

INTRO = """\
These figures are produced by `python -m bench` (the `bench` tox env); this file is
generated, edit the intro in `bench/report.py` instead. Every figure was measured in the run
that wrote this file, and every baseline next to it was measured in that same run on the same
machine, so the comparison holds even on a busy host where absolute numbers drift. A goal
comes from the project's issues; PASS/MISS compares the measured figure with it. All traffic
stays inside network namespaces the benchmark creates (veth pairs between them) and
everything it creates is removed at the end, even on failure or Ctrl-C.

The machine is shared: other jobs may run at the same time, so treat absolute numbers as
indicative and the same-run ratios as the result. Percentiles are nearest-rank (see
`bench/stats.py`). The plots (PNG files in `docs/benchmarks/`) are drawn with matplotlib
(the `bench` extra) from the figures of the same run.
"""


@dataclass(frozen=True)
class Row:
    """One figure: what, how much, against what, towards which goal."""

    metric: str
    value: float | None
    unit: str
    baseline: str = ""
    goal: str = ""
    passed: bool | None = None
    why_missing: str = ""

    @property
    def verdict(self) -> str:
        if self.value is None:
            return f"not measured: {self.why_missing or 'unknown reason'}"
        if self.passed is None:
            return "no goal set" if not self.goal else "not judged"
        return "PASS" if self.passed else "MISS"


def not_measured(metric: str, why: str, goal: str = "", baseline: str = "") -> Row:
    """A row for a figure that could not be measured, saying why."""
    return Row(metric, None, "", baseline=baseline, goal=goal, why_missing=why)


@dataclass
class Section:
    """One benchmark's rows plus its method notes (exact commands, caveats)."""

    title: str
    group: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    plots: list[Plot] = field(default_factory=list)


def fmt_value(value: float | None, unit: str) -> str:
    """A figure with a precision suited to its size, then its unit."""
    if value is None:
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000 or value == int(value):
        text = f"{value:,.0f}"
    elif magnitude >= 100:
        text = f"{value:.1f}"
    elif magnitude >= 1:
        text = f"{value:.2f}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip()


def _cell(text: str) -> str:
    # A pipe or newline would break the Markdown table.
    return text.replace("|", "\\|").replace("\n", " ").strip() or "-"


def render_table(rows: Sequence[Row]) -> str:
    """A Markdown table: metric, measured, baseline, goal, verdict."""
    lines = [
        "| metric | measured | baseline (same run) | goal | verdict |",
        "|---|---:|---|---|---|",
    ]
    for row in rows:
        cells = (row.metric, fmt_value(row.value, row.unit), row.baseline, row.goal, row.verdict)
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def render_report(
    machine: Mapping[str, str],
    command: str,
    sections: Sequence[Section],
    duration: float,
    *,
    images: Mapping[str, str] | None = None,
    no_images: str = "",
) -> str:
    """The whole Markdown document.

    ``images`` maps a plot's name to its PNG's path relative to the report; a plot without
    one is left out, and ``no_images`` (why none were drawn) is said once instead.
    """
    images = images or {}
    out = ["# Benchmarks", "", INTRO.rstrip(), "", "## Machine", ""]
    out += ["| | |", "|---|---|"]
    out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in machine.items()]
    out += ["", "## Rerun", "", "As root, from the repository root:", "", "```sh", command]
    out += ["```", "", f"This run took {duration:.0f} s.", ""]
    counts = summarize(sections)
    out += [
        "## Results",
        "",
        f"{counts['PASS']} PASS, {counts['MISS']} MISS, {counts['not measured']} not measured, "
        f"{counts['no goal']} without a goal.",
        "",
    ]
    if no_images and any(s.plots for s in sections):
        out += [f"Plots not drawn: {no_images}.", ""]
    for group in GROUPS:
        chosen = [s for s in sections if s.group == group]
        if not chosen:
            continue
        out += [f"### {group}", ""]
        for section in chosen:
            out += [f"#### {section.title}", "", render_table(section.rows), ""]
            if section.notes:
                out += [f"- {note}" for note in section.notes]
                out.append("")
            for plot in section.plots:
                if plot.name in images:
                    out += [f"![{plot.title}]({images[plot.name]})", ""]
    return "\n".join(out).rstrip() + "\n"


def summarize(sections: Sequence[Section]) -> dict[str, int]:
    """How many rows passed, missed, were not measured, or had no goal."""
    counts = {"PASS": 0, "MISS": 0, "not measured": 0, "no goal": 0}
    for section in sections:
        for row in section.rows:
            if row.value is None:
                counts["not measured"] += 1
            elif row.passed is None:
                counts["no goal"] += 1
            else:
                counts["PASS" if row.passed else "MISS"] += 1
    return counts
