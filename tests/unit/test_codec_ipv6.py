"""rawstack.codec.ipv6: header, extension chain, pseudo-header; vectors, errors, round
trips, fuzz."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _strategies import h, ipv6_addresses, ipv6_packets
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    PROTO_TCP,
    PROTO_UDP,
    DecodeError,
    DestOptions,
    Fragment,
    HopByHop,
    Ip6Option,
    IPv6,
    Routing,
    Tcp,
    Udp,
    ip6_to_bytes,
    ip6_to_str,
    transport_checksum,
)
from rawstack.codec.ipv6 import NO_NEXT_HEADER, OPT_PAD1, OPT_PADN, OPT_ROUTER_ALERT, pseudo_header

A, B = "2001:db8::1", "2001:db8::2"
ROUTER_ALERT = Ip6Option(OPT_ROUTER_ALERT, b"\x00\x00")  # MLD (RFC 2711)

# Wire bytes as scapy 2.8 builds them, 32 bits a row as RFC 8200 draws the header.
ADDRS = h("""
    20 01 0d b8
    00 00 00 00
    00 00 00 00
    00 00 00 01
    20 01 0d b8
    00 00 00 00
    00 00 00 00
    00 00 00 02
""")
UDP_HI = h("9c 40 00 09  00 0a 9f b2  68 69")  # 40000 -> 9, "hi", checksum over A -> B

ECHO_WIRE = h("60 00 00 00  00 0c 3a 40") + ADDRS + h("80 00 33 3e  12 34 00 01  70 69 6e 67")
HBH_FRAGMENT_WIRE = (
    h("6b 80 be ef  00 1a 00 01")
    + ADDRS
    + h("""
        2c 00 05 02
        00 00 01 00
        11 00 00 00
        00 00 ca fe
    """)
    + UDP_HI
)
TCP_SYN = h("00 01 00 50  00 00 00 01  00 00 00 00  50 02 ff ff  54 1b 00 00")
ROUTING_WIRE = (
    h("60 00 00 00  00 34 2b 40")
    + ADDRS
    + h("""
        3c 02 00 01
        00 00 00 00
        20 01 0d b8
        00 00 00 00
        00 00 00 00
        00 00 00 03
        06 00 01 04
        00 00 00 00
    """)
    + TCP_SYN
)

VECTORS = [
    pytest.param(
        IPv6(A, B, 58, h("80 00 33 3e  12 34 00 01  70 69 6e 67")), ECHO_WIRE, id="echo-request"
    ),
    pytest.param(
        IPv6(
            A,
            B,
            PROTO_UDP,
            UDP_HI,
            hop_limit=1,
            traffic_class=0xB8,
            flow_label=0xBEEF,
            extensions=(HopByHop((ROUTER_ALERT, Ip6Option(OPT_PADN))), Fragment(0, False, 0xCAFE)),
        ),
        HBH_FRAGMENT_WIRE,
        id="hop-by-hop-fragment-udp",
    ),
    pytest.param(
        IPv6(
            A,
            B,
            PROTO_TCP,
            TCP_SYN,
            extensions=(
                Routing.with_addresses(("2001:db8::3",)),
                DestOptions((Ip6Option(OPT_PADN, bytes(4)),)),
            ),
        ),
        ROUTING_WIRE,
        id="routing-destopts-tcp",
    ),
]


def _as_decoded(packet: IPv6, wire: bytes) -> IPv6:
    return IPv6(**{**packet.__dict__, "payload_length": len(wire) - 40})


@pytest.mark.parametrize(("packet", "wire"), VECTORS)
def test_encode_vector(packet: IPv6, wire: bytes) -> None:
    assert packet.encode() == wire


@pytest.mark.parametrize(("packet", "wire"), VECTORS)
def test_decode_vector(packet: IPv6, wire: bytes) -> None:
    decoded = IPv6.decode(wire)
    assert decoded == _as_decoded(packet, wire)
    assert decoded.encode() == wire
    assert IPv6.decode(wire + b"\x00" * 6) == decoded  # link-layer padding is dropped


def test_upper_layer_checksums_cover_the_final_destination() -> None:
    # RFC 8200 8.1: with a routing header, the pseudo-header names the last address.
    packet = IPv6.decode(ROUTING_WIRE)
    routing = packet.extension(Routing)
    assert routing is not None
    assert routing.addresses() == ("2001:db8::3",)
    assert Tcp.decode(packet.payload, A, "2001:db8::3").dst_port == 80
    with pytest.raises(DecodeError):
        Tcp.decode(packet.payload, A, B)


def test_udp_over_ipv6_vector_and_mandatory_checksum() -> None:
    assert Udp(40000, 9, b"hi").encode(A, B) == UDP_HI
    assert Udp.decode(UDP_HI, A, B).payload == b"hi"
    no_checksum = UDP_HI[:6] + b"\x00\x00" + UDP_HI[8:]
    with pytest.raises(DecodeError, match="does not match"):
        Udp.decode(no_checksum, A, B)  # RFC 8200 8.1: zero is not "none" over IPv6
    assert (
        Udp.decode(
            Udp(1, 2, checksum=0).encode("192.0.2.1", "192.0.2.2"), "192.0.2.1", "192.0.2.2"
        ).checksum
        == 0
    )


def test_pseudo_header_layout() -> None:
    assert pseudo_header(A, B, PROTO_UDP, 10) == ADDRS + h("00 00 00 0a  00 00 00 11")
    with pytest.raises(ValueError, match="different IP versions"):
        transport_checksum(A, "192.0.2.1", PROTO_UDP, b"")


def test_fragment_fields_and_chain_walk() -> None:
    packet = IPv6.decode(HBH_FRAGMENT_WIRE)
    assert (packet.first_header, packet.next_header) == (0, PROTO_UDP)
    fragment = packet.extension(Fragment)
    assert fragment == Fragment(0, False, 0xCAFE)
    assert fragment.atomic
    assert packet.extension(Routing) is None
    later = IPv6(A, B, PROTO_UDP, b"rest", extensions=(Fragment(185, True, 1, res=3),))
    wire = later.encode()
    assert wire[40:48] == h("11 00 05 cf  00 00 00 01")
    assert IPv6.decode(wire).extension(Fragment) == Fragment(185, True, 1, res=3)
    # What follows a later fragment is data, even when its Next Header names a header.
    data = HopByHop().encode(PROTO_UDP)
    later = IPv6(A, B, 0, data, extensions=(Fragment(1, False, 1),))
    assert IPv6.decode(later.encode()) == IPv6(**{**later.__dict__, "payload_length": 16})
    first = IPv6.decode(IPv6(A, B, 0, data, extensions=(Fragment(0, True, 1),)).encode())
    assert (first.next_header, first.payload, first.extensions[1:]) == (
        PROTO_UDP,
        b"",
        (HopByHop((Ip6Option(OPT_PADN, bytes(4)),)),),
    )


def test_options_are_padded_to_eight_octets() -> None:
    assert HopByHop().encode(6) == h("06 00 01 04  00 00 00 00")
    assert HopByHop((Ip6Option(0xC2, bytes(3)),)).encode(6) == h("06 00 c2 03  00 00 00 00")
    assert DestOptions((Ip6Option(0x1E, bytes(4)),)).encode(6) == h("06 00 1e 04  00 00 00 00")
    # 5 bytes of option leave one to pad: a Pad1, not a PadN.
    assert HopByHop((Ip6Option(0x1E, bytes(3)), Ip6Option(OPT_PAD1))).encode(59) == h(
        "3b 00 1e 03  00 00 00 00"
    )
    assert HopByHop((Ip6Option(0x1E, bytes(3)),)).encode(59) == h("3b 00 1e 03  00 00 00 00")


def test_addresses() -> None:
    assert ip6_to_bytes("2001:db8::1") == ADDRS[:16]
    assert ip6_to_str(ADDRS[16:]) == B
    assert ip6_to_str(bytes(16)) == "::"
    assert ip6_to_str(h("fe 80 00 00 00 00 00 00 00 00 00 00 00 00 00 01")) == "fe80::1"


# (wire, offset, reason fragment)
ERROR_VECTORS = [
    pytest.param(b"", 0, "needs 40 bytes, got 0", id="empty"),
    pytest.param(h("60 00 00 00"), 0, "needs 40 bytes, got 4", id="short"),
    pytest.param(h("45 00 00 14") + bytes(36), 0, "version 4 is not 6", id="version"),
    pytest.param(h("60 00 00 00  00 08 3b 40") + ADDRS, 4, "payload length 8 exceeds", id="len"),
    pytest.param(
        h("60 00 00 00  00 01 00 40") + ADDRS + h("3b"), 40, "needs 2 bytes, got 1", id="hbh-short"
    ),
    pytest.param(
        h("60 00 00 00  00 08 00 40") + ADDRS + h("3b 01 00 00  00 00 00 00"),
        41,
        "of 16 bytes exceeds the payload",
        id="hbh-length",
    ),
    pytest.param(
        h("60 00 00 00  00 08 00 40") + ADDRS + h("3b 00 05 07  00 00 00 00"),
        43,
        "option type 5 length 7 overruns",
        id="option-length",
    ),
    pytest.param(
        h("60 00 00 00  00 08 3c 40") + ADDRS + h("3b 00 00 00  00 00 00 05"),
        47,
        "option type 5 has no length byte",
        id="option-cut",
    ),
    pytest.param(
        h("60 00 00 00  00 04 2c 40") + ADDRS + h("3b 00 00 00"),
        40,
        "needs 8 bytes, got 4",
        id="fragment-short",
    ),
]


@pytest.mark.parametrize(("wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(wire: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        IPv6.decode(wire)
    assert (info.value.layer, info.value.offset) == ("ipv6", offset)
    assert reason in info.value.reason


def test_truncated_quote_is_allowed_on_request() -> None:
    wire = ECHO_WIRE
    cut = IPv6.decode(wire[:44], allow_truncated=True)
    assert (cut.payload, cut.payload_length) == (wire[40:44], 12)


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: IPv6("192.0.2.1", B, 6), ValueError),
        (lambda: IPv6("fe80::1%eth0", B, 6), ValueError),
        (lambda: IPv6(A, B, 256), ValueError),
        (lambda: IPv6(A, B, 6, flow_label=1 << 20), ValueError),
        (lambda: IPv6(A, B, 6, b"x" * 0x10000), ValueError),
        (lambda: IPv6(A, B, 6, "text"), TypeError),  # type: ignore[arg-type]
        (lambda: IPv6(A, B, 6, extensions=(b"\x00",)), TypeError),  # type: ignore[arg-type]
        (lambda: Ip6Option(OPT_PAD1, b"x"), ValueError),
        (lambda: Ip6Option(7, bytes(256)), ValueError),
        (lambda: Routing(0, 0, bytes(5)), ValueError),
        (lambda: Fragment(1 << 13, False, 0), ValueError),
        (lambda: Fragment(0, 1, 0), TypeError),  # type: ignore[arg-type]
        (lambda: HopByHop((b"\x00",)), TypeError),  # type: ignore[arg-type]
        (lambda: ip6_to_str(bytes(4)), ValueError),
        (lambda: ip6_to_bytes(1), TypeError),  # type: ignore[arg-type]
    ],
)
def test_api_misuse(build: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


def test_encode_does_not_mutate() -> None:
    packet = IPv6(A, B, NO_NEXT_HEADER, extensions=[HopByHop()])  # type: ignore[arg-type]
    assert packet.extensions == (HopByHop(),)
    packet.encode()
    assert packet.payload_length is None


@settings(max_examples=200)
@given(ipv6_packets(max_payload=48))
def test_round_trip(packet: IPv6) -> None:
    wire = packet.encode()
    decoded = IPv6.decode(wire)
    # Decoding makes the padding encode() added explicit; each header encodes the same.
    assert [x.encode(0) for x in decoded.extensions] == [x.encode(0) for x in packet.extensions]
    assert decoded == IPv6(
        **{**packet.__dict__, "payload_length": len(wire) - 40, "extensions": decoded.extensions}
    )
    assert decoded.encode() == wire


@settings(max_examples=300)
@given(st.binary(max_size=96), st.booleans())
def test_fuzz_random_bytes(data: bytes, truncated: bool) -> None:
    # Random bytes behind a valid fixed header reach the extension walk.
    for wire in (
        data,
        h("60 00 00 00") + len(data).to_bytes(2, "big") + data[:1] + b"\x40" + bytes(32) + data,
    ):
        try:
            packet = IPv6.decode(wire, allow_truncated=truncated)
        except DecodeError:
            continue
        if not truncated:
            assert packet.encode() == wire[: 40 + (packet.payload_length or 0)]


@given(ipv6_addresses)
def test_address_text_round_trip(addr: str) -> None:
    assert ip6_to_str(ip6_to_bytes(addr)) == addr
