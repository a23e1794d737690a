"""ICMP message codec (RFC 792; RFC 1191 for the next-hop MTU).

Theory of operation: every ICMP message starts with type, code and a checksum over the
whole message (RFC 792, "Checksum"). What follows depends on the type, so there are
three shapes: :class:`IcmpEcho` (echo and echo reply: identifier, sequence, data),
:class:`IcmpError` (destination unreachable, source quench, redirect, time exceeded,
parameter problem: 4 type-specific bytes then the quoted "Internet Header + 64 bits of
Original Data Datagram") and :class:`IcmpMessage` for every other type.
:func:`decode_icmp` picks the shape from the type byte. A checksum left ``None`` is
computed by ``encode()``; decoding keeps the received checksum, and ``verify=True``
rejects a wrong one.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Union

from ._errors import DecodeError
from ._header import (
    BytesLike,
    HeaderTable,
    as_bytes,
    check_optional_uint,
    check_uint,
    frozen_bytes,
)
from .checksum import checksum_mismatch, internet_checksum, splice_checksum
from .ipv4 import IPv4

__all__ = [
    "DEST_UNREACH",
    "ECHO_REPLY",
    "ECHO_REQUEST",
    "ERROR_TYPES",
    "FRAG_NEEDED",
    "HOST_UNREACH",
    "NET_UNREACH",
    "PARAMETER_PROBLEM",
    "PORT_UNREACH",
    "PROTO_UNREACH",
    "REDIRECT",
    "SOURCE_QUENCH",
    "TIMESTAMP",
    "TIMESTAMP_REPLY",
    "TIME_EXCEEDED",
    "TTL_EXCEEDED",
    "IcmpEcho",
    "IcmpError",
    "IcmpMessage",
    "IcmpPacket",
    "decode_icmp",
]

LAYER = "icmp"

# Types (RFC 792).
ECHO_REPLY = 0
DEST_UNREACH = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAMETER_PROBLEM = 12
TIMESTAMP = 13
TIMESTAMP_REPLY = 14

# Destination-unreachable codes (RFC 792; 4 carries the next-hop MTU per RFC 1191).
NET_UNREACH = 0
HOST_UNREACH = 1
PROTO_UNREACH = 2
PORT_UNREACH = 3
FRAG_NEEDED = 4
# Time-exceeded code 0.
TTL_EXCEEDED = 0

ECHO_TYPES = frozenset({ECHO_REPLY, ECHO_REQUEST})
# The types whose body is 4 bytes then the quoted original datagram (RFC 792).
ERROR_TYPES = frozenset({DEST_UNREACH, SOURCE_QUENCH, REDIRECT, TIME_EXCEEDED, PARAMETER_PROBLEM})

ECHO_HEADER = HeaderTable(
    LAYER,
    (
        ("type", "B", ECHO_REQUEST),
        ("code", "B", 0),
        ("checksum", "H", 0),
        ("ident", "H", 0),
        ("seq", "H", 0),
    ),
)
ERROR_HEADER = HeaderTable(
    LAYER,
    (("type", "B", DEST_UNREACH), ("code", "B", 0), ("checksum", "H", 0), ("rest", "I", 0)),
)
BASE_HEADER = HeaderTable(LAYER, (("type", "B", 0), ("code", "B", 0), ("checksum", "H", 0)))
_CHECKSUM_AT = BASE_HEADER.offsets["checksum"]


def _with_checksum(message: bytes, checksum: int | None) -> bytes:
    """Splice ``checksum`` (or the computed one) into a message built with a zero field."""
    if checksum is None:
        checksum = internet_checksum(message)
    return splice_checksum(message, _CHECKSUM_AT, checksum)


def _unpack(
    buf: BytesLike,
    table: HeaderTable,
    verify: bool,
    allowed: frozenset[int] | None = None,
    what: str = "",
) -> tuple[bytes, dict[str, Any]]:
    """The message bytes and ``table``'s fields; the type is checked before the length."""
    data = as_bytes(LAYER, buf)
    if allowed is not None and data and data[0] not in allowed:
        raise DecodeError(LAYER, 0, f"type {data[0]} is not {what}")
    fields = table.unpack(data)
    if verify and internet_checksum(data) != 0:
        wire = struct.unpack_from("!H", data, _CHECKSUM_AT)[0]
        expected = internet_checksum(splice_checksum(data, _CHECKSUM_AT, 0))
        raise DecodeError(LAYER, _CHECKSUM_AT, checksum_mismatch(wire, expected))
    return data, fields


class _Message:
    """What the three message shapes share beyond their header tables."""

    def encode(self) -> bytes:
        raise NotImplementedError

    @property
    def checksum_ok(self) -> bool:
        """True when the checksum (given or computed) verifies."""
        return internet_checksum(self.encode()) == 0


@dataclass(frozen=True)
class IcmpEcho(_Message):
    """Echo request (type 8) or echo reply (type 0), RFC 792 page 14."""

    type: int
    ident: int
    seq: int
    payload: bytes = b""
    code: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if self.type not in ECHO_TYPES:
            raise ValueError(f"{LAYER}: type {self.type!r} is not an echo type (0 or 8)")
        check_uint(LAYER, "ident", self.ident, 16)
        check_uint(LAYER, "seq", self.seq, 16)
        check_uint(LAYER, "code", self.code, 8)
        check_optional_uint(LAYER, "checksum", self.checksum, 16)
        frozen_bytes(self, LAYER, "payload")

    def encode(self) -> bytes:
        """The message as on the wire."""
        body = (
            ECHO_HEADER.pack(type=self.type, code=self.code, ident=self.ident, seq=self.seq)
            + self.payload
        )
        return _with_checksum(body, self.checksum)

    def reply(self) -> IcmpEcho:
        """The echo reply to this request: same ident, seq and data (RFC 792 page 14)."""
        return IcmpEcho(ECHO_REPLY, self.ident, self.seq, self.payload)

    @classmethod
    def decode(cls, buf: BytesLike, *, verify: bool = False) -> IcmpEcho:
        """Parse an echo or echo reply."""
        data, fields = _unpack(buf, ECHO_HEADER, verify, ECHO_TYPES, "an echo type (0 or 8)")
        return cls(
            type=fields["type"],
            ident=fields["ident"],
            seq=fields["seq"],
            payload=data[ECHO_HEADER.size :],
            code=fields["code"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class IcmpError(_Message):
    """An error message quoting the datagram that caused it.

    ``rest`` is the 32-bit field after the checksum: unused (0) for most types, the
    pointer (high byte) for parameter problem, the gateway for redirect, and the
    next-hop MTU (low 16 bits) for "fragmentation needed" (RFC 1191 section 4).
    """

    type: int
    code: int
    quoted: bytes
    rest: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if self.type not in ERROR_TYPES:
            raise ValueError(
                f"{LAYER}: type {self.type!r} is not an error type {sorted(ERROR_TYPES)}"
            )
        check_uint(LAYER, "code", self.code, 8)
        check_uint(LAYER, "rest", self.rest, 32)
        check_optional_uint(LAYER, "checksum", self.checksum, 16)
        frozen_bytes(self, LAYER, "quoted")

    @property
    def next_hop_mtu(self) -> int:
        """The next-hop MTU of a "fragmentation needed" message (RFC 1191 section 4)."""
        return self.rest & 0xFFFF

    def quoted_ipv4(self) -> IPv4:
        """The quoted original datagram; its payload is the first bytes that were quoted.

        Raises :class:`DecodeError` (layer ``ipv4``) when the quote is not an IPv4 header.
        """
        return IPv4.decode(self.quoted, allow_truncated=True)

    def encode(self) -> bytes:
        """The message as on the wire."""
        body = ERROR_HEADER.pack(type=self.type, code=self.code, rest=self.rest) + self.quoted
        return _with_checksum(body, self.checksum)

    @classmethod
    def decode(cls, buf: BytesLike, *, verify: bool = False) -> IcmpError:
        """Parse an error message; the quote is kept as bytes (see :meth:`quoted_ipv4`)."""
        what = f"an error type {sorted(ERROR_TYPES)}"
        data, fields = _unpack(buf, ERROR_HEADER, verify, ERROR_TYPES, what)
        return cls(
            type=fields["type"],
            code=fields["code"],
            quoted=data[ERROR_HEADER.size :],
            rest=fields["rest"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class IcmpMessage(_Message):
    """Any other ICMP type: type, code, and the bytes after the checksum, uninterpreted."""

    type: int
    code: int = 0
    rest: bytes = b""
    checksum: int | None = None

    def __post_init__(self) -> None:
        check_uint(LAYER, "type", self.type, 8)
        check_uint(LAYER, "code", self.code, 8)
        check_optional_uint(LAYER, "checksum", self.checksum, 16)
        frozen_bytes(self, LAYER, "rest")

    def encode(self) -> bytes:
        """The message as on the wire."""
        body = BASE_HEADER.pack(type=self.type, code=self.code) + self.rest
        return _with_checksum(body, self.checksum)

    @classmethod
    def decode(cls, buf: BytesLike, *, verify: bool = False) -> IcmpMessage:
        """Parse any ICMP message without interpreting its body."""
        data, fields = _unpack(buf, BASE_HEADER, verify)
        return cls(
            type=fields["type"],
            code=fields["code"],
            rest=data[BASE_HEADER.size :],
            checksum=fields["checksum"],
        )


IcmpPacket = Union[IcmpEcho, IcmpError, IcmpMessage]


def decode_icmp(buf: BytesLike, *, verify: bool = False) -> IcmpPacket:
    """Decode ``buf`` into the shape its type byte calls for."""
    data = as_bytes(LAYER, buf)
    if not data:
        raise DecodeError(LAYER, 0, "truncated header: needs 4 bytes, got 0")
    if data[0] in ECHO_TYPES:
        return IcmpEcho.decode(data, verify=verify)
    if data[0] in ERROR_TYPES:
        return IcmpError.decode(data, verify=verify)
    return IcmpMessage.decode(data, verify=verify)
