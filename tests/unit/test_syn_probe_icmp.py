"""syn-probe's reading of ICMP unreachable answers, on errors scapy (an independent encoder)
builds around our SYN."""

from __future__ import annotations

from typing import Any

import pytest

from rawstack.codec import PROTO_TCP, IPv4, Tcp
from rawstack.codec.tcp import SYN
from rawstack.peers.syn_probe import FILTERED, UNREACH_REASONS, Probe, classify_icmp

scapy = pytest.importorskip("scapy.all", reason="scapy is not installed")
SRC, DST, ROUTER = "10.0.0.1", "10.9.9.9", "10.0.0.2"
SPORT, DPORT, ISN = 40000, 8090, 0x12345678


def our_syn() -> bytes:
    seg = Tcp(SPORT, DPORT, ISN, flags=SYN).encode(SRC, DST)
    return IPv4(SRC, DST, PROTO_TCP, seg, ident=9, df=True).encode()


def unreachable(code: int, quoted: bytes, **ip: Any) -> bytes:
    fields = {"src": ROUTER, "dst": SRC, **ip}
    return bytes(scapy.IP(**fields) / scapy.ICMP(type=3, code=code) / scapy.Raw(quoted))


def check(packet: bytes) -> tuple[str, str] | None:
    return classify_icmp(packet, src=SRC, dst=DST, sport=SPORT, dport=DPORT, isn=ISN)


@pytest.mark.parametrize(("code", "reason"), sorted(UNREACH_REASONS.items()))
def test_each_unreachable_code_is_named_as_nmap_names_it(code: int, reason: str) -> None:
    # Linux quotes the whole SYN; RFC 792 promises only the header and 8 bytes.
    assert check(unreachable(code, our_syn())) == (reason, ROUTER)
    assert check(unreachable(code, our_syn()[:28])) == (reason, ROUTER)


def test_the_nmap_names() -> None:
    assert UNREACH_REASONS[13] == "admin-prohibited"
    assert UNREACH_REASONS[1] == "host-unreach"


@pytest.mark.parametrize(
    "packet",
    [
        unreachable(4, our_syn()),  # fragmentation needed: not a verdict on the port
        unreachable(13, our_syn()[:27]),  # fewer than 8 TCP bytes quoted
        unreachable(13, our_syn(), dst="10.0.0.7"),  # not addressed to us
        bytes(scapy.IP(src=ROUTER, dst=SRC) / scapy.ICMP(type=11) / scapy.Raw(our_syn())),
    ],
)
def test_what_is_not_an_answer_to_our_syn(packet: bytes) -> None:
    assert check(packet) is None


def test_another_probe_s_syn_is_not_ours() -> None:
    other = Tcp(SPORT, DPORT, ISN + 1, flags=SYN).encode(SRC, DST)
    quoted = IPv4(SRC, DST, PROTO_TCP, other).encode()
    assert check(unreachable(13, quoted)) is None
    elsewhere = IPv4(SRC, "10.9.9.8", PROTO_TCP, Tcp(SPORT, DPORT, ISN, flags=SYN).encode(
        SRC, "10.9.9.8")).encode()  # fmt: skip
    assert check(unreachable(13, elsewhere)) is None


def test_the_line_names_reason_sender_and_time() -> None:
    probe = Probe(FILTERED, 0.000123, None, "admin-prohibited", ROUTER)
    assert probe.line(DST, DPORT, 5.0) == (
        f"{DST}:{DPORT} filtered (ICMP admin-prohibited from {ROUTER} in 0.123 ms)"
    )
