"""TCP segment codec (RFC 9293 section 3.1; options in :mod:`.tcp_options`).

Theory of operation: :class:`Tcp` holds one segment header with its options and data.
``encode(src, dst)`` computes the fields left ``None``: the data offset (header plus
options, padded to 32 bits with end-of-list zeros) and the checksum over the IPv4
pseudo-header, header and data (RFC 9293 section 3.1, "Checksum"), or the IPv6 one
(RFC 8200 section 8.1) when the addresses are IPv6. ``decode()`` keeps
every field as received, including the 4 reserved bits and option padding, so a decoded
segment re-encodes to the same bytes; with both addresses it also verifies the checksum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from ._errors import DecodeError
from ._header import (
    BytesLike,
    HeaderTable,
    as_bytes,
    check_optional_uint,
    check_uint,
    frozen_bytes,
)
from ._transport import transport_checksum
from .checksum import checksum_mismatch, splice_checksum
from .ipv4 import PROTO_TCP
from .tcp_options import TcpOption, decode_options, encode_options

__all__ = [
    "ACK",
    "CWR",
    "ECE",
    "FIN",
    "PSH",
    "RST",
    "SYN",
    "TCP_HEADER_LEN",
    "URG",
    "Tcp",
    "flag_names",
]

LAYER = "tcp"

# Control bits (RFC 9293 section 3.1; ECE and CWR from RFC 3168).
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80
_FLAG_NAMES = (
    (CWR, "CWR"),
    (ECE, "ECE"),
    (URG, "URG"),
    (ACK, "ACK"),
    (PSH, "PSH"),
    (RST, "RST"),
    (SYN, "SYN"),
    (FIN, "FIN"),
)

HEADER = HeaderTable(
    LAYER,
    (
        ("src_port", "H", 0),
        ("dst_port", "H", 0),
        ("seq", "I", 0),
        ("ack", "I", 0),
        ("offset_reserved", "B", 0x50),  # data offset (4 bits), reserved (4 bits)
        ("flags", "B", SYN),
        ("window", "H", 65535),
        ("checksum", "H", 0),
        ("urgent", "H", 0),
    ),
)
TCP_HEADER_LEN = HEADER.size
MAX_OPTIONS = 40
_CHECKSUM_AT = HEADER.offsets["checksum"]
_OFFSET_AT = HEADER.offsets["offset_reserved"]

_OptionT = TypeVar("_OptionT")


def flag_names(flags: int) -> str:
    """``SYN|ACK`` -> ``"SYN,ACK"`` (most significant bit first), for logs."""
    check_uint(LAYER, "flags", flags, 8)
    return ",".join(name for bit, name in _FLAG_NAMES if flags & bit)


@dataclass(frozen=True)
class Tcp:
    """One TCP segment; ``None`` data offset and checksum are computed by :meth:`encode`."""

    src_port: int
    dst_port: int
    seq: int
    ack: int = 0
    flags: int = SYN
    window: int = 65535
    options: tuple[TcpOption, ...] = ()
    urgent: int = 0
    payload: bytes = b""
    checksum: int | None = None
    data_offset: int | None = None  # in 32-bit words, as on the wire
    reserved: int = 0  # the 4 reserved bits, kept so a decoded segment round-trips

    def __post_init__(self) -> None:
        check_uint(LAYER, "src_port", self.src_port, 16)
        check_uint(LAYER, "dst_port", self.dst_port, 16)
        check_uint(LAYER, "seq", self.seq, 32)
        check_uint(LAYER, "ack", self.ack, 32)
        check_uint(LAYER, "flags", self.flags, 8)
        check_uint(LAYER, "window", self.window, 16)
        check_uint(LAYER, "urgent", self.urgent, 16)
        check_uint(LAYER, "reserved", self.reserved, 4)
        check_optional_uint(LAYER, "checksum", self.checksum, 16)
        check_optional_uint(LAYER, "data_offset", self.data_offset, 4)
        frozen_bytes(self, LAYER, "payload")
        object.__setattr__(self, "options", tuple(self.options))
        options_len = len(self.options_bytes())
        if options_len > MAX_OPTIONS:
            raise ValueError(f"{LAYER}: options take {options_len} bytes, at most {MAX_OPTIONS}")

    def options_bytes(self) -> bytes:
        """The options area as encoded: options then zero padding to 32 bits."""
        return encode_options(self.options)

    def option(self, kind: type[_OptionT]) -> _OptionT | None:
        """The first option of class ``kind`` (e.g. ``TcpMss``), or ``None``."""
        for option in self.options:
            if isinstance(option, kind):
                return option
        return None

    def encode(self, src: str, dst: str) -> bytes:
        """The segment between IP addresses ``src`` and ``dst`` (IPv4 or IPv6)."""
        options = self.options_bytes()
        data_offset = self.data_offset
        if data_offset is None:
            data_offset = (TCP_HEADER_LEN + len(options)) // 4
        segment = (
            HEADER.pack(
                src_port=self.src_port,
                dst_port=self.dst_port,
                seq=self.seq,
                ack=self.ack,
                offset_reserved=(data_offset << 4) | self.reserved,
                flags=self.flags,
                window=self.window,
                checksum=0,
                urgent=self.urgent,
            )
            + options
            + self.payload
        )
        checksum = self.checksum
        if checksum is None:
            checksum = transport_checksum(src, dst, PROTO_TCP, segment)
        return splice_checksum(segment, _CHECKSUM_AT, checksum)

    @classmethod
    def decode(cls, buf: BytesLike, src: str | None = None, dst: str | None = None) -> Tcp:
        """Parse a segment; with both addresses, a wrong checksum is a DecodeError."""
        if (src is None) != (dst is None):
            raise ValueError(f"{LAYER}: give both src and dst to verify the checksum, or neither")
        data = as_bytes(LAYER, buf)
        fields = HEADER.unpack(data)
        data_offset = fields["offset_reserved"] >> 4
        header_len = data_offset * 4
        if data_offset < 5:
            raise DecodeError(
                LAYER, _OFFSET_AT, f"data offset {data_offset} words is below the minimum 5"
            )
        if header_len > len(data):
            raise DecodeError(
                LAYER, _OFFSET_AT, f"data offset {header_len} bytes exceeds buffer of {len(data)}"
            )
        options = decode_options(data[TCP_HEADER_LEN:header_len], TCP_HEADER_LEN)
        wire = fields["checksum"]
        # A right checksum makes the sum over everything 0 (RFC 1071 section 1 (3)).
        if src is not None and dst is not None and transport_checksum(src, dst, PROTO_TCP, data):
            zeroed = splice_checksum(data, _CHECKSUM_AT, 0)
            expected = transport_checksum(src, dst, PROTO_TCP, zeroed)
            raise DecodeError(LAYER, _CHECKSUM_AT, checksum_mismatch(wire, expected))
        return cls(
            src_port=fields["src_port"],
            dst_port=fields["dst_port"],
            seq=fields["seq"],
            ack=fields["ack"],
            flags=fields["flags"],
            window=fields["window"],
            options=options,
            urgent=fields["urgent"],
            payload=data[header_len:],
            checksum=wire,
            data_offset=data_offset,
            reserved=fields["offset_reserved"] & 0x0F,
        )
