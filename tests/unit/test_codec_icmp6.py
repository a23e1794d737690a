"""rawstack.codec.icmp6: echo, errors, Neighbor Discovery and its options; vectors both
ways, error vectors, round trips, fuzz."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _strategies import h, ipv6_addresses, u16, u32
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    DEST_UNREACH6,
    ECHO_REPLY6,
    ECHO_REQUEST6,
    PACKET_TOO_BIG,
    PARAM_PROBLEM6,
    PROTO_UDP,
    TIME_EXCEEDED6,
    DecodeError,
    Icmp6Echo,
    Icmp6Error,
    Icmp6Message,
    Icmp6Packet,
    NdLinkAddress,
    NdMtu,
    NdPrefixInfo,
    NdUnknownOption,
    NeighborAdvertisement,
    NeighborSolicitation,
    RouterAdvertisement,
    RouterSolicitation,
    decode_icmp6,
)
from rawstack.codec.icmp6 import (
    ERROR_TYPES6,
    ND_OPT_SOURCE_LINKADDR,
    ND_OPT_TARGET_LINKADDR,
    PORT_UNREACH6,
    decode_nd_options,
)

A, B, ROUTER = "2001:db8::1", "2001:db8::2", "2001:db8::9"
MAC_A, MAC_B = h("02 00 00 00 00 01"), h("02 00 00 00 00 02")

# The packet an error quotes: A -> B, UDP 1 -> 2, no data (RFC 8200 rows).
QUOTED = h("""
    60 00 00 00
    00 08 11 40
    20 01 0d b8
    00 00 00 00
    00 00 00 00
    00 00 00 01
    20 01 0d b8
    00 00 00 00
    00 00 00 00
    00 00 00 02
    00 01 00 02
    00 08 a4 66
""")

# A packet with an unrecognised Next Header (253) and one byte; pointer 40 would name it.
PROBLEM = h("60 00 00 00  00 01 fd 40") + QUOTED[8:40] + b"x"

# (message as built, src, dst, wire bytes); the wire bytes are scapy 2.8's.
VECTORS = [
    pytest.param(
        Icmp6Echo(ECHO_REQUEST6, 0x1234, 1, b"ping"),
        A,
        B,
        h("80 00 33 3e  12 34 00 01  70 69 6e 67"),
        id="echo-request",
    ),
    pytest.param(
        Icmp6Echo(ECHO_REPLY6, 0x1234, 1, b"ping"),
        B,
        A,
        h("81 00 32 3e  12 34 00 01  70 69 6e 67"),
        id="echo-reply",
    ),
    pytest.param(
        Icmp6Error(DEST_UNREACH6, PORT_UNREACH6, QUOTED),
        B,
        A,
        h("01 04 31 e5  00 00 00 00") + QUOTED,
        id="port-unreachable",
    ),
    pytest.param(
        Icmp6Error(PACKET_TOO_BIG, 0, QUOTED, rest=1280),
        ROUTER,
        A,
        h("02 00 2b e2  00 00 05 00") + QUOTED,
        id="packet-too-big",
    ),
    pytest.param(
        Icmp6Error(TIME_EXCEEDED6, 0, QUOTED[:7] + b"\x01" + QUOTED[8:]),
        ROUTER,
        A,
        h("03 00 30 21  00 00 00 00") + QUOTED[:7] + b"\x01" + QUOTED[8:],
        id="time-exceeded",
    ),
    pytest.param(
        Icmp6Error(PARAM_PROBLEM6, 1, PROBLEM, rest=40),
        B,
        A,
        h("04 01 6f 3e  00 00 00 28") + PROBLEM,
        id="parameter-problem",
    ),
    pytest.param(
        NeighborSolicitation(B, (NdLinkAddress(ND_OPT_SOURCE_LINKADDR, MAC_A),)),
        A,
        "ff02::1:ff00:2",
        h("""
            87 00 1c 27
            00 00 00 00
            20 01 0d b8
            00 00 00 00
            00 00 00 00
            00 00 00 02
            01 01 02 00
            00 00 00 01
        """),
        id="neighbor-solicitation",
    ),
    pytest.param(
        NeighborAdvertisement(
            B,
            solicited=True,
            override=True,
            options=(NdLinkAddress(ND_OPT_TARGET_LINKADDR, MAC_B),),
        ),
        B,
        A,
        h("""
            88 00 8a 71
            60 00 00 00
            20 01 0d b8
            00 00 00 00
            00 00 00 00
            00 00 00 02
            02 01 02 00
            00 00 00 02
        """),
        id="neighbor-advertisement",
    ),
    pytest.param(
        RouterSolicitation((NdLinkAddress(ND_OPT_SOURCE_LINKADDR, MAC_A),)),
        "fe80::1",
        "ff02::2",
        h("85 00 7a 2c  00 00 00 00  01 01 02 00  00 00 00 01"),
        id="router-solicitation",
    ),
    pytest.param(
        RouterAdvertisement(
            cur_hop_limit=64,
            flags=0x88,  # managed; router preference bits as scapy sets them
            router_lifetime=1800,
            options=(NdPrefixInfo("2001:db8::"), NdMtu(1500)),
        ),
        "fe80::1",
        "ff02::1",
        h("""
            86 00 b8 1c
            40 88 07 08
            00 00 00 00
            00 00 00 00
            03 04 40 c0
            ff ff ff ff
            ff ff ff ff
            00 00 00 00
            20 01 0d b8
            00 00 00 00
            00 00 00 00
            00 00 00 00
            05 01 00 00
            00 00 05 dc
        """),
        id="router-advertisement",
    ),
]


def _with_checksum(message: Icmp6Packet, checksum: int) -> Icmp6Packet:
    return type(message)(**{**message.__dict__, "checksum": checksum})


@pytest.mark.parametrize(("message", "src", "dst", "wire"), VECTORS)
def test_encode_vector(message: Icmp6Packet, src: str, dst: str, wire: bytes) -> None:
    assert message.encode(src, dst) == wire
    assert message.checksum_ok(src, dst)
    with pytest.raises(DecodeError, match="does not match"):
        decode_icmp6(wire, src, "2001:db8::77")  # the pseudo-header counts


@pytest.mark.parametrize(("message", "src", "dst", "wire"), VECTORS)
def test_decode_vector(message: Icmp6Packet, src: str, dst: str, wire: bytes) -> None:
    decoded = decode_icmp6(wire, src, dst)
    assert decoded == _with_checksum(message, int.from_bytes(wire[2:4], "big"))
    assert type(decoded).decode(wire) == decoded
    assert decoded.encode() == wire  # a decoded checksum needs no addresses


def test_quoted_packet_of_an_error() -> None:
    error = Icmp6Error.decode(h("02 00 2b e2  00 00 05 00") + QUOTED)
    assert error.mtu == 1280
    inner = error.quoted_ipv6()
    assert (inner.src, inner.dst, inner.next_header) == (A, B, PROTO_UDP)
    assert inner.payload[:4] == h("00 01 00 02")
    assert Icmp6Error(PARAM_PROBLEM6, 0, b"", rest=6).pointer == 6


def test_quoted_garbage_is_an_ipv6_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        Icmp6Error(TIME_EXCEEDED6, 0, b"\x45" + bytes(47)).quoted_ipv6()
    assert info.value.layer == "ipv6"


def test_reply_mirrors_the_request() -> None:
    request = Icmp6Echo(ECHO_REQUEST6, 7, 9, b"data", checksum=1)
    assert request.reply() == Icmp6Echo(ECHO_REPLY6, 7, 9, b"data")


def test_kernel_checksum_needs_no_addresses() -> None:
    # RFC 3542 3.1: the kernel fills the checksum of a raw ICMPv6 socket's messages.
    assert Icmp6Echo(ECHO_REQUEST6, 1, 2, checksum=0).encode() == h("80 00 00 00  00 01 00 02")
    with pytest.raises(ValueError, match="pseudo-header"):
        Icmp6Echo(ECHO_REQUEST6, 1, 2).encode()
    with pytest.raises(ValueError, match="both"):
        Icmp6Echo(ECHO_REQUEST6, 1, 2).encode(A)


def test_a_wrong_checksum_is_kept_or_rejected() -> None:
    wire = h("80 00 00 00  12 34 00 01  70 69 6e 67")
    assert decode_icmp6(wire).checksum == 0
    with pytest.raises(DecodeError) as info:
        decode_icmp6(wire, A, B)
    assert info.value.offset == 2
    assert "does not match computed 0x333e" in info.value.reason


def test_nd_options_keep_unknown_and_odd_sized_ones() -> None:
    area = h("0e 01 00 01  02 03 04 05") + h("05 02") + bytes(14) + h("03 01 00 00 00 00 00 00")
    options = decode_nd_options(area)
    assert options == (
        NdUnknownOption(14, h("00 01 02 03 04 05")),
        NdUnknownOption(5, bytes(14)),  # an MTU option of the wrong size
        NdUnknownOption(3, bytes(6)),
    )
    assert b"".join(option.encode() for option in options) == area
    # A link-layer address that is not 6 bytes is padded to 8-octet units.
    assert NdLinkAddress(1, h("aa bb")).encode() == h("01 01 aa bb  00 00 00 00")


def test_encode_does_not_mutate() -> None:
    message = NeighborSolicitation(B)
    message.encode(A, B)
    assert message.checksum is None


NS_HEAD = h("87 00 00 00  00 00 00 00") + bytes(16)

# (decoder, wire, offset, reason fragment)
ERROR_VECTORS = [
    pytest.param(decode_icmp6, b"", 0, "needs 4 bytes, got 0", id="empty"),
    pytest.param(decode_icmp6, h("80 00 00"), 0, "needs 8 bytes, got 3", id="short-echo"),
    pytest.param(decode_icmp6, h("02 00 00 00 00"), 0, "needs 8 bytes, got 5", id="short-error"),
    pytest.param(decode_icmp6, h("86 00") + bytes(10), 0, "needs 16 bytes, got 12", id="short-ra"),
    pytest.param(decode_icmp6, NS_HEAD[:20], 0, "needs 24 bytes, got 20", id="short-ns"),
    pytest.param(decode_icmp6, h("90 00"), 0, "needs 4 bytes, got 2", id="short-other"),
    pytest.param(decode_icmp6, NS_HEAD + h("01 00"), 25, "has length 0", id="nd-zero-len"),
    pytest.param(decode_icmp6, NS_HEAD + h("01 02") + bytes(6), 25, "overruns", id="nd-overrun"),
    pytest.param(decode_icmp6, NS_HEAD + h("01"), 24, "needs 2 bytes, got 1", id="nd-cut"),
    pytest.param(Icmp6Echo.decode, h("01 00 00 00  00 00 00 00"), 0, "not an echo", id="echo"),
    pytest.param(Icmp6Error.decode, h("80 00 00 00  00 00 00 00"), 0, "not an error", id="err"),
    pytest.param(RouterSolicitation.decode, NS_HEAD, 0, "type 135 is not 133", id="rs-type"),
]


@pytest.mark.parametrize(("decoder", "wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(
    decoder: Callable[..., object], wire: bytes, offset: int, reason: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decoder(wire)
    assert (info.value.layer, info.value.offset) == ("icmp6", offset)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Icmp6Echo(ECHO_REQUEST6 - 1, 0, 0), ValueError),
        (lambda: Icmp6Echo(ECHO_REQUEST6, 0x10000, 0), ValueError),
        (lambda: Icmp6Error(ECHO_REPLY6, 0, b""), ValueError),
        (lambda: Icmp6Error(PACKET_TOO_BIG, 0, b"", rest=1 << 32), ValueError),
        (lambda: NeighborSolicitation("10.0.0.1"), ValueError),
        (lambda: NeighborAdvertisement(B, router=1), TypeError),  # type: ignore[arg-type]
        (lambda: NeighborAdvertisement(B, reserved=1 << 29), ValueError),
        (lambda: RouterSolicitation((b"\x01\x01",)), TypeError),  # type: ignore[arg-type]
        (lambda: RouterAdvertisement(cur_hop_limit=256), ValueError),
        (lambda: NdLinkAddress(3, MAC_A), ValueError),
        (lambda: NdLinkAddress(1, b""), ValueError),
        (lambda: NdUnknownOption(9, bytes(5)), ValueError),
        (lambda: NdPrefixInfo("2001:db8::", prefix_length=256), ValueError),
        (lambda: Icmp6Message(256), ValueError),
        (lambda: Icmp6Echo.decode(b"", A), ValueError),
    ],
)
def test_api_misuse(build: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


nd_options = st.lists(
    st.one_of(
        st.builds(
            NdLinkAddress,
            st.sampled_from([ND_OPT_SOURCE_LINKADDR, ND_OPT_TARGET_LINKADDR]),
            st.integers(0, 2).map(lambda n: bytes(range(6 + 8 * n))),
        ),
        st.builds(NdPrefixInfo, ipv6_addresses, st.integers(0, 128), st.integers(0, 255), u32, u32),
        st.builds(NdMtu, u32, u16),
        st.builds(
            NdUnknownOption,
            st.integers(6, 255),
            st.integers(0, 2).map(lambda n: bytes(6 + 8 * n)),
        ),
    ),
    max_size=3,
).map(tuple)

messages = st.one_of(
    st.builds(
        Icmp6Echo,
        st.sampled_from([ECHO_REQUEST6, ECHO_REPLY6]),
        u16,
        u16,
        st.binary(max_size=64),
        st.integers(0, 255),
    ),
    st.builds(
        Icmp6Error,
        st.sampled_from(sorted(ERROR_TYPES6)),
        st.integers(0, 255),
        st.binary(max_size=64),
        u32,
    ),
    st.builds(RouterSolicitation, nd_options, u32),
    st.builds(
        RouterAdvertisement,
        st.integers(0, 255),
        st.integers(0, 255),
        u16,
        u32,
        u32,
        nd_options,
    ),
    st.builds(NeighborSolicitation, ipv6_addresses, nd_options, u32),
    st.builds(
        NeighborAdvertisement,
        ipv6_addresses,
        st.booleans(),
        st.booleans(),
        st.booleans(),
        nd_options,
        st.integers(0, (1 << 29) - 1),
    ),
    st.builds(
        Icmp6Message,
        st.integers(0, 255).filter(lambda t: t not in ERROR_TYPES6 and not 128 <= t <= 136),
        st.integers(0, 255),
        st.binary(max_size=64),
    ),
)


@settings(max_examples=300)
@given(messages, ipv6_addresses, ipv6_addresses)
def test_round_trip(message: Icmp6Packet, src: str, dst: str) -> None:
    wire = message.encode(src, dst)
    decoded = decode_icmp6(wire, src, dst)
    assert decoded == _with_checksum(message, decoded.checksum or 0)
    assert decoded.encode() == wire


@settings(max_examples=300)
@given(st.sampled_from([1, 2, 128, 133, 134, 135, 136, 200]), st.binary(max_size=60))
def test_fuzz_random_bytes(kind: int, rest: bytes) -> None:
    for data in (rest, bytes([kind]) + rest):
        try:
            message = decode_icmp6(data)
        except DecodeError:
            continue
        assert message.encode() == data
