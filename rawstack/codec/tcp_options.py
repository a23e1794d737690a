"""TCP options (RFC 9293 section 3.1 and 3.2; RFC 7323; RFC 2018).

Theory of operation: each option is a frozen dataclass with ``kind`` and ``encode()``.
Kinds 0 (end of option list) and 1 (no-operation) are one byte; every other option is
kind, length (counting both), data. :func:`decode_options` walks the options area and
stops at the end-of-list option: whatever follows it is padding, kept raw in
:class:`TcpPadding` so the segment re-encodes to the same bytes. A known kind with the
wrong length, or a length that runs past the options area, is a :class:`DecodeError`;
an unknown kind is kept as :class:`TcpUnknownOption`.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Union, get_args

from ._errors import DecodeError
from ._header import check_uint, frozen_bytes

__all__ = [
    "TcpEol",
    "TcpMss",
    "TcpNop",
    "TcpOption",
    "TcpPadding",
    "TcpSack",
    "TcpSackPermitted",
    "TcpTimestamps",
    "TcpUnknownOption",
    "TcpWindowScale",
    "decode_options",
    "encode_options",
]

LAYER = "tcp"


@dataclass(frozen=True)
class TcpEol:
    """End of option list (kind 0)."""

    kind: ClassVar[int] = 0

    def encode(self) -> bytes:
        return b"\x00"


@dataclass(frozen=True)
class TcpNop:
    """No-operation (kind 1), used to align the next option."""

    kind: ClassVar[int] = 1

    def encode(self) -> bytes:
        return b"\x01"


@dataclass(frozen=True)
class TcpMss:
    """Maximum segment size (kind 2, RFC 9293 section 3.7.1)."""

    mss: int
    kind: ClassVar[int] = 2

    def __post_init__(self) -> None:
        check_uint(LAYER, "mss", self.mss, 16)

    def encode(self) -> bytes:
        return struct.pack("!BBH", self.kind, 4, self.mss)


@dataclass(frozen=True)
class TcpWindowScale:
    """Window scale shift count (kind 3, RFC 7323 section 2)."""

    shift: int
    kind: ClassVar[int] = 3

    def __post_init__(self) -> None:
        # Any byte is kept: RFC 7323 section 2.3 has the receiver clamp shifts above 14.
        check_uint(LAYER, "shift", self.shift, 8)

    def encode(self) -> bytes:
        return struct.pack("!BBB", self.kind, 3, self.shift)


@dataclass(frozen=True)
class TcpSackPermitted:
    """SACK permitted (kind 4, RFC 2018 section 2)."""

    kind: ClassVar[int] = 4

    def encode(self) -> bytes:
        return b"\x04\x02"


@dataclass(frozen=True)
class TcpSack:
    """Selective acknowledgment blocks of (left edge, right edge) (kind 5, RFC 2018 3)."""

    blocks: tuple[tuple[int, int], ...]
    kind: ClassVar[int] = 5

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", tuple(tuple(block) for block in self.blocks))
        if not 1 <= len(self.blocks) <= 4:
            raise ValueError(f"{LAYER}: SACK carries 1 to 4 blocks, not {len(self.blocks)}")
        for block in self.blocks:
            if len(block) != 2:
                raise ValueError(f"{LAYER}: a SACK block is (left, right), not {block!r}")
            check_uint(LAYER, "SACK edge", block[0], 32)
            check_uint(LAYER, "SACK edge", block[1], 32)

    def encode(self) -> bytes:
        edges = [edge for block in self.blocks for edge in block]
        return struct.pack(f"!BB{len(edges)}I", self.kind, 2 + 4 * len(edges), *edges)


@dataclass(frozen=True)
class TcpTimestamps:
    """Timestamps TSval and TSecr (kind 8, RFC 7323 section 3)."""

    tsval: int
    tsecr: int = 0
    kind: ClassVar[int] = 8

    def __post_init__(self) -> None:
        check_uint(LAYER, "tsval", self.tsval, 32)
        check_uint(LAYER, "tsecr", self.tsecr, 32)

    def encode(self) -> bytes:
        return struct.pack("!BBII", self.kind, 10, self.tsval, self.tsecr)


@dataclass(frozen=True)
class TcpUnknownOption:
    """Any other kind, kept as raw data (the length byte is derived)."""

    kind: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint(LAYER, "option kind", self.kind, 8)
        if self.kind in (TcpEol.kind, TcpNop.kind):
            raise ValueError(f"{LAYER}: kind {self.kind} is a one-byte option; use TcpEol/TcpNop")
        frozen_bytes(self, LAYER, "data")
        if len(self.data) > 253:
            raise ValueError(f"{LAYER}: option data of {len(self.data)} bytes exceeds 253")

    def encode(self) -> bytes:
        return struct.pack("!BB", self.kind, 2 + len(self.data)) + self.data


@dataclass(frozen=True)
class TcpPadding:
    """The bytes after an end-of-list option (zeros when well formed), kept raw."""

    data: bytes
    kind: ClassVar[int] = -1  # not a wire kind

    def __post_init__(self) -> None:
        frozen_bytes(self, LAYER, "data")

    def encode(self) -> bytes:
        return self.data


TcpOption = Union[
    TcpEol,
    TcpNop,
    TcpMss,
    TcpWindowScale,
    TcpSackPermitted,
    TcpSack,
    TcpTimestamps,
    TcpUnknownOption,
    TcpPadding,
]
_OPTION_TYPES: tuple[type, ...] = get_args(TcpOption)  # the union's members, for isinstance


def encode_options(options: tuple[TcpOption, ...]) -> bytes:
    """Concatenate ``options`` and pad with zeros (end of list) to a 32-bit boundary."""
    for option in options:
        if not isinstance(option, _OPTION_TYPES):
            raise TypeError(f"{LAYER}: {option!r} is not a TCP option")
    raw = b"".join(option.encode() for option in options)
    return raw + b"\x00" * (-len(raw) % 4)


# Total option lengths (kind and length bytes included) that RFC 9293/7323/2018 fix.
_FIXED_LENGTHS = {
    TcpMss.kind: 4,
    TcpWindowScale.kind: 3,
    TcpSackPermitted.kind: 2,
    TcpTimestamps.kind: 10,
}
_NAMES = {
    TcpMss.kind: "MSS",
    TcpWindowScale.kind: "window scale",
    TcpSackPermitted.kind: "SACK-permitted",
    TcpTimestamps.kind: "timestamps",
}


def _walk(area: bytes, base: int) -> Iterator[TcpOption]:
    at = 0
    while at < len(area):
        kind = area[at]
        if kind == TcpEol.kind:
            yield TcpEol()
            if at + 1 < len(area):
                yield TcpPadding(area[at + 1 :])
            return
        if kind == TcpNop.kind:
            yield TcpNop()
            at += 1
            continue
        if at + 1 >= len(area):
            raise DecodeError(LAYER, base + at, f"option kind {kind} has no length byte")
        length = area[at + 1]
        if length < 2:
            raise DecodeError(
                LAYER, base + at + 1, f"option kind {kind} length {length} is below 2"
            )
        if at + length > len(area):
            raise DecodeError(
                LAYER,
                base + at + 1,
                f"option kind {kind} length {length} runs past the options area",
            )
        body = area[at + 2 : at + length]
        yield _parse_option(kind, length, body, base + at)
        at += length


def _parse_option(kind: int, length: int, body: bytes, offset: int) -> TcpOption:
    expected = _FIXED_LENGTHS.get(kind)
    if expected is not None and length != expected:
        raise DecodeError(
            LAYER, offset + 1, f"{_NAMES[kind]} option length {length}, expected {expected}"
        )
    if kind == TcpMss.kind:
        return TcpMss(struct.unpack("!H", body)[0])
    if kind == TcpWindowScale.kind:
        return TcpWindowScale(body[0])
    if kind == TcpSackPermitted.kind:
        return TcpSackPermitted()
    if kind == TcpTimestamps.kind:
        tsval, tsecr = struct.unpack("!II", body)
        return TcpTimestamps(tsval, tsecr)
    if kind == TcpSack.kind:
        if len(body) % 8 or not 1 <= len(body) // 8 <= 4:
            raise DecodeError(
                LAYER, offset + 1, f"SACK option length {length}, expected 10, 18, 26 or 34"
            )
        edges = struct.unpack(f"!{len(body) // 4}I", body)
        return TcpSack(tuple(zip(edges[0::2], edges[1::2])))
    return TcpUnknownOption(kind, body)


def decode_options(area: bytes, base: int = 0) -> tuple[TcpOption, ...]:
    """Parse an options area; ``base`` is its offset in the segment, for error offsets."""
    return tuple(_walk(area, base))
