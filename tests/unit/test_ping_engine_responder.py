"""The pure parts of the ICMP responder and the raw socket layer (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rawstack.codec import ECHO_REPLY, ECHO_REQUEST, PROTO_ICMP, DecodeError, IcmpEcho, IPv4
from rawstack.codec.ipv4_options import OPT_LSRR, OPT_RR, OPT_TS, TS_ADDR
from rawstack.errors import UsageError
from rawstack.peers.icmp import build_reply, kernel_answers_echo, ms_since_midnight_ut
from rawstack.sockets.raw import PacketInfo, icmp_filter_mask, resolve_ipv4


def echo_request(src: str = "10.0.0.1", dst: str = "10.0.0.2", **ip: object) -> bytes:
    icmp = IcmpEcho(ECHO_REQUEST, 0x4242, 7, b"payload").encode()
    return IPv4(src, dst, PROTO_ICMP, icmp, tos=0x10, ttl=5, **ip).encode()  # type: ignore[arg-type]


def test_reply_swaps_addresses_and_keeps_id_seq_payload() -> None:
    built = build_reply(echo_request(), ident=99)
    packet, dst = built.packet, built.dst
    assert packet is not None
    ip = IPv4.decode(packet, verify=True)
    assert (ip.src, ip.dst, dst, ip.proto, ip.ttl, ip.tos, ip.ident) == (
        "10.0.0.2", "10.0.0.1", "10.0.0.1", PROTO_ICMP, 64, 0x10, 99,
    )  # fmt: skip
    echo = IcmpEcho.decode(ip.payload, verify=True)
    assert (echo.type, echo.ident, echo.seq, echo.payload) == (ECHO_REPLY, 0x4242, 7, b"payload")


def test_reply_matches_scapy() -> None:
    inet = pytest.importorskip("scapy.layers.inet")
    built = build_reply(echo_request(), ident=99).packet
    assert built is not None
    oracle = inet.IP(built)
    assert oracle[inet.ICMP].type == 0
    # scapy recomputes both checksums when they are deleted; ours must equal them.
    recomputed = oracle.copy()
    del recomputed.chksum
    del recomputed[inet.ICMP].chksum
    assert bytes(recomputed) == built


@pytest.mark.parametrize(
    "packet",
    [
        IPv4("10.0.0.1", "10.0.0.2", 17, b"\x00" * 8).encode(),  # UDP
        IPv4("10.0.0.1", "10.0.0.2", PROTO_ICMP, IcmpEcho(ECHO_REPLY, 1, 1).encode()).encode(),
        echo_request(dst="255.255.255.255"),
        echo_request(dst="224.0.0.1"),
        echo_request(src="0.0.0.0"),
        echo_request(mf=True),
    ],
)
def test_not_answered(packet: bytes) -> None:
    assert build_reply(packet, ident=1, ignore_broadcasts=lambda: True).packet is None


def test_group_destination_follows_the_sysctl_and_answers_from_our_address() -> None:
    # A directed broadcast: the header says 10.0.0.255, IP_PKTINFO says our address there.
    request = echo_request(dst="10.0.0.255")
    info = PacketInfo(ifindex=2, spec_dst="10.0.0.2", dst="10.0.0.255")
    ignored = build_reply(request, 1, info=info, ignore_broadcasts=lambda: True)
    assert ignored.packet is None
    assert ignored.reason is not None
    assert "icmp_echo_ignore_broadcasts is 1" in ignored.reason
    answered = build_reply(request, 1, info=info, ignore_broadcasts=lambda: False)
    assert answered.packet is not None
    reply = IPv4.decode(answered.packet)
    assert (reply.src, reply.dst, answered.dst) == ("10.0.0.2", "10.0.0.1", "10.0.0.1")
    # A unicast request never asks the sysctl.
    unicast = PacketInfo(ifindex=2, spec_dst="10.0.0.2", dst="10.0.0.2")
    asked: list[bool] = []

    def sysctl() -> bool:
        asked.append(True)
        return True

    assert build_reply(echo_request(), 1, info=unicast, ignore_broadcasts=sysctl).packet
    assert asked == []


def test_a_broadcast_source_is_never_answered() -> None:
    request = echo_request(src="10.0.0.255")
    decision = build_reply(request, 1, broadcast_source=lambda addr: addr == "10.0.0.255")
    assert decision.packet is None
    assert decision.reason is not None
    assert "group address" in decision.reason
    assert build_reply(request, 1).packet is not None  # not a broadcast on this host


def test_record_route_and_timestamp_are_reflected_with_this_host() -> None:
    # As the raw socket reads it: the kernel already recorded us on input (Linux).
    rr = bytes([OPT_RR, 15, 12, 10, 0, 0, 1, 10, 0, 0, 2]) + bytes(4)
    ts = bytes([OPT_TS, 12, 5, TS_ADDR]) + bytes(8)
    request = echo_request(options=rr + ts + b"\x00")
    reply = build_reply(request, 1, ms=0x00ABCDEF).packet
    assert reply is not None
    options = IPv4.decode(reply).options
    # Pointer 12 -> 16 (the route is full now), our address in the last slot.
    assert options[:15] == bytes([OPT_RR, 15, 16, 10, 0, 0, 1, 10, 0, 0, 2, 10, 0, 0, 2])
    assert options[15:27] == bytes([OPT_TS, 12, 13, TS_ADDR, 10, 0, 0, 2, 0, 0xAB, 0xCD, 0xEF])


def test_a_source_routed_request_is_not_answered() -> None:
    lsrr = bytes([OPT_LSRR, 7, 4, 10, 0, 0, 9, 0])
    decision = build_reply(echo_request(options=lsrr), 1)
    assert decision.packet is None
    assert decision.reason is not None
    assert "source route" in decision.reason


def test_timestamps_count_milliseconds_since_midnight_ut() -> None:
    assert ms_since_midnight_ut(86400 * 19000 + 3723.4567) == 3723456


def test_bad_icmp_checksum_is_a_decode_error() -> None:
    bad = IcmpEcho(ECHO_REQUEST, 1, 1, b"x", checksum=0x1234).encode()
    with pytest.raises(DecodeError, match="checksum"):
        build_reply(IPv4("10.0.0.1", "10.0.0.2", PROTO_ICMP, bad).encode(), ident=1)


def test_icmp_filter_mask_keeps_only_the_accepted_types() -> None:
    mask = icmp_filter_mask({0, 3, 11})
    assert [t for t in range(32) if not mask >> t & 1] == [0, 3, 11]
    assert icmp_filter_mask(()) == 0xFFFFFFFF
    with pytest.raises(ValueError, match=r"0\.\.31"):
        icmp_filter_mask({32})


def test_kernel_echo_setting_is_read_from_proc(tmp_path: Path) -> None:
    setting = tmp_path / "icmp_echo_ignore_all"
    setting.write_text("0\n")
    assert kernel_answers_echo(setting) is True
    setting.write_text("1\n")
    assert kernel_answers_echo(setting) is False
    assert kernel_answers_echo(tmp_path / "missing") is None


# Only inputs that fail before any DNS query: unit tests run in the root namespace.
@pytest.mark.parametrize("host", ["", "a\x00b"])
def test_unresolvable_hosts_are_usage_errors(host: str) -> None:
    with pytest.raises(UsageError, match="cannot resolve"):
        resolve_ipv4(host)


def test_dotted_quads_resolve_to_themselves() -> None:
    assert resolve_ipv4("192.0.2.7") == "192.0.2.7"
