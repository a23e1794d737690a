"""bench.report: verdicts, value formatting, Markdown tables and the whole document."""

from __future__ import annotations

import pytest

from bench.report import (
    INTRO,
    Row,
    Section,
    fmt_value,
    not_measured,
    render_report,
    render_table,
    summarize,
)


def test_verdicts() -> None:
    assert Row("a", 1.0, "ms", goal="<= 2 ms", passed=True).verdict == "PASS"
    assert Row("a", 3.0, "ms", goal="<= 2 ms", passed=False).verdict == "MISS"
    assert Row("a", 3.0, "ms").verdict == "no goal set"
    assert not_measured("a", "nginx missing").verdict == "not measured: nginx missing"
    # A missing value never passes, whatever ``passed`` says.
    assert Row("a", None, "", passed=True, why_missing="x").verdict == "not measured: x"


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [
        (None, "ms", "-"),
        (12345.6, "req/s", "12,346 req/s"),
        (250.0, "ms", "250 ms"),
        (123.45, "us", "123.5 us"),
        (2.345, "x", "2.35 x"),
        (0.1234, "ms", "0.123 ms"),
        (7.0, "", "7"),
    ],
)
def test_fmt_value(value: float | None, unit: str, text: str) -> None:
    assert fmt_value(value, unit) == text


def test_table_escapes_pipes_and_keeps_columns() -> None:
    rows = [
        Row("a|b", 1.5, "ms", baseline="x | y", goal="<= 2 ms", passed=True),
        not_measured("c", "line1\nline2"),
    ]
    lines = render_table(rows).splitlines()
    assert lines[0] == "| metric | measured | baseline (same run) | goal | verdict |"
    assert lines[2] == "| a\\|b | 1.50 ms | x \\| y | <= 2 ms | PASS |"
    assert lines[3] == "| c | - | - | - | not measured: line1 line2 |"
    for line in lines:
        assert line.replace("\\|", "").count("|") == 6


def test_summarize_counts_each_kind() -> None:
    sections = [
        Section("s1", "Peers", [Row("a", 1.0, "", goal="g", passed=True), Row("b", 2.0, "")]),
        Section(
            "s2", "Harness", [Row("c", 1.0, "", goal="g", passed=False), not_measured("d", "x")]
        ),
    ]
    assert summarize(sections) == {"PASS": 1, "MISS": 1, "not measured": 1, "no goal": 1}


def test_render_report_states_machine_command_and_rows() -> None:
    sections = [
        Section(
            "Harness thing",
            "Harness",
            [Row("setup", 20.0, "ms", "ip 100 ms", "<= 50 ms", passed=True)],
            notes=["method X"],
        ),
        Section("Peer thing", "Peers", [not_measured("http", "wrk missing", goal=">= 0.5x")]),
    ]
    machine = {"CPU": "Test CPU", "kernel": "Linux 6.1", "Python": "3.11", "date (UTC)": "today"}
    text = render_report(machine, "sudo .venv/bin/python -m bench --quick", sections, 12.3)
    assert text.startswith("# Benchmarks\n")
    assert INTRO.splitlines()[0] in text
    for needle in (
        "| CPU | Test CPU |",
        "| kernel | Linux 6.1 |",
        "python -m bench --quick",
        "| setup | 20 ms | ip 100 ms | <= 50 ms | PASS |",
        "- method X",
        "not measured: wrk missing",
        "1 PASS, 0 MISS, 1 not measured",
    ):
        assert needle in text
    # Peers come before Harness whatever order the sections ran in.
    assert text.index("### Peers") < text.index("### Harness")
