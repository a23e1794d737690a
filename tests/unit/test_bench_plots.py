"""Report plots: drawn from the sections' own series, linked from the Markdown, or said missing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.bench_cost import read_costs, read_phases
from bench.plots import BARS, Plot, Series, draw, image_dir
from bench.report import Row, Section, render_report
from bench.runner import draw_plots

LINE_PLOT = Plot(
    "pairs-memory", "Memory per pair", "pairs", "MB", (Series("s", (1, 2), (3.0, 2.0)),)
)
BAR_PLOT = Plot(
    "cost",
    "Cost",
    "fixture",
    "ms",
    (
        Series("setup", ("bare", "pair"), (1.0, 9.0)),
        Series("teardown", ("bare", "pair"), (2.0, 3.0)),
    ),
    kind=BARS,
    goal=20.0,
)


def _section(*plots: Plot) -> Section:
    return Section("T", "Harness", [Row("m", 1.0, "ms")], plots=list(plots))


def test_draw_writes_one_png_per_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    drawn = draw([LINE_PLOT, BAR_PLOT], tmp_path / "imgs")
    assert sorted(drawn) == ["cost", "pairs-memory"]
    for path in drawn.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "imgs").glob(".*"))  # no temporary file left


def test_report_links_the_drawn_plots_relative_to_itself(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report = tmp_path / "docs" / "benchmarks.md"
    images, why = draw_plots([_section(LINE_PLOT)], report)
    assert (why, images) == ("", {"pairs-memory": "benchmarks/pairs-memory.png"})
    assert (image_dir(report) / "pairs-memory.png").is_file()
    text = render_report({}, "cmd", [_section(LINE_PLOT)], 1.0, images=images)
    assert "![Memory per pair](benchmarks/pairs-memory.png)" in text


def test_report_says_why_plots_are_missing() -> None:
    text = render_report({}, "cmd", [_section(LINE_PLOT)], 1.0, no_images="matplotlib is gone")
    assert "Plots not drawn: matplotlib is gone." in text
    assert "![" not in text


def test_cost_durations_are_summed_per_test_and_grouped_by_fixture(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    lines = [
        ["t.py::test_bare[0]", "setup", 0.002],
        ["t.py::test_bare[0]", "teardown", 0.001],
        ["t.py::test_pair[0]", "setup", 0.010],
        ["t.py::test_pair[0]", "teardown", 0.004],
        ["t.py::test_pair[1]", "setup", 0.012],
        ["t.py::test_pair[1]", "teardown", 0.002],
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    costs = read_costs(path)
    assert {k: [round(v, 6) for v in vs] for k, vs in costs.items()} == {
        "bare": [3.0],
        "pair": [14.0, 14.0],
    }
    assert [round(v, 6) for v in read_phases(path)[("pair", "teardown")]] == [4.0, 2.0]
