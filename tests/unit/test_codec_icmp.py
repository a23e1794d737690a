"""rawstack.codec.icmp: echo, error and other messages; vectors, errors, round trips, fuzz."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _strategies import h, u16, u32
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    PROTO_UDP,
    TIME_EXCEEDED,
    DecodeError,
    IcmpEcho,
    IcmpError,
    IcmpMessage,
    IcmpPacket,
    decode_icmp,
)
from rawstack.codec.icmp import ERROR_TYPES, FRAG_NEEDED, PORT_UNREACH, TIMESTAMP

# An IPv4 header (10.0.0.2 -> 10.0.0.9, UDP) plus the first 8 bytes of its datagram,
# as an ICMP error quotes it (RFC 792).
QUOTED = h("""
    45 00 00 30
    00 01 00 00
    40 11 66 b2
    0a 00 00 02
    0a 00 00 09
    9c 40 82 9a
    00 1c 18 1c
""")

# (message as built, wire bytes); wire bytes were produced by scapy 2.x.
VECTORS = [
    pytest.param(IcmpEcho(ECHO_REQUEST, 0, 0), h("08 00 f7 ff  00 00 00 00"), id="seed-004"),
    pytest.param(
        IcmpEcho(ECHO_REPLY, 0x1234, 2, b"ping"),
        h("""
            00 00 0e f9
            12 34 00 02
            70 69 6e 67
        """),
        id="echo-reply",
    ),
    pytest.param(
        IcmpError(DEST_UNREACH, PORT_UNREACH, QUOTED),
        h("03 03 c5 e9  00 00 00 00") + QUOTED,
        id="port-unreachable",
    ),
    pytest.param(
        IcmpError(DEST_UNREACH, FRAG_NEEDED, QUOTED, rest=1400),
        h("03 04 c0 70  00 00 05 78") + QUOTED,
        id="frag-needed-mtu",
    ),
    pytest.param(
        IcmpMessage(TIMESTAMP, 0, h("00 01 00 02  00 00 00 03  00 00 00 04  00 00 00 05")),
        h("""
            0d 00 f2 f0
            00 01 00 02
            00 00 00 03
            00 00 00 04
            00 00 00 05
        """),
        id="timestamp",
    ),
]


def _with_checksum(message: IcmpPacket, checksum: int) -> IcmpPacket:
    return type(message)(**{**message.__dict__, "checksum": checksum})


@pytest.mark.parametrize(("message", "wire"), VECTORS)
def test_encode_vector(message: IcmpPacket, wire: bytes) -> None:
    assert message.encode() == wire
    assert message.checksum_ok


@pytest.mark.parametrize(("message", "wire"), VECTORS)
def test_decode_vector(message: IcmpPacket, wire: bytes) -> None:
    decoded = decode_icmp(wire, verify=True)
    assert decoded == _with_checksum(message, int.from_bytes(wire[2:4], "big"))
    assert type(decoded).decode(wire) == decoded
    assert decoded.encode() == wire


def test_quoted_ipv4_of_an_error() -> None:
    error = IcmpError.decode(h("03 03 c5 e9  00 00 00 00") + QUOTED)
    inner = error.quoted_ipv4()
    assert (inner.src, inner.dst, inner.proto, inner.total_length) == (
        "10.0.0.2",
        "10.0.0.9",
        PROTO_UDP,
        0x30,
    )
    assert inner.payload[:4] == h("9c 40 82 9a")  # the quoted UDP ports 40000 -> 33434


def test_quoted_garbage_is_an_ipv4_decode_error() -> None:
    with pytest.raises(DecodeError) as info:
        IcmpError(TIME_EXCEEDED, 0, b"\x60" + bytes(27)).quoted_ipv4()
    assert info.value.layer == "ipv4"


def test_next_hop_mtu() -> None:
    assert IcmpError(DEST_UNREACH, FRAG_NEEDED, QUOTED, rest=1400).next_hop_mtu == 1400


def test_reply_mirrors_the_request() -> None:
    request = IcmpEcho(ECHO_REQUEST, 7, 9, b"data", checksum=1)
    assert request.reply() == IcmpEcho(ECHO_REPLY, 7, 9, b"data")


def test_a_wrong_checksum_is_kept_or_rejected() -> None:
    wire = h("08 00 00 00  00 00 00 00")
    assert decode_icmp(wire).checksum == 0
    assert not decode_icmp(wire).checksum_ok
    with pytest.raises(DecodeError) as info:
        decode_icmp(wire, verify=True)
    assert info.value.offset == 2
    assert "does not match computed 0xf7ff" in info.value.reason


def test_encode_does_not_mutate() -> None:
    echo = IcmpEcho(ECHO_REQUEST, 1, 2)
    echo.encode()
    assert echo.checksum is None


# (decoder, wire, offset, reason fragment)
ERROR_VECTORS = [
    pytest.param(decode_icmp, b"", 0, "needs 4 bytes, got 0", id="empty"),
    pytest.param(decode_icmp, h("08 00 f7"), 0, "needs 8 bytes, got 3", id="short-echo"),
    pytest.param(decode_icmp, h("03 03 00 00 00"), 0, "needs 8 bytes, got 5", id="short-error"),
    pytest.param(decode_icmp, h("0d 00"), 0, "needs 4 bytes, got 2", id="short-other"),
    pytest.param(
        IcmpEcho.decode, h("03 03 00 00 00 00 00 00"), 0, "type 3 is not an echo", id="echo-type"
    ),
    pytest.param(
        IcmpError.decode, h("08 00 f7 ff 00 00 00 00"), 0, "type 8 is not an error", id="error-type"
    ),
    pytest.param(decode_icmp, h("0b 00 00 00 00 00 00 00"), 2, "does not match", id="checksum"),
]


@pytest.mark.parametrize(("decoder", "wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(
    decoder: Callable[..., object], wire: bytes, offset: int, reason: str
) -> None:
    with pytest.raises(DecodeError) as info:
        decoder(wire, verify=True)
    assert (info.value.layer, info.value.offset) == ("icmp", offset)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: IcmpEcho(DEST_UNREACH, 0, 0), ValueError),
        (lambda: IcmpEcho(ECHO_REQUEST, 0x10000, 0), ValueError),
        (lambda: IcmpEcho(ECHO_REQUEST, 0, 0, "text"), TypeError),  # type: ignore[arg-type]
        (lambda: IcmpError(ECHO_REPLY, 0, b""), ValueError),
        (lambda: IcmpError(DEST_UNREACH, 0, b"", rest=1 << 32), ValueError),
        (lambda: IcmpMessage(256), ValueError),
        (lambda: IcmpMessage(13, checksum=-1), ValueError),
    ],
)
def test_api_misuse(build: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


messages = st.one_of(
    st.builds(
        IcmpEcho,
        st.sampled_from([ECHO_REQUEST, ECHO_REPLY]),
        u16,
        u16,
        st.binary(max_size=64),
        st.integers(0, 255),
    ),
    st.builds(
        IcmpError,
        st.sampled_from(sorted(ERROR_TYPES)),
        st.integers(0, 255),
        st.binary(max_size=64),
        u32,
    ),
    st.builds(
        IcmpMessage,
        st.integers(0, 255).filter(lambda t: t not in ERROR_TYPES | {ECHO_REQUEST, ECHO_REPLY}),
        st.integers(0, 255),
        st.binary(max_size=64),
    ),
)


@settings(max_examples=200)
@given(messages)
def test_round_trip(message: IcmpPacket) -> None:
    wire = message.encode()
    decoded = decode_icmp(wire, verify=True)
    assert decoded == _with_checksum(message, decoded.checksum or 0)
    assert decoded.encode() == wire


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_fuzz_random_bytes(data: bytes) -> None:
    for verify in (False, True):
        try:
            message = decode_icmp(data, verify=verify)
        except DecodeError:
            continue
        assert message.encode() == data


@pytest.mark.parametrize(("message", "wire"), VECTORS)
def test_truncated_headers_are_decode_errors(message: IcmpPacket, wire: bytes) -> None:
    header_len = 4 if isinstance(message, IcmpMessage) else 8
    for end in range(header_len):
        with pytest.raises(DecodeError):
            decode_icmp(wire[:end])
