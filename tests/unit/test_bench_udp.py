"""bench.bench_udp: the paired-round ratio and which placement the verdict is judged on."""

from __future__ import annotations

import pytest

from bench.bench_udp import METRICS, MODES, EchoRun, _rows, paired_ratio


def _run(rate: float, n: int = 100) -> EchoRun:
    return EchoRun([1 / rate] * n, n / rate, 0)


def test_the_ratio_is_the_median_of_each_round_against_the_next() -> None:
    ours = [_run(r) for r in (100, 100, 300)]
    socat = [_run(r) for r in (100, 50, 100)]  # ratios 1.0, 2.0, 3.0
    assert paired_ratio(ours, socat) == pytest.approx(2.0)
    assert paired_ratio(ours[:2], socat[:2]) == pytest.approx(1.5)


def test_the_verdict_is_on_one_cpu_and_two_cpus_has_no_goal() -> None:
    runs = {
        (MODES[0], "rawstack"): [_run(80_000)] * 3,
        (MODES[0], "socat"): [_run(70_000)] * 3,
        (MODES[1], "rawstack"): [_run(9_000)] * 3,  # behind socat here, and no verdict
        (MODES[1], "socat"): [_run(10_000)] * 3,
    }
    rows = {row.metric: row for row in _rows(runs, {}, MODES)}
    assert rows[METRICS[0]].verdict == "PASS"
    assert rows[METRICS[1]].verdict == "no goal set"
    runs[MODES[0], "rawstack"] = [_run(60_000)] * 3
    assert {r.metric: r for r in _rows(runs, {}, MODES)}[METRICS[0]].verdict == "MISS"


def test_one_usable_cpu_measures_one_placement_and_says_why_not_the_other() -> None:
    runs: dict[tuple[str, str], list[EchoRun]] = {
        (m, n): [] for m in MODES for n in ("rawstack", "socat")
    }
    runs[MODES[0], "rawstack"] = [_run(80_000)]
    runs[MODES[0], "socat"] = [_run(70_000)]
    rows = _rows(runs, {}, MODES[:1])
    assert rows[0].verdict == "PASS"
    assert all("one usable CPU" in row.verdict for row in rows[1:])
