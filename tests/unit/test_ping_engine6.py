"""rawstack.engines.ping over IPv6: ICMPv6 requests, reply matching, iputils ping -6 lines."""

from __future__ import annotations

import pytest

from rawstack.codec import DecodeError, Icmp6Echo, Icmp6Error, IPv6, Udp, decode_icmp6
from rawstack.codec.icmp6 import ECHO_REPLY6, ECHO_REQUEST6
from rawstack.codec.ipv6 import PROTO_ICMPV6
from rawstack.engines.ping import MAX_SIZE6, EchoError, EchoReply, PingSession

DST, SRC, ROUTER = "fd00::2", "fd00::1", "fd00:1::1"


def session(**kw: object) -> PingSession:
    return PingSession(DST, 0x1234, ipv6=True, src=SRC, **kw)  # type: ignore[arg-type]


def reply_to(request: bytes, **changes: object) -> bytes:
    echo = Icmp6Echo.decode(request)
    fields: dict[str, object] = {"ident": echo.ident, "seq": echo.seq, "payload": echo.payload}
    fields.update(changes)
    return Icmp6Echo(ECHO_REPLY6, checksum=0, **fields).encode()  # type: ignore[arg-type]


def test_header_line_is_iputils_ping6s() -> None:
    assert session().header_line() == "PING fd00::2(fd00::2) 56 data bytes"
    assert session(size=8).header_line("host6") == "PING host6(fd00::2) 8 data bytes"


def test_request_checksum_covers_the_pseudo_header_or_is_left_to_the_kernel() -> None:
    _, message = session().next_request(1.0, 1700000000.5)
    echo = decode_icmp6(message, SRC, DST)  # verifies against the pseudo-header
    assert isinstance(echo, Icmp6Echo)
    assert (echo.type, echo.ident, echo.seq, len(echo.payload)) == (ECHO_REQUEST6, 0x1234, 1, 56)
    _, kernel = PingSession(DST, 7, ipv6=True).next_request(1.0, 1.0)
    assert kernel[2:4] == b"\x00\x00"  # RFC 3542 3.1: the kernel fills it
    with pytest.raises(DecodeError):
        decode_icmp6(kernel, SRC, DST)


def test_a_reply_matches_by_id_source_and_data() -> None:
    s = session()
    seq, request = s.next_request(1.0, 1700000000.0)
    s.mark_sent(seq, 1_700_000_000_000_000_000)
    assert s.feed_icmp(reply_to(request), "fd00::77", 64, 1.1) is None  # another source
    assert s.feed_icmp(reply_to(request, ident=1), DST, 64, 1.1) is None
    assert s.feed_icmp(reply_to(request, payload=b"x" * 56), DST, 64, 1.1) is None
    assert s.feed_icmp(request, DST, 64, 1.1) is None  # our own request, not a reply
    got = s.feed_icmp(reply_to(request), DST, 64, 1.1, rx_ns=1_700_000_000_000_250_000)
    assert got == EchoReply(seq, DST, 64, 64, 250, False)
    assert got.line() == "64 bytes from fd00::2: icmp_seq=1 ttl=64 time=0.250 ms"
    dup = s.feed_icmp(reply_to(request), DST, 64, 1.2)
    assert isinstance(dup, EchoReply)
    assert dup.duplicate
    assert (s.received, s.duplicates) == (1, 1)


def _error(kind: int, code: int, rest: int, request: bytes) -> bytes:
    quoted = IPv6(SRC, DST, PROTO_ICMPV6, request, hop_limit=1).encode()
    return Icmp6Error(kind, code, quoted, rest, checksum=0).encode()


@pytest.mark.parametrize(
    ("kind", "code", "rest", "text"),
    [
        (1, 0, 0, "Destination unreachable: No route"),
        (1, 3, 0, "Destination unreachable: Address unreachable"),
        (1, 4, 0, "Destination unreachable: Port unreachable"),
        (1, 9, 0, "Destination unreachable: Unknown code 9"),
        (2, 0, 1280, "Packet too big: mtu=1280"),
        (3, 0, 0, "Time exceeded: Hop limit"),
        (3, 1, 0, "Time exceeded: Defragmentation failure"),
        (4, 1, 40, "Parameter problem: Unknown header at 40"),
        (4, 0, 6, "Parameter problem: Wrong header field at 6"),
    ],
)
def test_errors_quoting_our_request_print_as_iputils(
    kind: int, code: int, rest: int, text: str
) -> None:
    s = session()
    seq, request = s.next_request(1.0, 1.0)
    event = s.feed_icmp(_error(kind, code, rest, request), ROUTER, 64, 1.1)
    assert isinstance(event, EchoError)
    assert event.line() == f"From {ROUTER} icmp_seq={seq} {text}"
    assert s.errors == 1


def test_errors_about_other_packets_are_ignored() -> None:
    s = session()
    _, request = s.next_request(1.0, 1.0)
    other = Icmp6Echo(ECHO_REQUEST6, 0x9999, 1, checksum=0).encode()
    udp = IPv6(SRC, DST, 17, Udp(1, 2).encode(SRC, DST)).encode()
    for message in (
        _error(3, 0, 0, other),
        _error(3, 0, 0, reply_to(request)),  # our id and seq, but not a request
        Icmp6Error(1, 4, udp, checksum=0).encode(),
        Icmp6Error(3, 0, b"\x60garbage", checksum=0).encode(),
    ):
        assert s.feed_icmp(message, ROUTER, 64, 1.1) is None
    assert s.errors == 0


def test_sizes_are_bounded_by_the_ipv6_payload_length() -> None:
    assert PingSession(DST, 1, MAX_SIZE6, ipv6=True).size == 65527
    with pytest.raises(ValueError, match=r"0\.\.65527"):
        PingSession(DST, 1, MAX_SIZE6 + 1, ipv6=True)


def test_overlapping_replies_add_iputils_pipe() -> None:
    s = session()
    first = s.next_request(1.0, 1.0)[1]
    second = s.next_request(1.1, 1.1)[1]
    s.feed_icmp(reply_to(second), DST, 64, 1.15)  # the newest: one in flight
    assert s.stats().summary()[-1].endswith(" ms")
    s.feed_icmp(reply_to(first), DST, 64, 1.2)  # came back after the next was sent
    assert s.stats().pipe == 2
    assert s.stats().summary()[-1].endswith(" ms, pipe 2")
    untimed = PingSession(DST, 1, size=8, ipv6=True)
    a = untimed.next_request(1.0, 1.0)[1]
    untimed.next_request(1.1, 1.1)
    untimed.feed_icmp(reply_to(a), DST, 64, 1.2)
    assert untimed.stats().summary()[-1] == ", pipe 2"  # no rtt line to follow
