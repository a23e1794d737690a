"""bench.stats: nearest-rank percentiles and summaries."""

from __future__ import annotations

import random

import pytest

from bench.stats import Summary, percentile, rate, ratio


def test_percentile_nearest_rank_of_1_to_100() -> None:
    samples = [float(x) for x in range(1, 101)]
    random.Random(7).shuffle(samples)
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0  # exact rank: 0.99 * 100 is not rounded up to 100
    assert percentile(samples, 100) == 100.0
    assert percentile(samples, 0.5) == 1.0


@pytest.mark.parametrize(
    ("samples", "p", "expected"),
    [
        ([5.0], 50, 5.0),
        ([5.0], 99, 5.0),
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),  # ceil(0.5 * 4) = rank 2, no interpolation
        ([1.0, 2.0, 3.0, 4.0], 51, 3.0),
        ([float(x) for x in range(10)], 99, 9.0),  # fewer than 100 samples: p99 is the max
    ],
)
def test_percentile_vectors(samples: list[float], p: float, expected: float) -> None:
    assert percentile(samples, p) == expected


@pytest.mark.parametrize("p", [0, -1, 100.5])
def test_percentile_rejects_out_of_range(p: float) -> None:
    with pytest.raises(ValueError, match="percentile"):
        percentile([1.0], p)


def test_percentile_of_nothing() -> None:
    with pytest.raises(ValueError, match="no samples"):
        percentile([], 50)


def test_summary_and_scaling() -> None:
    s = Summary.of([0.004, 0.001, 0.002, 0.003])
    assert (s.n, s.min, s.p50, s.p99, s.max) == (4, 0.001, 0.002, 0.004, 0.004)
    assert s.mean == pytest.approx(0.0025)
    ms = s.scaled(1000)
    assert [ms.p50, ms.max, ms.mean] == pytest.approx([2.0, 4.0, 2.5])
    with pytest.raises(ValueError, match="no samples"):
        Summary.of([])


def test_rate_and_ratio() -> None:
    assert rate(500, 2.0) == 250.0
    assert ratio(3.0, 2.0) == 1.5
    with pytest.raises(ValueError, match="non-positive"):
        rate(1, 0.0)
    with pytest.raises(ValueError, match="zero baseline"):
        ratio(1.0, 0.0)
