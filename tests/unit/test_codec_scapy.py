"""Cross-checks against scapy, an independent implementation: it builds, we decode; we
encode, it dissects and agrees on every field and checksum."""

from __future__ import annotations

from typing import Any

import pytest
from _strategies import addresses, macs, tcp_fields, tcp_options, u16, vlan_tags
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    ECHO_REPLY,
    ECHO_REQUEST,
    ETH_P_IP,
    PROTO_TCP,
    PROTO_UDP,
    Ethernet,
    IcmpEcho,
    IcmpError,
    IPv4,
    Tcp,
    TcpEol,
    TcpMss,
    TcpOption,
    TcpPadding,
    TcpSack,
    TcpSackPermitted,
    TcpTimestamps,
    TcpWindowScale,
    Udp,
    decode_icmp,
    mac_to_bytes,
    mac_to_str,
)

scapy = pytest.importorskip("scapy.all", reason="scapy is not installed")
IP, ICMP, UDP, TCP = scapy.IP, scapy.ICMP, scapy.UDP, scapy.TCP
Ether, Dot1Q, Raw, raw = scapy.Ether, scapy.Dot1Q, scapy.Raw, scapy.raw

CROSS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _recomputed(packet: Any, layer: Any) -> int:
    """The checksum scapy computes for ``layer`` of ``packet`` from scratch."""
    fresh = packet.copy()
    del fresh[layer].chksum
    return int(fresh.__class__(raw(fresh))[layer].chksum)


def _segment(cls: Any, wire: bytes) -> Any:
    """Our transport segment as scapy's ``cls`` (UDP or TCP) with its payload kept raw.

    Left to itself scapy dissects a payload by port (DNS on 53, DCE/RPC on 135, ...), and a
    layer dissected from arbitrary bytes need not rebuild into the same bytes: hypothesis
    found dport 135 with a payload scapy's DceRpc5 rebuilt otherwise, so the checksum scapy
    recomputed was over other bytes than ours.
    """
    header = 8 if cls is UDP else (wire[12] >> 4) * 4
    return cls(wire[:header]) / Raw(wire[header:])


@CROSS
@given(
    st.fixed_dictionaries(
        {
            "src": addresses,
            "dst": addresses,
            "tos": st.integers(0, 255),
            "ttl": st.integers(1, 255),
            "id": u16,
            "flags": st.sampled_from([0, 2]),  # 2 is DF
            "frag": st.integers(0, 0x1FFF),
        }
    ),
    st.binary(max_size=32),
    st.integers(0, 2),
)
def test_ipv4_scapy_builds_we_decode(fields: dict[str, Any], payload: bytes, words: int) -> None:
    options = scapy.IPOption(b"\x01" * (4 * words)) if words else []
    wire = raw(IP(proto=253, options=options, **fields) / Raw(payload))
    ours = IPv4.decode(wire, verify=True)
    assert (ours.src, ours.dst, ours.tos, ours.ttl, ours.ident, ours.df, ours.frag_offset) == (
        fields["src"],
        fields["dst"],
        fields["tos"],
        fields["ttl"],
        fields["id"],
        fields["flags"] == 2,
        fields["frag"],
    )
    assert (ours.proto, ours.payload, ours.options) == (253, payload, b"\x01" * (4 * words))
    assert ours.encode() == wire


@CROSS
@given(
    st.fixed_dictionaries(
        {
            "src": addresses,
            "dst": addresses,
            "proto": st.integers(0, 255),
            "ident": u16,
            "df": st.booleans(),
            "mf": st.booleans(),
            "frag_offset": st.integers(0, 0x1FFF),
            "payload": st.binary(max_size=32),
        }
    )
)
def test_ipv4_we_encode_scapy_dissects(fields: dict[str, Any]) -> None:
    wire = IPv4(**fields).encode()
    pkt = IP(wire)
    assert (pkt.src, pkt.dst, pkt.proto, pkt.id, pkt.frag, pkt.len, pkt.ihl) == (
        fields["src"],
        fields["dst"],
        fields["proto"],
        fields["ident"],
        fields["frag_offset"],
        len(wire),
        5,
    )
    assert bool(pkt.flags.DF) is fields["df"]
    assert bool(pkt.flags.MF) is fields["mf"]
    assert bytes(pkt.payload) == fields["payload"]
    assert pkt.chksum == _recomputed(pkt, IP)


@CROSS
@given(st.sampled_from([ECHO_REQUEST, ECHO_REPLY]), u16, u16, st.binary(max_size=32))
def test_icmp_echo_both_ways(kind: int, ident: int, seq: int, payload: bytes) -> None:
    theirs = raw(ICMP(type=kind, id=ident, seq=seq) / Raw(payload))
    assert decode_icmp(theirs, verify=True) == IcmpEcho(
        kind, ident, seq, payload, checksum=int.from_bytes(theirs[2:4], "big")
    )
    ours = IcmpEcho(kind, ident, seq, payload).encode()
    pkt = ICMP(ours)
    assert (pkt.type, pkt.id, pkt.seq, bytes(pkt.payload)) == (kind, ident, seq, payload)
    assert pkt.chksum == _recomputed(pkt, ICMP)
    assert ours == theirs


@CROSS
@given(st.sampled_from([(3, 3), (3, 1), (11, 0)]), addresses, addresses, u16, u16)
def test_icmp_error_both_ways(
    kind_code: tuple[int, int], src: str, dst: str, sport: int, dport: int
) -> None:
    kind, code = kind_code
    quoted = raw(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(b"x" * 30))[:28]
    theirs = raw(ICMP(type=kind, code=code) / Raw(quoted))
    error = decode_icmp(theirs, verify=True)
    assert isinstance(error, IcmpError)
    inner = error.quoted_ipv4()
    assert (inner.src, inner.dst, inner.proto) == (src, dst, PROTO_UDP)
    assert inner.payload[:4] == sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    ours = IcmpError(kind, code, quoted).encode()
    pkt = ICMP(ours)
    assert (pkt.type, pkt.code, pkt.chksum) == (kind, code, _recomputed(pkt, ICMP))
    assert pkt[scapy.IPerror].src == src
    assert pkt[scapy.UDPerror].dport == dport


@CROSS
@given(addresses, addresses, u16, u16, st.binary(max_size=64))
def test_udp_both_ways(src: str, dst: str, sport: int, dport: int, payload: bytes) -> None:
    theirs = raw(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / Raw(payload))[20:]
    decoded = Udp.decode(theirs, src, dst)
    assert (decoded.src_port, decoded.dst_port, decoded.payload) == (sport, dport, payload)
    ours = Udp(sport, dport, payload).encode(src, dst)
    pkt = IP(src=src, dst=dst, proto=PROTO_UDP) / _segment(UDP, ours)
    assert (pkt[UDP].sport, pkt[UDP].dport, pkt[UDP].len) == (sport, dport, len(ours))
    assert pkt[UDP].chksum == _recomputed(pkt, UDP)
    assert ours == theirs


def _to_scapy(option: TcpOption) -> tuple[str, Any]:
    if isinstance(option, TcpMss):
        return ("MSS", option.mss)
    if isinstance(option, TcpWindowScale):
        return ("WScale", option.shift)
    if isinstance(option, TcpSackPermitted):
        return ("SAckOK", b"")
    if isinstance(option, TcpTimestamps):
        return ("Timestamp", (option.tsval, option.tsecr))
    if isinstance(option, TcpSack):
        return ("SAck", tuple(edge for block in option.blocks for edge in block))
    return ("NOP", None)


@CROSS
@given(
    addresses,
    addresses,
    st.fixed_dictionaries(tcp_fields(tcp_options(4, 2))),
)
def test_tcp_both_ways(src: str, dst: str, fields: dict[str, Any]) -> None:
    ours = Tcp(**fields).encode(src, dst)
    pkt = IP(src=src, dst=dst, proto=PROTO_TCP) / _segment(TCP, ours)
    tcp = pkt[TCP]
    seen = (tcp.sport, tcp.dport, tcp.seq, tcp.ack, int(tcp.flags), tcp.window)
    assert seen == tuple(
        fields[k] for k in ("src_port", "dst_port", "seq", "ack", "flags", "window")
    )
    assert tcp.dataofs == ours[12] >> 4
    assert [o for o in tcp.options if o[0] != "EOL"] == [_to_scapy(o) for o in fields["options"]]
    assert bytes(tcp.payload) == fields["payload"]
    assert tcp.chksum == _recomputed(pkt, TCP)

    scapy_tcp = TCP(
        sport=fields["src_port"],
        dport=fields["dst_port"],
        seq=fields["seq"],
        ack=fields["ack"],
        flags=fields["flags"],
        window=fields["window"],
        options=[_to_scapy(o) for o in fields["options"]],
    )
    theirs = raw(IP(src=src, dst=dst) / scapy_tcp / Raw(fields["payload"]))[20:]
    decoded = Tcp.decode(theirs, src, dst)
    real = [o for o in decoded.options if not isinstance(o, (TcpEol, TcpPadding))]
    assert real == list(fields["options"])
    assert (decoded.seq, decoded.ack, decoded.flags, decoded.payload) == (
        fields["seq"],
        fields["ack"],
        fields["flags"],
        fields["payload"],
    )
    assert decoded.encode(src, dst) == theirs


@CROSS
@given(
    macs,
    macs,
    vlan_tags,
    st.binary(max_size=32),
)
def test_ethernet_and_dot1q_both_ways(
    dst: bytes, src: bytes, tag: tuple[int, int, int] | None, payload: bytes
) -> None:
    frame = Ether(dst=mac_to_str(dst), src=mac_to_str(src))
    if tag is not None:
        frame = frame / Dot1Q(prio=tag[0], dei=tag[1], vlan=tag[2])
    frame = frame / Raw(payload)
    frame[Dot1Q if tag is not None else Ether].type = ETH_P_IP
    theirs = raw(frame)
    ours = Ethernet.decode(theirs)
    assert (ours.dst, ours.src, ours.ethertype, ours.payload) == (dst, src, ETH_P_IP, payload)
    if tag is not None:
        assert (ours.vlan_priority, ours.vlan_id) == (tag[0], tag[2])
    assert ours.encode() == theirs
    rebuilt = Ether(
        Ethernet(mac_to_bytes(mac_to_str(dst)), src, ETH_P_IP, payload, ours.vlan).encode()
    )
    assert rebuilt.dst == mac_to_str(dst)
    if tag is not None:
        assert (rebuilt[Dot1Q].prio, rebuilt[Dot1Q].dei, rebuilt[Dot1Q].vlan) == tag
