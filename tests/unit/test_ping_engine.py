"""rawstack.engines.ping: request building, reply matching, iputils statistics."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawstack.codec import ECHO_REPLY, ECHO_REQUEST, PROTO_ICMP, IcmpEcho, IcmpError, IPv4
from rawstack.codec.icmp import DEST_UNREACH, HOST_UNREACH
from rawstack.engines.ping import (
    TIMEVAL,
    EchoError,
    EchoReply,
    PingSession,
    PingStats,
    format_rtt,
    make_payload,
    rtt_summary_us,
)

DST = "10.0.0.2"
SRC = "10.0.0.1"


def reply_packet(request: bytes, src: str = DST, ttl: int = 63, **changes: int) -> bytes:
    """What a responder sends back for ``request`` (ICMP bytes), as a wire IPv4 packet."""
    echo = IcmpEcho.decode(request)
    fields = {"ident": echo.ident, "seq": echo.seq, **changes}
    reply = IcmpEcho(ECHO_REPLY, fields["ident"], fields["seq"], echo.payload)
    return IPv4(src, SRC, PROTO_ICMP, reply.encode(), ttl=ttl).encode()


def test_request_is_an_echo_request_with_iputils_payload() -> None:
    session = PingSession(DST, ident=0x1234, size=56)
    seq, message = session.next_request(now=5.0, wall=1700000000.25)
    echo = IcmpEcho.decode(message, verify=True)
    assert (echo.type, echo.ident, echo.seq, seq) == (ECHO_REQUEST, 0x1234, 1, 1)
    assert len(echo.payload) == 56
    sec, usec = TIMEVAL.unpack(echo.payload[: TIMEVAL.size])
    assert (sec, usec) == (1700000000, 250000)
    # After the timeval every byte equals its offset in the data, as iputils fills it.
    assert all(b == i for i, b in enumerate(echo.payload) if i >= TIMEVAL.size)


@pytest.mark.parametrize("size", [0, 1, TIMEVAL.size - 1])
def test_small_payload_is_pattern_only(size: int) -> None:
    assert make_payload(size, 1.5) == bytes(range(size))


def test_sequence_numbers_count_from_one() -> None:
    session = PingSession(DST, ident=1)
    assert [session.next_request(float(i), 0.0)[0] for i in range(3)] == [1, 2, 3]
    assert session.transmitted == 3


def test_reply_matched_with_rtt_and_ttl() -> None:
    session = PingSession(DST, ident=7)
    _, req = session.next_request(now=10.0, wall=0.0)
    event = session.feed_ip(reply_packet(req), now=10.000123)
    assert event == EchoReply(seq=1, src=DST, size=64, ttl=63, rtt_us=123, duplicate=False)
    assert event.line() == "64 bytes from 10.0.0.2: icmp_seq=1 ttl=63 time=0.123 ms"
    assert session.received == 1
    assert session.outstanding() == []


@pytest.mark.parametrize(
    ("src", "changes"),
    [
        ("10.0.0.3", {}),  # right id and seq, wrong source
        (DST, {"ident": 8}),  # another ping's id
        (DST, {"seq": 2}),  # a sequence we never sent
    ],
)
def test_reply_must_match_id_seq_and_source(src: str, changes: dict[str, int]) -> None:
    session = PingSession(DST, ident=7)
    _, req = session.next_request(now=0.0, wall=0.0)
    assert session.feed_ip(reply_packet(req, src=src, **changes), now=0.001) is None
    assert session.received == 0


def test_echo_request_and_other_protocols_are_not_replies() -> None:
    session = PingSession(DST, ident=7)
    _, req = session.next_request(now=0.0, wall=0.0)
    as_request = IPv4(DST, SRC, PROTO_ICMP, req).encode()
    not_icmp = IPv4(DST, SRC, 17, b"\x00" * 8).encode()
    for packet in (as_request, not_icmp, b"", b"\x45" * 19, b"garbage"):
        assert session.feed_ip(packet, now=0.001) is None


def test_duplicate_reply_counted_once_and_marked() -> None:
    session = PingSession(DST, ident=7)
    _, req = session.next_request(now=0.0, wall=0.0)
    first = session.feed_ip(reply_packet(req), now=0.001)
    second = session.feed_ip(reply_packet(req), now=0.002)
    assert isinstance(first, EchoReply)
    assert not first.duplicate
    assert isinstance(second, EchoReply)
    assert second.duplicate
    assert second.line().endswith(" (DUP!)")
    stats = session.stats()
    assert (stats.received, stats.duplicates) == (1, 1)
    assert "+1 duplicates" in stats.summary()[1]


def test_icmp_error_quoting_our_request_is_an_error_event() -> None:
    session = PingSession(DST, ident=7)
    _, req = session.next_request(now=0.0, wall=0.0)
    original = IPv4(SRC, DST, PROTO_ICMP, req).encode()
    error = IcmpError(DEST_UNREACH, HOST_UNREACH, original[:28])
    packet = IPv4(SRC, SRC, PROTO_ICMP, error.encode()).encode()
    event = session.feed_ip(packet, now=3.0)
    assert event == EchoError(seq=1, src=SRC, type=DEST_UNREACH, code=HOST_UNREACH)
    assert event.line() == "From 10.0.0.1 icmp_seq=1 Destination Host Unreachable"
    assert session.errors == 1
    # An error about somebody else's echo is not ours.
    other = IcmpEcho(ECHO_REQUEST, 99, 1, b"").encode()
    foreign = IcmpError(DEST_UNREACH, HOST_UNREACH, IPv4(SRC, DST, PROTO_ICMP, other).encode())
    assert session.feed_ip(IPv4(SRC, SRC, PROTO_ICMP, foreign.encode()).encode(), 3.0) is None


def test_a_run_is_finished_once_every_request_got_a_reply_or_an_error() -> None:
    def error_for(request: bytes) -> bytes:
        original = IPv4(SRC, DST, PROTO_ICMP, request).encode()
        error = IcmpError(DEST_UNREACH, HOST_UNREACH, original[:28])
        return IPv4(SRC, SRC, PROTO_ICMP, error.encode()).encode()

    session = PingSession(DST, ident=7)
    first, second = (session.next_request(now=float(i), wall=0.0)[1] for i in range(2))
    session.feed_ip(error_for(first), now=2.0)
    session.feed_ip(reply_packet(second), now=2.1)
    assert not session.finished(3)  # both answered, but a third is still to be sent
    _, third = session.next_request(now=2.0, wall=0.0)
    session.feed_ip(reply_packet(second), now=2.2)  # a duplicate answers nothing new
    assert not session.finished(3)
    session.feed_ip(error_for(third), now=3.0)
    assert session.finished(3)  # one reply and two errors: no -W wait for the errored two


def test_dgram_socket_path_feeds_icmp_alone() -> None:
    session = PingSession(DST, ident=40000)
    _, req = session.next_request(now=1.0, wall=0.0)
    reply = IcmpEcho(ECHO_REPLY, 40000, 1, IcmpEcho.decode(req).payload).encode()
    event = session.feed_icmp(reply, DST, None, now=1.5)
    assert isinstance(event, EchoReply)
    assert event.rtt_us == 500000
    assert event.ttl is None
    assert "ttl=" not in event.line()


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (0, "0.000"),
        (45, "0.045"),
        (999, "0.999"),
        (1000, "1.00"),
        (1234, "1.23"),
        (9994, "9.99"),
        (9995, "10.0"),
        (12345, "12.3"),
        (99949, "99.9"),
        (99950, "100"),
        (123456, "123"),
    ],
)
def test_time_field_narrows_like_iputils(us: int, text: str) -> None:
    assert format_rtt(us) == text


def test_summary_lines_exact() -> None:
    stats = PingStats(DST, 3, 2, 0, 0, 2003, (1000, 3000))
    # mean 2000 us, mean of squares 5e6 us^2, variance 1e6 -> mdev 1000 us
    assert stats.summary() == [
        "--- 10.0.0.2 ping statistics ---",
        "3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms",
        "rtt min/avg/max/mdev = 1.000/2.000/3.000/1.000 ms",
    ]


def test_summary_without_replies_has_no_rtt_line() -> None:
    stats = PingStats(DST, 2, 0, 0, 2, 1005, ())
    assert stats.summary()[1:] == [
        "2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1005ms"
    ]


def test_mdev_uses_integer_microseconds() -> None:
    # sum 6000, sum of squares 14e6: (14e6 - 36e6 // 3) // 3 = 666666 -> isqrt 816
    assert rtt_summary_us([1000, 2000, 3000]) == (1000, 2000, 3000, 816)


@given(st.lists(st.integers(min_value=0, max_value=5_000_000), min_size=1, max_size=50))
def test_mdev_is_population_std_dev(rtts: list[int]) -> None:
    mn, avg, mx, mdev = rtt_summary_us(rtts)
    mean = sum(rtts) / len(rtts)
    exact = math.sqrt(max(0.0, sum(r * r for r in rtts) / len(rtts) - mean * mean))
    assert (mn, mx) == (min(rtts), max(rtts))
    assert avg == sum(rtts) // len(rtts)
    assert abs(mdev - exact) <= 1.0 + exact * 1e-9


def test_loss_percent_is_printed_like_c_float_g() -> None:
    # iputils: printf("%g", (float)(lost * 100.0 / sent)); 1 of 7 lost -> 14.2857
    stats = PingStats(DST, 7, 6, 0, 0, 0, (1,) * 6)
    assert f"{stats.loss_percent:g}" == "14.2857"
    assert stats.loss_percent == struct.unpack("f", struct.pack("f", 100 / 7))[0]


def test_elapsed_time_runs_from_first_to_last_send_rounded_to_ms() -> None:
    session = PingSession(DST, ident=1)
    _, req = session.next_request(now=100.0, wall=0.0)
    assert session.stats().elapsed_ms == 0  # one request: iputils says "time 0ms"
    session.next_request(now=101.0015, wall=0.0)
    assert session.stats().elapsed_ms == 1002
    # Neither a late reply nor the wait after the last request moves it (iputils' cur_time
    # only moves when pinger() sends).
    session.feed_ip(reply_packet(req), now=103.5)
    assert session.stats().elapsed_ms == 1002


def test_elapsed_time_rounds_from_nanoseconds_like_iputils() -> None:
    # 1000 * tv_sec + (tv_nsec + 500000) / 1000000: 0.5 ms rounds up, 0.4999 ms down.
    for gap, ms in ((0.0005, 1), (0.0004999, 0), (2.0014996, 2001), (2.0015, 2002)):
        session = PingSession(DST, ident=1)
        session.next_request(now=10.0, wall=0.0)
        session.next_request(now=10.0 + gap, wall=0.0)
        assert session.stats().elapsed_ms == ms, gap


@pytest.mark.parametrize("size", [0, 8, TIMEVAL.size - 1])
def test_data_shorter_than_a_timeval_is_not_timed(size: int) -> None:
    session = PingSession(DST, ident=7, size=size)
    assert not session.timing
    _, req = session.next_request(now=10.0, wall=0.0)
    event = session.feed_ip(reply_packet(req), now=10.000123)
    assert isinstance(event, EchoReply)
    assert event.rtt_us is None
    # iputils: "8+N bytes from ...: icmp_seq=1 ttl=63", no time=, and no rtt line.
    assert event.line() == f"{8 + size} bytes from 10.0.0.2: icmp_seq=1 ttl=63"
    summary = session.stats().summary()
    assert len(summary) == 2
    assert summary[1].startswith("1 packets transmitted, 1 received, 0% packet loss")


def test_a_timeval_of_data_is_timed() -> None:
    session = PingSession(DST, ident=7, size=TIMEVAL.size)
    _, req = session.next_request(now=10.0, wall=0.0)
    event = session.feed_ip(reply_packet(req), now=10.000123)
    assert isinstance(event, EchoReply)
    assert event.line().endswith(" time=0.123 ms")
    assert session.stats().summary()[2].startswith("rtt min/avg/max/mdev = 0.123/")


def test_largest_size_is_what_one_datagram_holds() -> None:
    # 65535 - 20 (IP header) - 8 (ICMP header): iputils sends -s 65507, so must we.
    session = PingSession(DST, ident=7, size=65507)
    _, req = session.next_request(now=0.0, wall=0.0)
    assert len(req) == 65515
    assert len(IPv4(SRC, DST, PROTO_ICMP, req).encode()) == 65535
    with pytest.raises(ValueError, match=r"0\.\.65507"):
        PingSession(DST, ident=7, size=65508)


@pytest.mark.parametrize(("ident", "size"), [(-1, 56), (65536, 56), (1, -1), (1, 70000)])
def test_bad_parameters_are_value_errors(ident: int, size: int) -> None:
    with pytest.raises(ValueError, match="must be"):
        PingSession(DST, ident=ident, size=size)


@given(st.binary(max_size=120))
def test_random_bytes_are_ignored_not_raised(data: bytes) -> None:
    session = PingSession(DST, ident=7)
    session.next_request(now=0.0, wall=0.0)
    # Random bytes cannot carry our 56-byte payload, so nothing can match.
    assert session.feed_ip(data, now=1.0) is None
    assert session.feed_icmp(data, DST, 64, now=1.0) is None
    assert (session.received, session.duplicates) == (0, 0)
