"""CHAO v1: the link-layer request/reply protocol carried in EtherType 0x88B5.

Theory of operation: the CHAO message is the payload of an Ethernet frame (see
docs/chao.md for the spec and why a frame of ``CHAO`` + message with no Ethernet header
cannot cross a real link)::

    | 0 | 4 | magic "CHAO"            |
    | 4 | 1 | version = 1             |
    | 5 | 1 | type: 1 request 2 reply |
    | 6 | 2 | sequence (big-endian)   |
    | 8 | 2 | payload length n        |
    | 10| n | payload                 |

Bytes after ``10 + n`` are link padding (frames shorter than 60 bytes are padded) and are
dropped by ``decode()``; so ``Chao.decode(x).encode() == x[:10 + n]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import DecodeError
from ._header import BytesLike, HeaderTable, as_bytes, check_uint, frozen_bytes

__all__ = [
    "CHAO_REPLY",
    "CHAO_REQUEST",
    "CHAO_VERSION",
    "HEADER_LEN",
    "MAGIC",
    "MAX_PAYLOAD",
    "Chao",
    "max_payload",
]

LAYER = "chao"
MAGIC = b"CHAO"
CHAO_VERSION = 1
CHAO_REQUEST = 1
CHAO_REPLY = 2
_TYPES = (CHAO_REQUEST, CHAO_REPLY)

HEADER = HeaderTable(
    LAYER,
    (
        ("magic", "4s", MAGIC),
        ("version", "B", CHAO_VERSION),
        ("type", "B", CHAO_REQUEST),
        ("seq", "H", 0),
        ("length", "H", 0),
    ),
)
HEADER_LEN = HEADER.size
MAX_PAYLOAD = 0xFFFF  # what the 16-bit length field can say


def max_payload(mtu: int) -> int:
    """The largest payload that fits one frame on a link with this ``mtu``."""
    check_uint(LAYER, "mtu", mtu, 32)
    if mtu < HEADER_LEN:
        raise ValueError(f"{LAYER}: MTU {mtu} is smaller than the {HEADER_LEN}-byte header")
    return min(mtu - HEADER_LEN, MAX_PAYLOAD)


@dataclass(frozen=True)
class Chao:
    """One CHAO message."""

    type: int
    seq: int
    payload: bytes = b""
    version: int = CHAO_VERSION

    def __post_init__(self) -> None:
        if self.type not in _TYPES:
            raise ValueError(f"{LAYER}: type {self.type!r} is not 1 (request) or 2 (reply)")
        if self.version != CHAO_VERSION:
            raise ValueError(f"{LAYER}: version {self.version!r} is not {CHAO_VERSION}")
        check_uint(LAYER, "seq", self.seq, 16)
        frozen_bytes(self, LAYER, "payload")
        if len(self.payload) > MAX_PAYLOAD:
            raise ValueError(f"{LAYER}: payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")

    @classmethod
    def reply_to(cls, request: Chao, payload: bytes | None = None) -> Chao:
        """The reply to ``request``: same sequence, its payload echoed unless given."""
        if request.type != CHAO_REQUEST:
            raise ValueError(f"{LAYER}: can only reply to a request, not type {request.type}")
        return cls(CHAO_REPLY, request.seq, request.payload if payload is None else payload)

    def encode(self) -> bytes:
        """The EtherType 0x88B5 payload (no padding)."""
        return (
            HEADER.pack(
                version=self.version, type=self.type, seq=self.seq, length=len(self.payload)
            )
            + self.payload
        )

    @classmethod
    def decode(cls, buf: BytesLike) -> Chao:
        """Parse a message; bytes after the declared payload are ignored as padding."""
        data = as_bytes(LAYER, buf)
        fields = HEADER.unpack(data)
        if fields["magic"] != MAGIC:
            raise DecodeError(LAYER, 0, f"bad magic {fields['magic'].hex()}, expected 4348414f")
        if fields["version"] != CHAO_VERSION:
            raise DecodeError(
                LAYER, HEADER.offsets["version"], f"unknown version {fields['version']}"
            )
        if fields["type"] not in _TYPES:
            raise DecodeError(LAYER, HEADER.offsets["type"], f"unknown type {fields['type']}")
        length = fields["length"]
        if length > len(data) - HEADER_LEN:
            raise DecodeError(
                LAYER,
                HEADER.offsets["length"],
                f"payload length {length} exceeds the {len(data) - HEADER_LEN} bytes that follow",
            )
        return cls(
            type=fields["type"],
            seq=fields["seq"],
            payload=data[HEADER_LEN : HEADER_LEN + length],
            version=fields["version"],
        )
