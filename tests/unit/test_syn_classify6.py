"""rawstack.peers.syn_probe.classify6: which segments read on a raw IPv6 TCP socket answer
our SYN (the segment arrives without its IPv6 header, RFC 3542 section 3)."""

from __future__ import annotations

import pytest

from rawstack.codec.tcp import ACK, RST, SYN, Tcp
from rawstack.peers.syn_probe import Probe, classify6, classify_icmp6
from rawstack.sockets.raw6 import Received6

US, THEM, ISN = "fd00::1", "fd00::2", 0x01020304
IDS = {"src": US, "dst": THEM, "sport": 40000, "dport": 80, "isn": ISN}


def segment(flags: int, ack: int = ISN + 1, sport: int = 80, dport: int = 40000) -> bytes:
    return Tcp(sport, dport, 777, ack=ack, flags=flags).encode(THEM, US)


def got(data: bytes, src: str = THEM, dst: str | None = US) -> Received6:
    return Received6(data, src, dst, 64, 2, None)


def test_syn_ack_and_rst_answer_our_syn() -> None:
    answer = classify6(got(segment(SYN | ACK)), **IDS)  # type: ignore[arg-type]
    assert answer is not None
    assert answer.flags == SYN | ACK
    rst = classify6(got(segment(RST | ACK)), **IDS)  # type: ignore[arg-type]
    assert rst is not None
    assert rst.flags & RST


@pytest.mark.parametrize(
    "received",
    [
        got(segment(SYN | ACK), src="fd00::3"),  # another host
        got(segment(SYN | ACK), dst="fd00::9"),  # to another of our addresses
        got(segment(SYN | ACK, ack=ISN + 2)),  # acknowledges something else
        got(segment(SYN | ACK, sport=81)),
        got(segment(SYN | ACK, dport=40001)),
        got(segment(RST)),  # a RST without our ACK (RFC 9293 3.10.7.1)
        got(b"\x00\x50"),  # not a segment
    ],
)
def test_everything_else_is_ignored(received: Received6) -> None:
    assert classify6(received, **IDS) is None  # type: ignore[arg-type]


def test_no_pktinfo_still_matches_by_source() -> None:
    assert classify6(got(segment(SYN | ACK), dst=None), **IDS) is not None  # type: ignore[arg-type]


def test_ipv6_lines_bracket_the_address() -> None:
    assert Probe("closed", 0.0015).line(THEM, 80, 1) == "[fd00::2]:80 closed (RST in 1.500 ms)"
    assert (
        Probe("filtered").line("10.0.0.2", 80, 0.5) == "10.0.0.2:80 filtered (no answer in 0.5 s)"
    )


def _unreach(code: int, quoted_dst: str = THEM, sport: int = 40000, isn: int = ISN) -> bytes:
    from rawstack.codec import Icmp6Error, IPv6

    syn = Tcp(sport, 80, isn).encode(US, quoted_dst)
    return Icmp6Error(1, code, IPv6(US, quoted_dst, 6, syn).encode(), checksum=0).encode()


def test_icmpv6_unreachables_about_our_syn_name_nmaps_reason() -> None:
    router = "fd00:1::1"
    found = classify_icmp6(got(_unreach(1), src=router), **IDS)  # type: ignore[arg-type]
    assert found == ("admin-prohibited", router)
    assert classify_icmp6(got(_unreach(4), src=router), **IDS) == ("port-unreach", router)  # type: ignore[arg-type]
    for other in (_unreach(1, quoted_dst="fd00::9"), _unreach(1, sport=1), _unreach(1, isn=5),
                  _unreach(9)):  # fmt: skip
        assert classify_icmp6(got(other, src=router), **IDS) is None  # type: ignore[arg-type]
