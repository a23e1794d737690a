"""rawstack.codec.udp: vectors, checksum rules of RFC 768, round trips, fuzz."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _strategies import addresses, h, u16
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import PROTO_UDP, DecodeError, Udp, transport_checksum

SRC, DST = "192.0.2.1", "192.0.2.2"

# 5353 -> 53 "query" between SRC and DST; wire bytes were produced by scapy 2.x.
QUERY = h("""
    14 e9 00 35
    00 0d 16 ca
    71 75 65 72
    79
""")


def test_encode_vector() -> None:
    assert Udp(5353, 53, b"query").encode(SRC, DST) == QUERY


def test_decode_vector() -> None:
    assert Udp.decode(QUERY, SRC, DST) == Udp(5353, 53, b"query", checksum=0x16CA)
    assert Udp.decode(QUERY).encode(SRC, DST) == QUERY


def _payload_with_zero_sum() -> bytes:
    """A payload that makes the computed checksum 0 between SRC and DST."""
    base = Udp(1, 2, b"\x00\x00").encode(SRC, DST)
    # Choose the 2 payload bytes so the ones' complement sum becomes 0xffff.
    needed = (~transport_checksum(SRC, DST, PROTO_UDP, base[:6] + b"\x00\x00" + base[8:])) & 0xFFFF
    return (0xFFFF - needed).to_bytes(2, "big") if needed else b"\xff\xff"


def test_a_computed_zero_is_sent_as_ffff() -> None:
    payload = _payload_with_zero_sum()
    zeroed = Udp(1, 2, payload, checksum=0).encode(SRC, DST)
    assert transport_checksum(SRC, DST, PROTO_UDP, zeroed) == 0
    wire = Udp(1, 2, payload).encode(SRC, DST)
    assert wire[6:8] == b"\xff\xff"
    assert Udp.decode(wire, SRC, DST).checksum == 0xFFFF


def test_zero_on_receive_means_no_checksum() -> None:
    wire = QUERY[:6] + b"\x00\x00" + QUERY[8:]
    assert Udp.decode(wire, SRC, DST).checksum == 0


def test_wrong_checksum_or_wrong_addresses_fail_verification() -> None:
    with pytest.raises(DecodeError) as info:
        Udp.decode(QUERY[:6] + b"\x12\x34" + QUERY[8:], SRC, DST)
    assert (info.value.offset, info.value.reason) == (
        6,
        "checksum 0x1234 does not match computed 0x16ca",
    )
    with pytest.raises(DecodeError, match="does not match"):
        Udp.decode(QUERY, SRC, "192.0.2.3")


def test_trailing_bytes_beyond_the_length_are_ignored() -> None:
    assert Udp.decode(QUERY + b"pad", SRC, DST).payload == b"query"


ERROR_VECTORS = [
    pytest.param(b"", 0, "needs 8 bytes, got 0", id="empty"),
    pytest.param(QUERY[:7], 0, "needs 8 bytes, got 7", id="short"),
    pytest.param(QUERY[:4] + h("00 07") + QUERY[6:], 4, "length 7 is below", id="len-7"),
    pytest.param(
        QUERY[:4] + h("00 0e") + QUERY[6:], 4, "length 14 exceeds buffer of 13", id="len-14"
    ),
    pytest.param(QUERY[:-1] + b"Y", 6, "checksum 0x16ca does not match", id="payload-changed"),
]


@pytest.mark.parametrize(("wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(wire: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        Udp.decode(wire, SRC, DST)
    assert (info.value.layer, info.value.offset) == ("udp", offset)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: Udp(-1, 2), ValueError),
        (lambda: Udp(1, 0x10000), ValueError),
        (lambda: Udp(1, 2, "x"), TypeError),  # type: ignore[arg-type]
        (lambda: Udp(1, 2, bytes(65528)), ValueError),
        (lambda: Udp(1, 2).encode("1.2.3.4", "1.2.3.256"), ValueError),
        (lambda: Udp.decode(QUERY, SRC), ValueError),
        (lambda: Udp.decode(QUERY, None, DST), ValueError),
    ],
)
def test_api_misuse(build: Callable[[], object], error: type[Exception]) -> None:
    with pytest.raises(error):
        build()


@settings(max_examples=200)
@given(u16, u16, st.binary(max_size=64), addresses, addresses)
def test_round_trip(sport: int, dport: int, payload: bytes, src: str, dst: str) -> None:
    wire = Udp(sport, dport, payload).encode(src, dst)
    decoded = Udp.decode(wire, src, dst)
    assert decoded == Udp(sport, dport, payload, checksum=decoded.checksum)
    assert decoded.checksum != 0
    assert decoded.encode(src, dst) == wire


@settings(max_examples=200)
@given(st.binary(max_size=30))
def test_fuzz_random_bytes(data: bytes) -> None:
    for addrs in ((None, None), (SRC, DST)):
        try:
            datagram = Udp.decode(data, *addrs)
        except DecodeError:
            continue
        assert data.startswith(datagram.encode(SRC, DST)[:6])


def test_every_truncated_prefix_is_a_decode_error() -> None:
    for end in range(len(QUERY)):
        with pytest.raises(DecodeError):
            Udp.decode(QUERY[:end])
