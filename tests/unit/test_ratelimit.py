"""The log rate limiter: a burst, then ``rate`` lines a second, with the suppressed count."""

from __future__ import annotations

import pytest

from rawstack.peers.ratelimit import LimitedLog, RateLimiter, suppressed_note


def test_burst_passes_then_events_are_suppressed_and_counted() -> None:
    limiter = RateLimiter(rate=1.0, burst=3)
    assert [limiter.allow(0.0) for _ in range(3)] == [0, 0, 0]
    assert [limiter.allow(0.0) for _ in range(5)] == [None] * 5
    assert limiter.suppressed == 5
    # One token back after a second: the event passes and carries the count.
    assert limiter.allow(1.0) == 5
    assert limiter.suppressed == 0
    assert limiter.total_suppressed == 5


def test_refill_is_capped_at_the_burst() -> None:
    limiter = RateLimiter(rate=10.0, burst=2)
    assert limiter.allow(0.0) == 0
    # An hour of silence refills two tokens, not 36000.
    allowed = [limiter.allow(3600.0) for _ in range(4)]
    assert allowed == [0, 0, None, None]


def test_steady_flood_is_held_to_the_rate() -> None:
    limiter = RateLimiter(rate=10.0, burst=20)
    passed = sum(limiter.allow(i / 1000) is not None for i in range(10_000))  # 10 s at 1 kHz
    # 20 at once, then 10 a second for ~10 s.
    assert 115 <= passed <= 121
    assert limiter.total_suppressed == 10_000 - passed


def test_a_clock_going_back_never_adds_tokens() -> None:
    limiter = RateLimiter(rate=1.0, burst=1)
    assert limiter.allow(100.0) == 0
    assert limiter.allow(50.0) is None
    assert limiter.allow(100.5) is None
    assert limiter.allow(101.0) == 2


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (float("nan"), 1), (1.0, 0)])
def test_bad_parameters_are_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match=r"rate|burst"):
        RateLimiter(rate=rate, burst=burst)


def test_limited_log_writes_the_count_on_the_next_line_and_on_flush() -> None:
    lines: list[tuple[str, str]] = []
    now = [0.0]
    out = LimitedLog(
        "icmp", RateLimiter(rate=1.0, burst=2), lambda p, m: lines.append((p, m)), lambda: now[0]
    )
    assert [out(f"dropped {i}") for i in range(5)] == [True, True, False, False, False]
    now[0] = 1.0
    assert out("dropped 5")
    assert out("dropped 6") is False
    out.flush()
    out.flush()  # nothing left to report the second time
    assert lines == [
        ("icmp", "dropped 0"),
        ("icmp", "dropped 1"),
        ("icmp", "dropped 5 (3 similar lines suppressed)"),
        ("icmp", "1 similar line suppressed"),
    ]


def test_suppressed_note() -> None:
    assert suppressed_note(0) == ""
    assert suppressed_note(1) == " (1 similar line suppressed)"
    assert suppressed_note(2) == " (2 similar lines suppressed)"
