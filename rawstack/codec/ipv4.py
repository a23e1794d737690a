"""IPv4 header codec (RFC 791 section 3.1).

Theory of operation: :class:`IPv4` holds one datagram as it is on the wire (network byte
order everywhere; the per-kernel raw-socket formats live in ``rawstack.quirks``).
``encode()`` computes the fields left ``None``: total length (header + options +
payload) and the header checksum (RFC 791 section 3.1, "Header Checksum"; RFC 1071).
``decode()`` keeps every field as received, including a wrong checksum, so
``IPv4.decode(x).encode() == x`` for any valid ``x`` without trailing bytes. Bytes after
the total length are link-layer padding and are dropped.

Fragment offset is kept in 8-octet units, as on the wire. Options are opaque bytes whose
length must be a multiple of 4 (the IHL counts 32-bit words).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ._errors import DecodeError
from ._header import (
    BytesLike,
    HeaderTable,
    as_bytes,
    check_optional_uint,
    check_uint,
    frozen_bytes,
)
from .checksum import (
    checksum_add,
    checksum_finish,
    checksum_mismatch,
    internet_checksum,
    splice_checksum,
)

__all__ = [
    "MAX_OPTIONS",
    "MIN_HEADER_LEN",
    "PROTO_ICMP",
    "PROTO_RAW",
    "PROTO_TCP",
    "PROTO_UDP",
    "IPv4",
    "ip_to_bytes",
    "ip_to_str",
    "pseudo_header",
    "transport_checksum",
]

LAYER = "ipv4"

# IANA protocol numbers (RFC 790 "Assigned Internet Protocol Numbers").
PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_RAW = 255

MIN_HEADER_LEN = 20
MAX_OPTIONS = 40  # the 4-bit IHL allows at most 15 words, 5 of them fixed

_FLAG_RESERVED = 0x8000
_FLAG_DF = 0x4000
_FLAG_MF = 0x2000
_FRAG_MASK = 0x1FFF

HEADER = HeaderTable(
    LAYER,
    (
        ("version_ihl", "B", 0x45),
        ("tos", "B", 0),
        ("total_length", "H", 0),
        ("ident", "H", 0),
        ("flags_frag", "H", 0),
        ("ttl", "B", 64),
        ("proto", "B", 0),
        ("checksum", "H", 0),
        ("src", "4s", b"\x00" * 4),
        ("dst", "4s", b"\x00" * 4),
    ),
)
_CHECKSUM_AT = HEADER.offsets["checksum"]


def ip_to_bytes(addr: str) -> bytes:
    """``"192.0.2.1"`` -> 4 bytes; anything but a strict dotted quad is a ValueError."""
    if not isinstance(addr, str):
        raise TypeError(f"{LAYER}: address must be a str, not {type(addr).__name__}")
    parts = addr.split(".")
    if len(parts) != 4:
        raise ValueError(f"{LAYER}: bad address {addr!r}: expected 4 dotted decimal octets")
    octets = []
    for part in parts:
        # isdecimal() also accepts non-ASCII digits; a wire address is plain ASCII.
        if not (part.isascii() and part.isdigit()) or len(part) > 3:
            raise ValueError(f"{LAYER}: bad address {addr!r}: octet {part!r} is not a number")
        if len(part) > 1 and part[0] == "0":
            # Leading zeros read as octal to inet_aton(3); refuse the ambiguity.
            raise ValueError(f"{LAYER}: bad address {addr!r}: octet {part!r} has a leading zero")
        value = int(part)
        if value > 255:
            raise ValueError(f"{LAYER}: bad address {addr!r}: octet {value} is out of range 0-255")
        octets.append(value)
    return bytes(octets)


def ip_to_str(packed: BytesLike) -> str:
    """4 bytes -> ``"192.0.2.1"``."""
    raw = as_bytes(LAYER, packed)
    if len(raw) != 4:
        raise ValueError(f"{LAYER}: an address is 4 bytes, not {len(raw)}")
    return ".".join(str(octet) for octet in raw)


def pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    """The 12-byte pseudo-header TCP and UDP checksums cover (RFC 9293 3.1, RFC 768)."""
    check_uint(LAYER, "proto", proto, 8)
    check_uint(LAYER, "length", length, 16)
    return ip_to_bytes(src) + ip_to_bytes(dst) + struct.pack("!BBH", 0, proto, length)


def transport_checksum(src: str, dst: str, proto: int, segment: BytesLike) -> int:
    """The pseudo-header checksum of a TCP/UDP ``segment`` (RFC 9293 3.1, RFC 768).

    With the segment's checksum field zeroed this is the value to send; with the field
    as received it is 0 exactly when that checksum is right.
    """
    acc = checksum_add(pseudo_header(src, dst, proto, len(segment)))
    return checksum_finish(checksum_add(segment, acc))


@dataclass(frozen=True)
class IPv4:
    """One IPv4 datagram; ``None`` lengths/checksums are computed by :meth:`encode`."""

    src: str
    dst: str
    proto: int
    payload: bytes = b""
    ttl: int = 64
    tos: int = 0
    ident: int = 0
    df: bool = False
    mf: bool = False
    frag_offset: int = 0
    options: bytes = b""
    total_length: int | None = None
    checksum: int | None = None
    reserved_flag: bool = False  # RFC 791's "must be zero" bit, kept so decode round-trips

    def __post_init__(self) -> None:
        ip_to_bytes(self.src)
        ip_to_bytes(self.dst)
        check_uint(LAYER, "proto", self.proto, 8)
        check_uint(LAYER, "ttl", self.ttl, 8)
        check_uint(LAYER, "tos", self.tos, 8)
        check_uint(LAYER, "ident", self.ident, 16)
        check_uint(LAYER, "frag_offset", self.frag_offset, 13)
        check_optional_uint(LAYER, "total_length", self.total_length, 16)
        check_optional_uint(LAYER, "checksum", self.checksum, 16)
        for flag in ("df", "mf", "reserved_flag"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{LAYER}: {flag} must be a bool")
        frozen_bytes(self, LAYER, "payload")
        frozen_bytes(self, LAYER, "options")
        if len(self.options) % 4 or len(self.options) > MAX_OPTIONS:
            raise ValueError(
                f"{LAYER}: options must be a multiple of 4 bytes, at most {MAX_OPTIONS}, "
                f"not {len(self.options)}"
            )
        if self.total_length is None and self.header_length + len(self.payload) > 0xFFFF:
            raise ValueError(f"{LAYER}: datagram of {len(self.payload)} payload bytes is too long")

    @property
    def header_length(self) -> int:
        """Header bytes including options (IHL * 4)."""
        return MIN_HEADER_LEN + len(self.options)

    @property
    def header_checksum_ok(self) -> bool:
        """True when the header's checksum (given or computed) verifies."""
        return internet_checksum(self.encode_header()) == 0

    def encode_header(self) -> bytes:
        """The header (with options) alone, lengths and checksum filled in."""
        total = self.total_length
        if total is None:
            total = self.header_length + len(self.payload)
        flags_frag = self.frag_offset
        flags_frag |= _FLAG_RESERVED if self.reserved_flag else 0
        flags_frag |= _FLAG_DF if self.df else 0
        flags_frag |= _FLAG_MF if self.mf else 0
        header = (
            HEADER.pack(
                version_ihl=0x40 | (self.header_length // 4),
                tos=self.tos,
                total_length=total,
                ident=self.ident,
                flags_frag=flags_frag,
                ttl=self.ttl,
                proto=self.proto,
                checksum=0,
                src=ip_to_bytes(self.src),
                dst=ip_to_bytes(self.dst),
            )
            + self.options
        )
        checksum = self.checksum
        if checksum is None:
            checksum = checksum_finish(checksum_add(header))
        return splice_checksum(header, _CHECKSUM_AT, checksum)

    def encode(self) -> bytes:
        """Header + payload, as on the wire."""
        return self.encode_header() + self.payload

    @classmethod
    def decode(cls, buf: BytesLike, *, verify: bool = False, allow_truncated: bool = False) -> IPv4:
        """Parse a datagram; ``verify`` checks the header checksum, ``allow_truncated``
        accepts a total length beyond the buffer (the quoted header inside ICMP errors)."""
        data = as_bytes(LAYER, buf)
        if data and data[0] >> 4 != 4:
            raise DecodeError(LAYER, 0, f"version {data[0] >> 4} is not 4")
        fields = HEADER.unpack(data)
        ihl = fields["version_ihl"] & 0x0F
        if ihl < 5:
            raise DecodeError(LAYER, 0, f"header length {ihl} words is below the minimum 5")
        header_len = ihl * 4
        if header_len > len(data):
            raise DecodeError(
                LAYER, 0, f"header length {header_len} exceeds buffer of {len(data)} bytes"
            )
        total = fields["total_length"]
        if total < header_len:
            raise DecodeError(
                LAYER, 2, f"total length {total} is less than header length {header_len}"
            )
        if total > len(data) and not allow_truncated:
            raise DecodeError(LAYER, 2, f"total length {total} exceeds buffer of {len(data)} bytes")
        if verify and internet_checksum(data[:header_len]) != 0:
            raise DecodeError(LAYER, _CHECKSUM_AT, _checksum_reason(data[:header_len]))
        flags_frag = fields["flags_frag"]
        return cls(
            src=ip_to_str(fields["src"]),
            dst=ip_to_str(fields["dst"]),
            proto=fields["proto"],
            payload=data[header_len:total],
            ttl=fields["ttl"],
            tos=fields["tos"],
            ident=fields["ident"],
            df=bool(flags_frag & _FLAG_DF),
            mf=bool(flags_frag & _FLAG_MF),
            frag_offset=flags_frag & _FRAG_MASK,
            options=data[MIN_HEADER_LEN:header_len],
            total_length=total,
            checksum=fields["checksum"],
            reserved_flag=bool(flags_frag & _FLAG_RESERVED),
        )


def _checksum_reason(header: bytes) -> str:
    wire = struct.unpack_from("!H", header, _CHECKSUM_AT)[0]
    expected = internet_checksum(splice_checksum(header, _CHECKSUM_AT, 0))
    return "header " + checksum_mismatch(wire, expected)
