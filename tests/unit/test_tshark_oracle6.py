"""tshark as an independent oracle for the IPv6 codecs: we encode and write a pcap,
Wireshark's dissectors read it and must agree field by field, with every ICMPv6, UDP and
TCP checksum (all over the IPv6 pseudo-header) verified "Good".

The helpers (a private tshark profile, JSON flattening, batching on stdin) are the IPv4
oracle's, imported from test_tshark_oracle.
"""

from __future__ import annotations

import pytest
from _strategies import MAC_A, MAC_B, ipv6_addresses, ipv6_packets, u16, u32
from hypothesis import given
from hypothesis import strategies as st
from test_tshark_oracle import GOOD, ORACLE, TSHARK, Fields, dissect, hexcolon, pick, records_of

from rawstack.codec import (
    ECHO_REPLY6,
    ECHO_REQUEST6,
    ETH_P_IPV6,
    PROTO_ICMPV6,
    PROTO_TCP,
    PROTO_UDP,
    DestOptions,
    Ethernet,
    Fragment,
    HopByHop,
    Icmp6Echo,
    Icmp6Error,
    Ip6Option,
    IPv6,
    NdLinkAddress,
    NdMtu,
    NdPrefixInfo,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    Routing,
    Tcp,
    Udp,
    mac_to_str,
)
from rawstack.codec.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW

pytestmark = pytest.mark.skipif(
    TSHARK is None, reason="tshark is not installed (Debian package tshark)"
)

A, B, ROUTER = "2001:db8::1", "2001:db8::2", "2001:db8::9"
SOLICITED_NODE = "ff02::1:ff00:2"  # of B (RFC 4291 2.7.1)


def _x8(value: int) -> str:
    return f"0x{value:08x}"


def _ipv6_fields(packet: IPv6) -> Fields:
    return {
        "ipv6.src": [packet.src],
        "ipv6.dst": [packet.dst],
        "ipv6.plen": [str(len(packet.encode()) - 40)],
        "ipv6.nxt": [str(packet.first_header)],
        "ipv6.hlim": [str(packet.hop_limit)],
        "ipv6.tclass": [_x8(packet.traffic_class)],
        "ipv6.flow": [f"0x{packet.flow_label:06x}"],
    }


def _icmp6_status(message: bytes) -> Fields:
    return {
        "icmpv6.type": [str(message[0])],
        "icmpv6.code": [str(message[1])],
        "icmpv6.checksum": [f"0x{message[2:4].hex()}"],
        "icmpv6.checksum.status": [GOOD],
    }


# --- fixed vectors ------------------------------------------------------------------

ECHO = Icmp6Echo(ECHO_REQUEST6, 0x1234, 1, b"ping").encode(A, B)
ECHO_PACKET = IPv6(A, B, PROTO_ICMPV6, ECHO, extensions=(HopByHop((Ip6Option(5, bytes(2)),)),))
ECHO_FIELDS = {
    **_ipv6_fields(ECHO_PACKET),
    **_icmp6_status(ECHO),
    "ipv6.hopopts.nxt": ["58"],
    "ipv6.opt.type": ["0x05", "0x01"],  # router alert, then the PadN encode() added
    "ipv6.opt.router_alert": ["0"],
    "icmpv6.echo.identifier": ["0x1234"],
    "icmpv6.echo.sequence_number": ["1"],
    "icmpv6.data": [],  # tshark names echo data "data.data"
    "data.data": [hexcolon(b"ping")],
}

NS = NeighborSolicitation(B, (NdLinkAddress(1, MAC_A),)).encode(A, SOLICITED_NODE)
NS_PACKET = IPv6(A, SOLICITED_NODE, PROTO_ICMPV6, NS, hop_limit=255)
NS_FIELDS = {
    **_icmp6_status(NS),
    "icmpv6.nd.ns.target_address": [B],
    "icmpv6.opt.type": ["1"],
    "icmpv6.opt.src_linkaddr": [mac_to_str(MAC_A)],
}

NA = NeighborAdvertisement(
    B, solicited=True, override=True, options=(NdLinkAddress(2, MAC_B),)
).encode(B, A)
NA_PACKET = IPv6(B, A, PROTO_ICMPV6, NA, hop_limit=255)
NA_FIELDS = {
    **_icmp6_status(NA),
    "icmpv6.nd.na.flag.r": ["0"],
    "icmpv6.nd.na.flag.s": ["1"],
    "icmpv6.nd.na.flag.o": ["1"],
    "icmpv6.nd.na.target_address": [B],
    "icmpv6.opt.target_linkaddr": [mac_to_str(MAC_B)],
}

RA = RouterAdvertisement(
    64, 0xC0, 1800, 30000, 1000, (NdPrefixInfo("2001:db8::"), NdMtu(1500))
).encode("fe80::1", "ff02::1")
RA_PACKET = IPv6("fe80::1", "ff02::1", PROTO_ICMPV6, RA, hop_limit=255)
RA_FIELDS = {
    **_icmp6_status(RA),
    "icmpv6.nd.ra.cur_hop_limit": ["64"],
    "icmpv6.nd.ra.flag.m": ["1"],
    "icmpv6.nd.ra.flag.o": ["1"],
    "icmpv6.nd.ra.router_lifetime": ["1800"],
    "icmpv6.nd.ra.reachable_time": ["30000"],
    "icmpv6.nd.ra.retrans_timer": ["1000"],
    "icmpv6.opt.type": ["3", "5"],
    "icmpv6.opt.prefix": ["2001:db8::"],
    "icmpv6.opt.prefix.length": ["64"],
    "icmpv6.opt.mtu": ["1500"],
}

UDP_INNER = IPv6(A, B, PROTO_UDP, Udp(40000, 33434, b"x" * 12).encode(A, B), hop_limit=1)
PTB = Icmp6Error(2, 0, UDP_INNER.encode(), rest=1280).encode(ROUTER, A)
PTB_PACKET = IPv6(ROUTER, A, PROTO_ICMPV6, PTB)
PTB_FIELDS = {
    **_icmp6_status(PTB),
    "ipv6.src": [ROUTER, A],
    "ipv6.hlim": ["64", "1"],
    "icmpv6.mtu": ["1280"],
    "udp.dstport": ["33434"],
    "udp.checksum.status": [GOOD],
}

# A SYN routed through 2001:db8::3: its checksum covers the final destination (8.1).
SYN = Tcp(40000, 80, 0x01020304).encode(A, "2001:db8::3")
SYN_PACKET = IPv6(
    A,
    B,
    PROTO_TCP,
    SYN,
    extensions=(Routing.with_addresses(("2001:db8::3",)), DestOptions()),
)
SYN_FIELDS = {
    **_ipv6_fields(SYN_PACKET),
    "ipv6.routing.type": ["0"],
    "ipv6.routing.segleft": ["1"],
    "ipv6.routing.src.addr": ["2001:db8::3"],
    "ipv6.dstopts.nxt": ["6"],
    "tcp.seq_raw": [str(0x01020304)],
    "tcp.checksum.status": [GOOD],
}

FRAGMENT_PACKET = IPv6(
    A, B, PROTO_UDP, Udp(1, 2, b"first").encode(A, B), extensions=(Fragment(0, True, 0xBEEF),)
)
FRAGMENT_FIELDS = {
    "ipv6.nxt": ["44"],
    "ipv6.fraghdr.nxt": ["17"],
    "ipv6.fraghdr.offset": ["0"],
    "ipv6.fraghdr.more": ["1"],
    "ipv6.fraghdr.ident": ["0x0000beef"],
}

VECTORS = [
    (ECHO_PACKET, ECHO_FIELDS),
    (NS_PACKET, NS_FIELDS),
    (NA_PACKET, NA_FIELDS),
    (RA_PACKET, RA_FIELDS),
    (PTB_PACKET, PTB_FIELDS),
    (SYN_PACKET, SYN_FIELDS),
    (FRAGMENT_PACKET, FRAGMENT_FIELDS),
]


def test_fixed_vectors_in_a_raw_ip_capture() -> None:
    wanted = [fields for _, fields in VECTORS]
    frames = dissect(records_of([packet.encode() for packet, _ in VECTORS]), LINKTYPE_RAW)
    assert pick(frames, wanted) == wanted
    assert [frame.get("_ws.malformed", []) for frame in frames] == [[]] * len(frames)
    assert [frame["frame.protocols"][0].split(":")[:2] for frame in frames] == [
        ["raw", "ipv6"]
    ] * len(VECTORS)


def test_fixed_vectors_in_an_ethernet_capture() -> None:
    frames = dissect(
        records_of(
            [Ethernet(MAC_B, MAC_A, ETH_P_IPV6, packet.encode()).encode() for packet, _ in VECTORS]
        ),
        LINKTYPE_ETHERNET,
    )
    wanted = [{"eth.type": ["0x86dd"], **fields} for _, fields in VECTORS]
    assert pick(frames, wanted) == wanted


# --- one hypothesis-drawn batch of every kind ---------------------------------------

Case = tuple[bytes, Fields]


def _extension_fields(packet: IPv6) -> Fields:
    fields: Fields = {
        "ipv6.fraghdr.offset": [],
        "ipv6.fraghdr.more": [],
        "ipv6.fraghdr.ident": [],
        "ipv6.routing.type": [],
        "ipv6.routing.segleft": [],
        "ipv6.hopopts.len_oct": [],
        "ipv6.dstopts.len_oct": [],
    }
    for header in packet.extensions:
        if isinstance(header, Fragment):
            fields["ipv6.fraghdr.offset"].append(str(header.offset))
            fields["ipv6.fraghdr.more"].append(str(int(header.more)))
            fields["ipv6.fraghdr.ident"].append(_x8(header.ident))
        elif isinstance(header, Routing):
            fields["ipv6.routing.type"].append(str(header.routing_type))
            fields["ipv6.routing.segleft"].append(str(header.segments_left))
        elif isinstance(header, HopByHop):
            fields["ipv6.hopopts.len_oct"].append(str(len(header.encode(0))))
        else:
            fields["ipv6.dstopts.len_oct"].append(str(len(header.encode(0))))
    return fields


def _ipv6_case(packet: IPv6) -> Case:
    return packet.encode(), {**_ipv6_fields(packet), **_extension_fields(packet)}


# Options tshark does not interpret (experimental types, RFC 4727) and routing types 2
# (one address, RFC 6275) and 0, so each header's own fields are shown; an experimental
# upper layer (RFC 3692) ends the chain.
_experimental = st.builds(Ip6Option, st.sampled_from([0x1E, 0x3E]), st.binary(max_size=10))
_chain = st.lists(
    st.one_of(
        st.builds(HopByHop, st.lists(_experimental, max_size=2).map(tuple)),
        st.builds(DestOptions, st.lists(_experimental, max_size=2).map(tuple)),
        st.builds(
            lambda hops, left: Routing.with_addresses(tuple(hops), min(left, len(hops))),
            st.lists(ipv6_addresses, max_size=2),
            st.integers(0, 2),
        ),
        st.builds(Fragment, st.just(0), st.booleans(), u32),
    ),
    max_size=3,
).filter(
    # RFC 8200 4.1: hop-by-hop options first, each header at most once; a fragment header
    # last, since tshark leaves what follows a fragment header to reassembly.
    lambda chain: (
        all(not isinstance(h, HopByHop) for h in chain[1:])
        and all(not isinstance(h, Fragment) for h in chain[:-1])
        and len({type(h) for h in chain}) == len(chain)
    )
)
ipv6_cases = st.builds(
    lambda packet, chain: _ipv6_case(IPv6(**{**packet.__dict__, "extensions": tuple(chain)})),
    ipv6_packets(max_payload=24, upper=st.sampled_from([253, 254])),
    _chain,
)


def _echo_case(src: str, dst: str, echo: Icmp6Echo) -> Case:
    wire = echo.encode(src, dst)
    return IPv6(src, dst, PROTO_ICMPV6, wire).encode(), {
        **_icmp6_status(wire),
        "icmpv6.echo.identifier": [f"0x{echo.ident:04x}"],
        "icmpv6.echo.sequence_number": [str(echo.seq)],
    }


echo_cases = st.builds(
    _echo_case,
    ipv6_addresses,
    ipv6_addresses,
    st.builds(
        Icmp6Echo, st.sampled_from([ECHO_REQUEST6, ECHO_REPLY6]), u16, u16, st.binary(max_size=32)
    ),
)


def _error_case(src: str, dst: str, kind_code: tuple[int, int], rest: int, sport: int) -> Case:
    inner = IPv6(dst, src, PROTO_UDP, Udp(sport, 33434, b"q" * 8).encode(dst, src))
    wire = Icmp6Error(kind_code[0], kind_code[1], inner.encode(), rest).encode(src, dst)
    return IPv6(src, dst, PROTO_ICMPV6, wire).encode(), {
        **_icmp6_status(wire),
        "ipv6.src": [src, dst],
        "udp.srcport": [str(sport)],
        "udp.checksum.status": [GOOD],
    }


error_cases = st.builds(
    _error_case,
    ipv6_addresses,
    ipv6_addresses,
    st.sampled_from([(1, 0), (1, 4), (3, 0)]),
    st.just(0),
    u16,
) | st.builds(
    _error_case, ipv6_addresses, ipv6_addresses, st.just((2, 0)), st.integers(1280, 9000), u16
)


def _transport_case(src: str, dst: str, udp: Udp, tcp: Tcp) -> Case:
    if udp.src_port % 2:
        wire = udp.encode(src, dst)
        return IPv6(src, dst, PROTO_UDP, wire).encode(), {
            "udp.length": [str(len(wire))],
            "udp.checksum": [f"0x{wire[6:8].hex()}"],
            "udp.checksum.status": [GOOD],
        }
    wire = tcp.encode(src, dst)
    return IPv6(src, dst, PROTO_TCP, wire).encode(), {
        "tcp.seq_raw": [str(tcp.seq)],
        "tcp.checksum": [f"0x{wire[16:18].hex()}"],
        "tcp.checksum.status": [GOOD],
    }


transport_cases = st.builds(
    _transport_case,
    ipv6_addresses,
    ipv6_addresses,
    st.builds(Udp, u16, u16, st.binary(max_size=32)),
    st.builds(Tcp, u16, u16, u32, u32, payload=st.binary(max_size=16)),
)


@ORACLE
@given(
    st.lists(
        st.one_of(ipv6_cases, echo_cases, error_cases, transport_cases), min_size=10, max_size=50
    )
)
def test_random_batch(cases: list[Case]) -> None:
    frames = dissect(records_of([packet for packet, _ in cases]), LINKTYPE_RAW)
    wanted = [fields for _, fields in cases]
    assert pick(frames, wanted) == wanted
