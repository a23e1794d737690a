"""rawstack.codec.ipv4: vectors both ways, error vectors, round trips, fuzz."""

from __future__ import annotations

import contextlib

import pytest
from _strategies import SEED_004, h, ipv4_packets
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    DecodeError,
    IPv4,
    ip_to_bytes,
    ip_to_str,
    pseudo_header,
)

# (packet as built, wire bytes); wire bytes were produced by scapy 2.x.
VECTORS = [
    pytest.param(
        IPv4("127.0.0.1", "127.0.0.1", PROTO_ICMP, h("08 00 f7 ff 00 00 00 00"), ident=11),
        SEED_004,
        id="seed-004-echo-request",
    ),
    pytest.param(
        IPv4(
            "192.0.2.1",
            "198.51.100.7",
            PROTO_UDP,
            b"abcd",
            ttl=1,
            tos=0xB8,
            ident=0x1234,
            df=True,
            options=h("94 04 00 00"),  # router alert (RFC 2113)
        ),
        h("""
            46 b8 00 1c
            12 34 40 00
            01 11 e5 a4
            c0 00 02 01
            c6 33 64 07
            94 04 00 00
            61 62 63 64
        """),
        id="options-df-tos",
    ),
    pytest.param(
        IPv4(
            "10.0.0.1",
            "10.0.0.2",
            PROTO_TCP,
            bytes(range(1, 9)),
            ttl=255,
            ident=7,
            mf=True,
            frag_offset=185,
        ),
        h("""
            45 00 00 1c
            00 07 20 b9
            ff 06 87 19
            0a 00 00 01
            0a 00 00 02
            01 02 03 04
            05 06 07 08
        """),
        id="fragment-mf-offset",
    ),
]


@pytest.mark.parametrize(("packet", "wire"), VECTORS)
def test_encode_vector(packet: IPv4, wire: bytes) -> None:
    assert packet.encode() == wire


@pytest.mark.parametrize(("packet", "wire"), VECTORS)
def test_decode_vector(packet: IPv4, wire: bytes) -> None:
    decoded = IPv4.decode(wire, verify=True)
    assert decoded.total_length == len(wire)
    assert decoded.checksum == int.from_bytes(wire[10:12], "big")
    assert decoded == IPv4(
        **{**packet.__dict__, "total_length": len(wire), "checksum": decoded.checksum}
    )
    assert decoded.header_checksum_ok
    assert decoded.encode() == wire


def test_seed_004_fields() -> None:
    ip = IPv4.decode(SEED_004)
    assert (ip.src, ip.dst, ip.proto, ip.ident, ip.ttl, ip.checksum) == (
        "127.0.0.1",
        "127.0.0.1",
        PROTO_ICMP,
        11,
        64,
        0x7CD4,
    )
    assert ip.header_length == 20


def test_link_padding_is_dropped() -> None:
    ip = IPv4.decode(SEED_004 + bytes(18))
    assert ip.encode() == SEED_004


def test_explicit_length_and_checksum_are_emitted_verbatim() -> None:
    wrong = IPv4("127.0.0.1", "127.0.0.1", PROTO_ICMP, total_length=0x1C00, checksum=0xBEEF)
    wire = wrong.encode()
    assert wire[2:4] == h("1c 00")
    assert wire[10:12] == h("be ef")
    assert not wrong.header_checksum_ok


def test_encode_does_not_mutate() -> None:
    packet = IPv4("10.0.0.1", "10.0.0.2", PROTO_UDP, b"x")
    packet.encode()
    assert packet.total_length is None
    assert packet.checksum is None


def test_decode_keeps_a_wrong_checksum_unless_verifying() -> None:
    bad = SEED_004[:10] + b"\x00\x00" + SEED_004[12:]
    assert IPv4.decode(bad).checksum == 0
    assert not IPv4.decode(bad).header_checksum_ok
    with pytest.raises(DecodeError) as info:
        IPv4.decode(bad, verify=True)
    assert info.value.offset == 10
    assert "does not match computed 0x7cd4" in info.value.reason


def test_allow_truncated_accepts_a_quoted_header() -> None:
    quoted = SEED_004[:24]  # the header plus 4 of the 8 payload bytes
    ip = IPv4.decode(quoted, allow_truncated=True)
    assert ip.total_length == 28
    assert ip.payload == SEED_004[20:24]
    assert ip.encode() == quoted


# (wire, offset, reason fragment)
ERROR_VECTORS = [
    pytest.param(b"", 0, "truncated header: needs 20 bytes, got 0", id="empty"),
    pytest.param(SEED_004[:19], 0, "needs 20 bytes, got 19", id="short-header"),
    pytest.param(b"\x60" + SEED_004[1:], 0, "version 6 is not 4", id="ipv6"),
    pytest.param(b"\x44" + SEED_004[1:], 0, "header length 4 words is below", id="ihl-4"),
    pytest.param(b"\x4f" + SEED_004[1:], 0, "header length 60 exceeds buffer of 28", id="ihl-15"),
    pytest.param(
        SEED_004[:2] + h("00 13") + SEED_004[4:], 2, "total length 19 is less than", id="len-19"
    ),
    pytest.param(
        SEED_004[:2] + h("1c 00") + SEED_004[4:],
        2,
        "total length 7168 exceeds buffer of 28 bytes",
        id="host-order-len",
    ),
]


@pytest.mark.parametrize(("wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(wire: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        IPv4.decode(wire)
    assert info.value.layer == "ipv4"
    assert info.value.offset == offset
    assert reason in info.value.reason
    assert str(info.value).startswith("ipv4: ")


def test_the_brief_s_example_message() -> None:
    wire = h("45 00 00 3c") + bytes(36)
    with pytest.raises(
        DecodeError, match=r"^ipv4: total length 60 exceeds buffer of 40 bytes at offset 2$"
    ):
        IPv4.decode(wire)


@pytest.mark.parametrize(
    ("addr", "reason"),
    [
        ("300.1.1.1", "octet 300 is out of range 0-255"),
        ("1.2.3", "expected 4 dotted decimal octets"),
        ("1.2.3.4.5", "expected 4 dotted decimal octets"),
        ("1.2.3.x", "'x' is not a number"),
        ("1.2.3.", "'' is not a number"),
        ("01.2.3.4", "leading zero"),
        ("1.2.3.-4", "not a number"),
        ("\uff11.2.3.4", "not a number"),  # a fullwidth digit one
        ("1.2.3.1234", "not a number"),
    ],
)
def test_bad_addresses(addr: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ip_to_bytes(addr)
    with pytest.raises(ValueError, match=reason):
        IPv4(addr, "127.0.0.1", PROTO_ICMP)


def test_address_round_trip() -> None:
    assert ip_to_bytes("192.0.2.255") == h("c0 00 02 ff")
    assert ip_to_str(h("c0 00 02 ff")) == "192.0.2.255"
    with pytest.raises(ValueError, match="4 bytes"):
        ip_to_str(b"\x01\x02\x03")
    with pytest.raises(TypeError):
        ip_to_bytes(b"\x01\x02\x03\x04")  # type: ignore[arg-type]


def test_pseudo_header() -> None:
    assert pseudo_header("192.0.2.1", "192.0.2.2", PROTO_UDP, 13) == h(
        "c0 00 02 01  c0 00 02 02  00 11 00 0d"
    )
    with pytest.raises(ValueError, match="length"):
        pseudo_header("192.0.2.1", "192.0.2.2", PROTO_UDP, 70000)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"ttl": 256}, ValueError),
        ({"ttl": -1}, ValueError),
        ({"proto": "icmp"}, TypeError),
        ({"frag_offset": 1 << 13}, ValueError),
        ({"df": 1}, TypeError),
        ({"options": b"\x01\x01\x01"}, ValueError),
        ({"options": bytes(44)}, ValueError),
        ({"payload": "text"}, TypeError),
        ({"checksum": 0x10000}, ValueError),
        ({"payload": bytes(65516)}, ValueError),
    ],
)
def test_api_misuse(kwargs: dict[str, object], error: type[Exception]) -> None:
    fields: dict[str, object] = {"src": "10.0.0.1", "dst": "10.0.0.2", "proto": PROTO_ICMP}
    fields.update(kwargs)
    with pytest.raises(error):
        IPv4(**fields)  # type: ignore[arg-type]


def test_bytearray_fields_become_bytes() -> None:
    packet = IPv4(
        "10.0.0.1",
        "10.0.0.2",
        PROTO_ICMP,
        bytearray(b"ab"),  # type: ignore[arg-type]
        options=bytearray(4),  # type: ignore[arg-type]
    )
    assert type(packet.payload) is bytes
    assert type(packet.options) is bytes
    hash(packet)


packets = ipv4_packets(
    proto=st.integers(0, 255),
    options=st.integers(0, 10).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n)),
    max_payload=64,
)


@settings(max_examples=200)
@given(packets)
def test_round_trip(packet: IPv4) -> None:
    wire = packet.encode()
    decoded = IPv4.decode(wire, verify=True)
    assert decoded.total_length == len(wire)
    assert decoded == IPv4(
        **{**packet.__dict__, "total_length": len(wire), "checksum": decoded.checksum}
    )
    assert decoded.encode() == wire


@settings(max_examples=200)
@given(st.binary(max_size=80))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        packet = IPv4.decode(data)
    except DecodeError:
        return
    assert packet.encode() == data[: packet.total_length]


@settings(max_examples=200)
@given(st.binary(min_size=1, max_size=60))
def test_fuzz_ipv4_looking_bytes(tail: bytes) -> None:
    # Random bytes rarely start with version 4; force it so the later checks get exercised.
    data = bytes([0x40 | (tail[0] & 0x0F)]) + tail[1:]
    for allow in (False, True):
        with contextlib.suppress(DecodeError):
            IPv4.decode(data, verify=True, allow_truncated=allow)


@pytest.mark.parametrize(("packet", "wire"), VECTORS)
def test_every_truncated_prefix_is_a_decode_error(packet: IPv4, wire: bytes) -> None:
    for end in range(len(wire)):
        with pytest.raises(DecodeError):
            IPv4.decode(wire[:end])
