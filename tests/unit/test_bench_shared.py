"""The shared-peers figures of the scale and per-test cost benchmarks: rows, verdicts, plots."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from bench.bench_cost import METRICS as COST_METRICS
from bench.bench_cost import shared_rows
from bench.bench_scale import METRICS as SCALE_METRICS
from bench.bench_scale import PairsRun, ScaleRun, _notes, _plots, _rows

MIB = 1024


def _pairs(label: str, n: int, pss_mb: float, kernel_mb: float, total_ms: float) -> PairsRun:
    return PairsRun(
        label,
        build_ms=[4.0] * n,
        total_ms=[total_ms] * n,
        pss_kib=int(pss_mb * MIB * n),
        rss_kib=int(3 * pss_mb * MIB * n),
        alive=2 * n,
        kernel={"Slab": int(kernel_mb * MIB * n)},
        memory=[(1, pss_mb + kernel_mb), (n, pss_mb + kernel_mb)],
    )


def _scale(shared: PairsRun | None, why_no_shared: str = "") -> ScaleRun:
    res = ScaleRun(10, None, why_no_shared=why_no_shared, exec_mb=22.0, exec_pairs=2)
    res.forked = _pairs("forked", 10, 8.0, 1.0, 20.0)
    res.shared = shared
    return res


def _by_metric(res: ScaleRun) -> dict[str, tuple[float | None, str]]:
    return {r.metric: (r.value, r.verdict) for r in _rows(res, (1, 10))}


def test_scale_reports_both_modes_each_against_the_goal() -> None:
    rows = _by_metric(_scale(_pairs("shared", 10, 1.5, 1.0, 12.0)))
    assert rows[SCALE_METRICS[0]] == (9.0, "MISS")  # forked: 8 + 1 MB a pair
    assert rows[SCALE_METRICS[1]] == (2.5, "PASS")  # shared: 1.5 + 1 MB a pair
    assert rows[SCALE_METRICS[2]] == (12.0, "no goal set")


def test_scale_says_why_the_shared_run_is_missing() -> None:
    rows = _by_metric(_scale(None, "shared run failed at pair 3: boom"))
    assert rows[SCALE_METRICS[1]] == (None, "not measured: shared run failed at pair 3: boom")
    assert rows[SCALE_METRICS[2]][0] is None
    assert rows[SCALE_METRICS[0]][1] == "MISS"  # the forked figure stays


def test_scale_plots_draw_both_modes() -> None:
    memory, setup = _plots(_scale(_pairs("shared", 4, 1.5, 1.0, 12.0)))
    assert [s.label for s in memory.series] == [
        "forked peers (peer host)",
        "shared peers (one process per run)",
    ]
    assert [s.xs for s in setup.series][-1] == (1, 2, 3, 4)
    assert any("shared" in s.label for s in setup.series)
    assert len(_plots(_scale(None))[0].series) == 1


def test_scale_notes_describe_the_shared_run() -> None:
    notes = " ".join(_notes(_scale(_pairs("shared", 10, 1.5, 1.0, 12.0))))
    assert "20 tenants alive in one shared process" in notes
    assert "Shared run's kernel growth" in notes


def test_cost_shared_rows_compare_within_the_shared_run() -> None:
    costs = {"pair": [12.0, 14.0, 30.0], "bare": [5.0, 6.0, 7.0]}
    pair, above = shared_rows(costs, 21.0, "")
    assert (pair.metric, pair.value, pair.verdict) == (COST_METRICS[3], 14.0, "PASS")
    assert "forked peers 21.0 ms (0.67x)" in pair.baseline
    assert (above.metric, above.value, above.verdict) == (COST_METRICS[4], 8.0, "PASS")
    slow = shared_rows({"pair": [40.0], "bare": [5.0]}, 21.0, "")
    assert [r.verdict for r in slow] == ["MISS", "MISS"]


def test_cost_shared_rows_say_why_they_are_missing() -> None:
    rows = shared_rows({}, 21.0, "pytest exited 1: boom")
    assert [r.verdict for r in rows] == ["not measured: pytest exited 1: boom"] * 2
    assert [r.goal for r in rows] == ["<= 20 ms", "<= 15 ms"]


def test_suite_fixture_rows_give_the_share_and_the_fixtures_free_ceiling() -> None:
    from bench.bench_suite import METRICS as SUITE_METRICS
    from bench.bench_suite import Timed, _fixture_rows

    phases = {"setup": 8.0, "call": 30.0, "teardown": 2.0}  # fixtures: 10 of 40 s
    timed: Timed = (20.0, {"passed": 3}, [], phases)
    rows = _fixture_rows({"2-exec": timed}, {"2": "did not finish in 900 s"})
    assert (rows[0].metric, rows[0].value, rows[0].unit) == (SUITE_METRICS[5], 25.0, "%")
    assert "fixtures free: at most 1.33x faster" in rows[0].baseline
    assert "setup 8.0 s + teardown 2.0 s of 40.0 s (call 30.0 s)" in rows[0].baseline
    assert (rows[1].metric, rows[1].verdict) == (
        SUITE_METRICS[6],
        "not measured: did not finish in 900 s",
    )


def test_scale_private_row_takes_each_kinds_median_and_the_spares() -> None:
    res = _scale(None)
    res.forked.peer_private = [
        {"anonymous": 3000, "[heap]": 900, "libpython": 500, "other": 0},
        {"anonymous": 3400, "[heap]": 1000, "libpython": 520, "other": 4},
        {"anonymous": 3200, "[heap]": 950, "libpython": 510, "other": 8},
    ]
    res.forked.spare_private = [{"anonymous": 2048, "[heap]": 0, "libpython": 0, "other": 0}]
    res.forked.host_private = {"anonymous": 3072, "[heap]": 1024}
    row = next(r for r in _rows(res, ()) if r.metric == SCALE_METRICS[3])
    assert row.value == (3200 + 950 + 510 + 8) / 1024  # the median process, in MB
    assert "anonymous 3200, [heap] 950, libpython 510, other 4 (3 processes)" in row.baseline
    assert "idle spares 2.0 MB p50 (1); the host itself 4.0 MB" in row.baseline
    res.forked.peer_private = []
    missing = next(r for r in _rows(res, ()) if r.metric == SCALE_METRICS[3])
    assert missing.value is None


def test_scale_private_tells_the_hosts_spares_from_its_peers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bench.bench_scale as scale

    def peer(pid: int, fork: bool = True) -> Any:
        return SimpleNamespace(fork=fork, proc=SimpleNamespace(pid=pid))

    monkeypatch.setattr(scale, "_children", lambda pid: [11, 12, 13] if pid == 1 else [])
    monkeypatch.setattr(scale, "private_kib", lambda pid: {"anonymous": pid})
    res = PairsRun("forked")
    scale._private(res, [peer(11), peer(12), peer(99, fork=False)], 1)
    assert sorted(f["anonymous"] for f in res.peer_private) == [11, 12]
    assert res.spare_private == [{"anonymous": 13}]  # 13 is the host's, no peer's
    assert res.host_private == {"anonymous": 1}
