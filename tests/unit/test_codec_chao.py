"""rawstack.codec.chao: the CHAO v1 wire format of docs/chao.md."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _strategies import h
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    BROADCAST_MAC,
    CHAO_REPLY,
    CHAO_REQUEST,
    ETH_P_CHAO,
    HEADER_LEN,
    MAGIC,
    Chao,
    DecodeError,
    Ethernet,
    max_payload,
)

HELLO = b"Hello, custom chao protocol!"

EMPTY_REPLY = h("43 48 41 4f  01 02 be ef  00 00")

# (message as built, wire bytes): the table in docs/chao.md, 32-bit rows.
VECTORS = [
    pytest.param(
        Chao(CHAO_REQUEST, 1, HELLO),
        h("""
            43 48 41 4f
            01 01 00 01
            00 1c 48 65
            6c 6c 6f 2c
            20 63 75 73
            74 6f 6d 20
            63 68 61 6f
            20 70 72 6f
            74 6f 63 6f
            6c 21
        """),
        id="hello-request",
    ),
    pytest.param(Chao(CHAO_REPLY, 0xBEEF), EMPTY_REPLY, id="empty-reply"),
]

# docs/chao.md's example frame: broadcast, from 02:00:00:00:00:01, before NIC padding.
DOC_FRAME = h("""
    ff ff ff ff ff ff 02 00 00 00 00 01 88 b5 43 48
    41 4f 01 01 00 01 00 1c 48 65 6c 6c 6f 2c 20 63
    75 73 74 6f 6d 20 63 68 61 6f 20 70 72 6f 74 6f
    63 6f 6c 21
""")


@pytest.mark.parametrize(("message", "wire"), VECTORS)
def test_encode_vector(message: Chao, wire: bytes) -> None:
    assert message.encode() == wire


@pytest.mark.parametrize(("message", "wire"), VECTORS)
def test_decode_vector(message: Chao, wire: bytes) -> None:
    assert Chao.decode(wire) == message


def test_the_documented_frame() -> None:
    frame = Ethernet.decode(DOC_FRAME + bytes(8))  # padded to 60 bytes by the NIC
    assert (frame.dst, frame.ethertype) == (BROADCAST_MAC, ETH_P_CHAO)
    assert Chao.decode(frame.payload) == Chao(CHAO_REQUEST, 1, HELLO)
    rebuilt = Ethernet(BROADCAST_MAC, frame.src, ETH_P_CHAO, Chao(CHAO_REQUEST, 1, HELLO).encode())
    assert rebuilt.encode() == DOC_FRAME


@pytest.mark.parametrize("padding", [b"", b"\x00", bytes(26), b"junk"])
def test_link_padding_is_ignored(padding: bytes) -> None:
    wire = EMPTY_REPLY
    assert Chao.decode(wire + padding).encode() == wire


def test_reply_to() -> None:
    request = Chao(CHAO_REQUEST, 7, b"ping")
    assert Chao.reply_to(request) == Chao(CHAO_REPLY, 7, b"ping")
    assert Chao.reply_to(request, b"pong") == Chao(CHAO_REPLY, 7, b"pong")
    with pytest.raises(ValueError, match="only reply to a request"):
        Chao.reply_to(Chao(CHAO_REPLY, 7))


def test_max_payload() -> None:
    assert max_payload(1500) == 1490
    assert max_payload(HEADER_LEN) == 0
    assert max_payload(70000) == 0xFFFF
    with pytest.raises(ValueError, match="smaller than"):
        max_payload(9)
    with pytest.raises(TypeError):
        max_payload("1500")  # type: ignore[arg-type]


def test_constants() -> None:
    assert (MAGIC, HEADER_LEN) == (b"CHAO", 10)


HEAD = h("43 48 41 4f 01 01 00 01")
ERROR_VECTORS = [
    pytest.param(b"", 0, "needs 10 bytes, got 0", id="empty"),
    pytest.param(HEAD + b"\x00", 0, "needs 10 bytes, got 9", id="short"),
    pytest.param(b"CHAP" + HEAD[4:] + h("00 00"), 0, "bad magic 43484150", id="magic"),
    pytest.param(b"CHAO\x02\x01\x00\x01\x00\x00", 4, "unknown version 2", id="version"),
    pytest.param(b"CHAO\x01\x03\x00\x01\x00\x00", 5, "unknown type 3", id="type"),
    pytest.param(b"CHAO\x01\x00\x00\x01\x00\x00", 5, "unknown type 0", id="type-0"),
    pytest.param(
        HEAD + h("00 05") + b"abcd", 8, "payload length 5 exceeds the 4 bytes", id="length"
    ),
]


@pytest.mark.parametrize(("wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(wire: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        Chao.decode(wire)
    assert (info.value.layer, info.value.offset) == ("chao", offset)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Chao(3, 0), ValueError),
        (lambda: Chao(CHAO_REQUEST, 0, version=2), ValueError),
        (lambda: Chao(CHAO_REQUEST, 0x10000), ValueError),
        (lambda: Chao(CHAO_REQUEST, 0, "text"), TypeError),  # type: ignore[arg-type]
        (lambda: Chao(CHAO_REQUEST, 0, bytes(0x10000)), ValueError),
    ],
)
def test_api_misuse(build: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


@settings(max_examples=200)
@given(st.sampled_from([CHAO_REQUEST, CHAO_REPLY]), st.integers(0, 0xFFFF), st.binary(max_size=100))
def test_round_trip(kind: int, seq: int, payload: bytes) -> None:
    message = Chao(kind, seq, payload)
    assert Chao.decode(message.encode()) == message


@settings(max_examples=200)
@given(st.binary(max_size=30), st.booleans())
def test_fuzz_random_bytes(data: bytes, with_magic: bool) -> None:
    if with_magic:
        data = MAGIC + data
    try:
        message = Chao.decode(data)
    except DecodeError:
        return
    assert data.startswith(message.encode())


@pytest.mark.parametrize(("message", "wire"), VECTORS)
def test_every_truncated_prefix_is_a_decode_error(message: Chao, wire: bytes) -> None:
    for end in range(len(wire)):
        with pytest.raises(DecodeError):
            Chao.decode(wire[:end])
