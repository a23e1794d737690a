"""The UDP client's probe matching and statistics, without sockets."""

from __future__ import annotations

import pytest

from rawstack.errors import UsageError
from rawstack.peers.udp import MAX_DATAGRAM, ProbeTracker, UdpReply, UdpResult, percentile


def test_replies_are_matched_by_sequence_in_any_order() -> None:
    t = ProbeTracker(b"hi", None, timeout=1.0, session=7)
    p0, p1 = t.payload(0, 10.0), t.payload(1, 10.5)
    r1, r0 = t.receive(p1, 10.6), t.receive(p0, 10.7)
    assert r1 is not None
    assert r0 is not None
    assert (r1.seq, r1.size, r0.seq, r0.size) == (1, len(p1), 0, len(p0))
    assert r1.rtt_ms == pytest.approx(100.0)
    assert r0.rtt_ms == pytest.approx(700.0)
    assert t.duplicates == 0
    assert not t.outstanding(10.7)


def test_a_late_reply_is_not_counted_for_a_later_probe() -> None:
    t = ProbeTracker(b"m", None, timeout=0.5, session=1)
    p0 = t.payload(0, 0.0)
    t.payload(1, 1.0)
    assert t.receive(p0, 1.1) is None  # probe 0's answer after its deadline
    assert t.late == 1
    assert t.replies == []
    assert t.outstanding(1.1)  # probe 1 still waits for its own answer


def test_duplicates_other_sessions_and_garbage_are_not_replies() -> None:
    t = ProbeTracker(b"m", None, timeout=1.0, session=1)
    p0 = t.payload(0, 0.0)
    assert t.receive(p0, 0.1) is not None
    assert t.receive(p0, 0.2) is None
    other = ProbeTracker(b"m", None, timeout=1.0, session=2).payload(0, 0.0)
    for junk in (other, b"", b"rsu:", b"rsu:00000001:xx:", p0[:-1] + b"X", b"\xff" * 40):
        assert t.receive(junk, 0.3) is None
    assert (t.duplicates, t.mismatched, len(t.replies)) == (1, 6, 1)


@pytest.mark.parametrize("size", [28, 100, MAX_DATAGRAM])
def test_size_pads_or_cuts_the_datagram(size: int) -> None:
    t = ProbeTracker(b"x" * 200, size, timeout=1.0, session=3)
    payload = t.payload(5, 0.0)
    assert len(payload) == size
    assert payload.startswith(b"rsu:00000003:0000000005:")
    assert t.receive(payload, 0.001) is not None


@pytest.mark.parametrize("size", [MAX_DATAGRAM + 1, 10])
def test_impossible_sizes_are_usage_errors(size: int) -> None:
    with pytest.raises(UsageError):
        ProbeTracker(b"m", size, timeout=1.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) is None


def test_result_statistics() -> None:
    replies = tuple(UdpReply(i, rtt, 10) for i, rtt in enumerate([4.0, 1.0, 2.0]))
    result = UdpResult("127.0.0.1:9", sent=4, replies=replies, late=1)
    assert (result.received, result.lost, result.loss_pct) == (3, 1, 25.0)
    assert (result.min_ms, result.max_ms, result.p50_ms) == (1.0, 4.0, 2.0)
    assert result.avg_ms == pytest.approx(7 / 3)
    doc = result.to_json()
    assert doc["rtt_ms"]["p99"] == 4.0
    assert doc["lost"] == 1
    empty = UdpResult("x", sent=2, replies=())
    assert empty.to_json()["rtt_ms"] == {
        "min": None,
        "avg": None,
        "max": None,
        "p50": None,
        "p99": None,
    }
