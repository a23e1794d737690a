"""rawstack.codec.checksum against RFC 1071 and a naive reference."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import checksum_add, checksum_finish, internet_checksum


def _reference(data: bytes) -> int:
    """Word-by-word ones' complement sum, written the slow obvious way."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += (data[i] << 8) | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# (data, checksum): RFC 1071 section 3's worked example, the seed-004 IPv4 header,
# and the degenerate cases.
VECTORS = [
    (bytes.fromhex("0001 f203 f4f5 f6f7"), 0x220D),
    (bytes.fromhex("4500 001c 000b 0000 4001 0000 7f00 0001 7f00 0001"), 0x7CD4),
    (bytes.fromhex("4500 1c00 000b 0000 4001 0000 7f00 0001 7f00 0001"), 0x60F0),
    (b"", 0xFFFF),
    (b"\xff\xff", 0x0000),
    (b"\x01", 0xFEFF),  # an odd byte is the high half of a zero-padded word
]


@pytest.mark.parametrize(("data", "expected"), VECTORS)
def test_vectors(data: bytes, expected: int) -> None:
    assert internet_checksum(data) == expected
    assert _reference(data) == expected


def test_rfc1071_unfolded_sum() -> None:
    # RFC 1071 section 3: the words sum to 2ddf0, which folds to ddf2.
    assert checksum_add(bytes.fromhex("0001 f203 f4f5 f6f7")) == 0x2DDF0


def test_a_message_with_its_checksum_in_place_verifies_to_zero() -> None:
    header = bytearray.fromhex("4500 001c 000b 0000 4001 0000 7f00 0001 7f00 0001")
    header[10:12] = internet_checksum(header).to_bytes(2, "big")
    assert internet_checksum(header) == 0


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_matches_reference(data: bytes) -> None:
    assert internet_checksum(data) == _reference(data)


@settings(max_examples=200)
@given(st.binary(max_size=100).map(lambda b: b[: len(b) & ~1]), st.binary(max_size=100))
def test_pieces_add_up_when_all_but_the_last_are_even(first: bytes, second: bytes) -> None:
    assert checksum_finish(checksum_add(second, checksum_add(first))) == internet_checksum(
        first + second
    )


def test_accepts_bytes_like() -> None:
    assert internet_checksum(bytearray(b"\x00\x01")) == internet_checksum(memoryview(b"\x00\x01"))


@pytest.mark.parametrize("bad", ["abc", 5, None])
def test_rejects_non_bytes(bad: object) -> None:
    with pytest.raises(TypeError):
        checksum_add(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("acc", [-1, True, 1.5])
def test_rejects_bad_accumulator(acc: object) -> None:
    with pytest.raises(ValueError, match="accumulator"):
        checksum_add(b"", acc)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="accumulator"):
        checksum_finish(acc)  # type: ignore[arg-type]
