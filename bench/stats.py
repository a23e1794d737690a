"""Summary statistics for latency and timing samples.

Percentiles use the nearest-rank method (the same one ``rawstack udp send`` reports): the
p-th percentile of n sorted samples is the sample at rank ceil(p/100 * n), counting from 1.
It is always a value that was really measured (no interpolation), so p99 of fewer than 100
samples is the maximum. The rank is computed with exact fractions so that, e.g., p99 of 100
samples is rank 99, not 100 through a floating-point rounding.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


def percentile(samples: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100) of a non-empty sample."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100]: {p}")
    ordered = sorted(samples)
    rank = math.ceil(Fraction(str(p)) * len(ordered) / 100)
    return ordered[max(rank, 1) - 1]


@dataclass(frozen=True)
class Summary:
    """n, min, p50, p99, max and mean of one sample."""

    n: int
    min: float
    p50: float
    p99: float
    max: float
    mean: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        if not samples:
            raise ValueError("summary of no samples")
        return cls(
            n=len(samples),
            min=min(samples),
            p50=percentile(samples, 50),
            p99=percentile(samples, 99),
            max=max(samples),
            mean=statistics.fmean(samples),
        )

    def scaled(self, factor: float) -> Summary:
        """The same summary in another unit (e.g. seconds to milliseconds)."""
        return Summary(
            self.n,
            self.min * factor,
            self.p50 * factor,
            self.p99 * factor,
            self.max * factor,
            self.mean * factor,
        )


def rate(count: int, seconds: float) -> float:
    """Events per second; ``seconds`` must be positive."""
    if seconds <= 0:
        raise ValueError(f"rate over a non-positive duration: {seconds}")
    return count / seconds


def ratio(value: float, base: float) -> float:
    """``value / base``; a zero baseline has no meaningful ratio."""
    if base == 0:
        raise ValueError("ratio against a zero baseline")
    return value / base
