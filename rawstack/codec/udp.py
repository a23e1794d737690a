"""UDP datagram codec (RFC 768).

Theory of operation: 8 bytes of header (ports, length, checksum) then data. The checksum
covers the pseudo-header (IPv4: source, destination, zero, protocol 17, UDP length, RFC
768 "Fields"; IPv6: RFC 8200 section 8.1), the header and the data, so
``encode(src, dst)`` needs the addresses, of either family. A computed checksum of 0 is
sent as 0xFFFF because 0 on the wire means "no checksum" (RFC 768; RFC 1122 section
4.1.3.4). ``decode(buf, src, dst)`` verifies the checksum when both addresses are given,
accepting 0 as "none" over IPv4 only: over IPv6 the checksum is mandatory (RFC 8200
section 8.1, "unlike IPv4"). The length field must fit the buffer; bytes beyond it are
ignored.
"""

from __future__ import annotations

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
from ._transport import is_ipv6, transport_checksum
from .checksum import checksum_mismatch, splice_checksum
from .ipv4 import PROTO_UDP

__all__ = ["UDP_HEADER_LEN", "Udp"]

LAYER = "udp"

HEADER = HeaderTable(
    LAYER,
    (("src_port", "H", 0), ("dst_port", "H", 0), ("length", "H", 0), ("checksum", "H", 0)),
)
UDP_HEADER_LEN = HEADER.size
_CHECKSUM_AT = HEADER.offsets["checksum"]


@dataclass(frozen=True)
class Udp:
    """One UDP datagram; ``checksum=None`` means computed by :meth:`encode`."""

    src_port: int
    dst_port: int
    payload: bytes = b""
    checksum: int | None = None

    def __post_init__(self) -> None:
        check_uint(LAYER, "src_port", self.src_port, 16)
        check_uint(LAYER, "dst_port", self.dst_port, 16)
        check_optional_uint(LAYER, "checksum", self.checksum, 16)
        frozen_bytes(self, LAYER, "payload")
        if UDP_HEADER_LEN + len(self.payload) > 0xFFFF:
            raise ValueError(f"{LAYER}: payload of {len(self.payload)} bytes is too long")

    def encode(self, src: str, dst: str) -> bytes:
        """The datagram between IP addresses ``src`` and ``dst`` (IPv4 or IPv6)."""
        datagram = (
            HEADER.pack(
                src_port=self.src_port,
                dst_port=self.dst_port,
                length=UDP_HEADER_LEN + len(self.payload),
                checksum=0,
            )
            + self.payload
        )
        checksum = self.checksum
        if checksum is None:
            checksum = transport_checksum(src, dst, PROTO_UDP, datagram) or 0xFFFF
        return splice_checksum(datagram, _CHECKSUM_AT, checksum)

    @classmethod
    def decode(cls, buf: BytesLike, src: str | None = None, dst: str | None = None) -> Udp:
        """Parse a datagram; with both addresses, a wrong checksum is a DecodeError."""
        if (src is None) != (dst is None):
            raise ValueError(f"{LAYER}: give both src and dst to verify the checksum, or neither")
        data = as_bytes(LAYER, buf)
        fields = HEADER.unpack(data)
        length = fields["length"]
        if length < UDP_HEADER_LEN:
            raise DecodeError(
                LAYER, HEADER.offsets["length"], f"length {length} is below the header size 8"
            )
        if length > len(data):
            raise DecodeError(
                LAYER,
                HEADER.offsets["length"],
                f"length {length} exceeds buffer of {len(data)} bytes",
            )
        data = data[:length]
        wire = fields["checksum"]
        # 0 means the sender computed no checksum (RFC 768), which IPv6 forbids (RFC 8200
        # 8.1). A right checksum makes the sum over everything 0 (RFC 1071 section 1 (3)).
        if (
            src is not None
            and dst is not None
            and (wire != 0 or is_ipv6(src))
            and transport_checksum(src, dst, PROTO_UDP, data) != 0
        ):
            zeroed = splice_checksum(data, _CHECKSUM_AT, 0)
            expected = transport_checksum(src, dst, PROTO_UDP, zeroed) or 0xFFFF
            raise DecodeError(LAYER, _CHECKSUM_AT, checksum_mismatch(wire, expected))
        return cls(
            src_port=fields["src_port"],
            dst_port=fields["dst_port"],
            payload=data[UDP_HEADER_LEN:],
            checksum=wire,
        )
