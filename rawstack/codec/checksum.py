"""The internet checksum (RFC 1071), split into add and finish steps.

Theory of operation: the checksum is the ones' complement of the ones' complement sum of
16-bit big-endian words (RFC 1071 section 1). The sum is associative and commutative
(section 2 (A), (B)), so a caller accumulates any number of pieces with
:func:`checksum_add` (a pseudo-header is just another add) and folds and complements once
with :func:`checksum_finish`. An odd-length piece is padded with one zero octet
(section 1, step (2)); only the last piece may have odd length, since padding a middle
piece would shift every following word.

To verify, add the received bytes with their checksum field in place: the finished
result is 0 exactly when the checksum is right (section 1, step (3)).
"""

from __future__ import annotations

import struct
from typing import Union

_BytesLike = Union[bytes, bytearray, memoryview]


def checksum_add(data: _BytesLike, acc: int = 0) -> int:
    """Add ``data``'s 16-bit words to the running sum ``acc`` (unfolded) and return it."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"checksum: expected bytes, not {type(data).__name__}")
    if isinstance(acc, bool) or not isinstance(acc, int) or acc < 0:
        raise ValueError(f"checksum: accumulator must be a non-negative int, not {acc!r}")
    data = bytes(data)
    if len(data) % 2:
        data += b"\x00"
    words: tuple[int, ...] = struct.unpack(f"!{len(data) // 2}H", data)
    return acc + sum(words)


def checksum_finish(acc: int) -> int:
    """Fold the carries of ``acc`` into 16 bits and return the complement."""
    if isinstance(acc, bool) or not isinstance(acc, int) or acc < 0:
        raise ValueError(f"checksum: accumulator must be a non-negative int, not {acc!r}")
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return ~acc & 0xFFFF


def internet_checksum(data: _BytesLike) -> int:
    """The RFC 1071 checksum of ``data`` in one call."""
    return checksum_finish(checksum_add(data))


def splice_checksum(data: bytes, at: int, checksum: int) -> bytes:
    """A copy of ``data`` with the 16-bit big-endian field at ``at`` set to ``checksum``."""
    return data[:at] + struct.pack("!H", checksum) + data[at + 2 :]


def checksum_mismatch(wire: int, expected: int) -> str:
    """The decode-error reason for a received checksum that is not the computed one."""
    return f"checksum 0x{wire:04x} does not match computed 0x{expected:04x}"
