"""IPv6 header and extension-header codec (RFC 8200 sections 3, 4; RFC 6564).

Theory of operation: :class:`IPv6` holds one packet as it is on the wire: the fixed
40-byte header, the chain of extension headers in order, and the upper-layer payload.
``next_header`` is the protocol of that upper layer (the value the last header of the
chain names); each extension header's own Next Header byte is derived from the one that
follows it when encoding, so a chain cannot be built inconsistent. ``encode()`` computes
the Payload Length (RFC 8200 section 3) when left ``None``.

``decode()`` walks the chain (section 4.1) through the four extension headers this
module knows (hop-by-hop options 0, routing 43, fragment 44, destination options 60);
any other Next Header value ends the chain and names the upper layer, whose bytes are the
payload. A fragment header with a non-zero offset ends the walk too: what follows it is
fragment data (section 4.5), so its Next Header is ``next_header`` and the rest is the
payload, unparsed (as for ESP). Everything is kept as received, option padding included, so
``IPv6.decode(x).encode() == x`` for any valid ``x`` without trailing bytes. Bytes after
the payload length are link-layer padding and are dropped. There is no header checksum:
upper layers cover the pseudo-header of :func:`pseudo_header` (section 8.1).

Options of the hop-by-hop and destination options headers are TLVs (section 4.2):
:class:`Ip6Option` keeps type and data; Pad1 is ``Ip6Option(0)`` (one byte, no length).
Encoding pads an unaligned option area to 8 octets with Pad1/PadN; a decoded one is
aligned already, so nothing is added.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, replace
from typing import ClassVar, TypeVar, Union

from ._errors import DecodeError
from ._header import (
    BytesLike,
    HeaderTable,
    as_bytes,
    check_optional_uint,
    check_uint,
    frozen_bytes,
)
from .checksum import checksum_add, checksum_finish

__all__ = [
    "EXT_DEST_OPTS",
    "EXT_FRAGMENT",
    "EXT_HOP_BY_HOP",
    "EXT_ROUTING",
    "HEADER_LEN",
    "NO_NEXT_HEADER",
    "OPT_PAD1",
    "OPT_PADN",
    "OPT_ROUTER_ALERT",
    "PROTO_ICMPV6",
    "DestOptions",
    "ExtensionHeader",
    "Fragment",
    "HopByHop",
    "IPv6",
    "Ip6Option",
    "Routing",
    "fragment6",
    "ip6_to_bytes",
    "ip6_to_str",
    "pseudo_header",
    "transport_checksum",
]

LAYER = "ipv6"

HEADER_LEN = 40
PROTO_ICMPV6 = 58  # RFC 4443 section 1
NO_NEXT_HEADER = 59  # RFC 8200 section 4.7
EXT_HOP_BY_HOP = 0
EXT_ROUTING = 43
EXT_FRAGMENT = 44
EXT_DEST_OPTS = 60

OPT_PAD1 = 0  # RFC 8200 section 4.2
OPT_PADN = 1
OPT_ROUTER_ALERT = 5  # RFC 2711

HEADER = HeaderTable(
    LAYER,
    (
        ("version_class_flow", "I", 6 << 28),
        ("payload_length", "H", 0),
        ("next_header", "B", NO_NEXT_HEADER),
        ("hop_limit", "B", 64),
        ("src", "16s", bytes(16)),
        ("dst", "16s", bytes(16)),
    ),
)
# Every extension header starts with Next Header and (but the fragment header) Hdr Ext Len.
EXT_PREFIX = HeaderTable(LAYER, (("next_header", "B", 0), ("ext_len", "B", 0)))
FRAGMENT = HeaderTable(
    LAYER,
    (
        ("next_header", "B", 0),
        ("reserved", "B", 0),
        ("offset_flags", "H", 0),  # offset (13 bits, 8-octet units), res (2 bits), M (1 bit)
        ("ident", "I", 0),
    ),
)
ROUTING = HeaderTable(
    LAYER,
    (
        ("next_header", "B", 0),
        ("ext_len", "B", 0),
        ("routing_type", "B", 0),
        ("segments_left", "B", 0),
    ),
)


def ip6_to_bytes(addr: str) -> bytes:
    """``"2001:db8::1"`` -> 16 bytes; anything but an IPv6 address text is a ValueError."""
    if not isinstance(addr, str):
        raise TypeError(f"{LAYER}: address must be a str, not {type(addr).__name__}")
    if "%" in addr:
        # A zone index (RFC 4007 section 11) names a local interface, not a wire address.
        raise ValueError(f"{LAYER}: bad address {addr!r}: a zone index is not part of it")
    try:
        return ipaddress.IPv6Address(addr).packed
    except ValueError as exc:
        raise ValueError(f"{LAYER}: bad address {addr!r}: {exc}") from None


def ip6_to_str(packed: BytesLike) -> str:
    """16 bytes -> the RFC 5952 text form (``"2001:db8::1"``)."""
    raw = as_bytes(LAYER, packed)
    if len(raw) != 16:
        raise ValueError(f"{LAYER}: an address is 16 bytes, not {len(raw)}")
    return str(ipaddress.IPv6Address(raw))


def pseudo_header(src: str, dst: str, proto: int, length: int) -> bytes:
    """The 40-byte pseudo-header upper-layer checksums cover (RFC 8200 section 8.1)."""
    check_uint(LAYER, "proto", proto, 8)
    check_uint(LAYER, "length", length, 32)
    return ip6_to_bytes(src) + ip6_to_bytes(dst) + struct.pack("!I3xB", length, proto)


def transport_checksum(src: str, dst: str, proto: int, segment: BytesLike) -> int:
    """The IPv6 pseudo-header checksum of an upper-layer ``segment`` (RFC 8200 8.1).

    ``dst`` is the final destination (the last routing-header address, section 8.1).
    With the checksum field zeroed this is the value to send; with the field as received
    it is 0 exactly when that checksum is right.
    """
    acc = checksum_add(pseudo_header(src, dst, proto, len(segment)))
    return checksum_finish(checksum_add(segment, acc))


@dataclass(frozen=True)
class Ip6Option:
    """One TLV option of a hop-by-hop or destination options header (RFC 8200 4.2).

    The two high bits of ``type`` say what a node that does not know it must do; the
    third says whether it may change en route. Pad1 (type 0) is a single byte.
    """

    type: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint(LAYER, "option type", self.type, 8)
        frozen_bytes(self, LAYER, "data")
        if self.type == OPT_PAD1 and self.data:
            raise ValueError(f"{LAYER}: Pad1 carries no data")
        if len(self.data) > 255:
            raise ValueError(f"{LAYER}: option data of {len(self.data)} bytes exceeds 255")

    def encode(self) -> bytes:
        """The option as on the wire."""
        if self.type == OPT_PAD1:
            return b"\x00"
        return bytes((self.type, len(self.data))) + self.data


def _pad_options(area: bytes) -> bytes:
    """``area`` (which follows the 2 prefix bytes) padded so the header is 8-octet aligned."""
    need = -(2 + len(area)) % 8
    if need == 1:
        return area + Ip6Option(OPT_PAD1).encode()
    if need:
        return area + Ip6Option(OPT_PADN, bytes(need - 2)).encode()
    return area


def _decode_options(area: bytes, base: int) -> tuple[Ip6Option, ...]:
    """Split an option area into TLVs; ``base`` is its offset for error reports."""
    options = []
    at = 0
    while at < len(area):
        kind = area[at]
        if kind == OPT_PAD1:
            options.append(Ip6Option(OPT_PAD1))
            at += 1
            continue
        if at + 2 > len(area):
            raise DecodeError(LAYER, base + at, f"option type {kind} has no length byte")
        length = area[at + 1]
        if at + 2 + length > len(area):
            raise DecodeError(
                LAYER,
                base + at + 1,
                f"option type {kind} length {length} overruns its header by "
                f"{at + 2 + length - len(area)} bytes",
            )
        options.append(Ip6Option(kind, area[at + 2 : at + 2 + length]))
        at += 2 + length
    return tuple(options)


@dataclass(frozen=True)
class _OptionsHeader:
    """What the hop-by-hop and destination options headers share (RFC 8200 4.3, 4.6)."""

    options: tuple[Ip6Option, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        for option in self.options:
            if not isinstance(option, Ip6Option):
                raise TypeError(f"{LAYER}: options must be Ip6Option, not {type(option).__name__}")
        if len(self.encode(0)) > 2048:
            raise ValueError(f"{LAYER}: options exceed the 2048 bytes Hdr Ext Len can count")

    def encode(self, next_header: int) -> bytes:
        area = _pad_options(b"".join(option.encode() for option in self.options))
        return bytes((next_header, (2 + len(area)) // 8 - 1)) + area


@dataclass(frozen=True)
class HopByHop(_OptionsHeader):
    """Hop-by-hop options (Next Header 0), examined by every node on the path (4.3)."""

    number: ClassVar[int] = EXT_HOP_BY_HOP


@dataclass(frozen=True)
class DestOptions(_OptionsHeader):
    """Destination options (Next Header 60), examined by the destination(s) (4.6)."""

    number: ClassVar[int] = EXT_DEST_OPTS


@dataclass(frozen=True)
class Routing:
    """A routing header (Next Header 43, RFC 8200 4.4), type-specific data kept as bytes.

    ``data`` is everything after the 4 fixed bytes: for types 0 (deprecated, RFC 5095)
    and 2 (RFC 6275) 4 reserved bytes then the addresses; see :meth:`addresses`.
    """

    routing_type: int
    segments_left: int
    data: bytes = bytes(4)

    number: ClassVar[int] = EXT_ROUTING

    def __post_init__(self) -> None:
        check_uint(LAYER, "routing_type", self.routing_type, 8)
        check_uint(LAYER, "segments_left", self.segments_left, 8)
        frozen_bytes(self, LAYER, "data")
        if (4 + len(self.data)) % 8 or len(self.data) > 2044:
            raise ValueError(
                f"{LAYER}: routing data must make the header a multiple of 8 bytes "
                f"(4 + 8n), not {len(self.data)}"
            )

    @classmethod
    def with_addresses(
        cls, addresses: tuple[str, ...], segments_left: int | None = None, routing_type: int = 0
    ) -> Routing:
        """A type 0/2 header listing ``addresses``; segments left defaults to all of them."""
        left = len(addresses) if segments_left is None else segments_left
        return cls(routing_type, left, bytes(4) + b"".join(ip6_to_bytes(a) for a in addresses))

    def addresses(self) -> tuple[str, ...]:
        """The address list of a type 0 or 2 header (after 4 reserved bytes)."""
        body = self.data[4:]
        return tuple(ip6_to_str(body[at : at + 16]) for at in range(0, len(body) - 15, 16))

    def encode(self, next_header: int) -> bytes:
        return (
            ROUTING.pack(
                next_header=next_header,
                ext_len=(4 + len(self.data)) // 8 - 1,
                routing_type=self.routing_type,
                segments_left=self.segments_left,
            )
            + self.data
        )


@dataclass(frozen=True)
class Fragment:
    """A fragment header (Next Header 44, RFC 8200 4.5): offset in 8-octet units."""

    offset: int
    more: bool
    ident: int
    reserved: int = 0  # the 8-bit reserved field, kept so a decoded header round-trips
    res: int = 0  # the 2-bit reserved field between offset and M

    number: ClassVar[int] = EXT_FRAGMENT

    def __post_init__(self) -> None:
        check_uint(LAYER, "offset", self.offset, 13)
        check_uint(LAYER, "ident", self.ident, 32)
        check_uint(LAYER, "reserved", self.reserved, 8)
        check_uint(LAYER, "res", self.res, 2)
        if not isinstance(self.more, bool):
            raise TypeError(f"{LAYER}: more must be a bool")

    @property
    def atomic(self) -> bool:
        """Offset 0 and no more fragments: a whole packet in one (RFC 6946)."""
        return self.offset == 0 and not self.more

    def encode(self, next_header: int) -> bytes:
        return FRAGMENT.pack(
            next_header=next_header,
            reserved=self.reserved,
            offset_flags=(self.offset << 3) | (self.res << 1) | int(self.more),
            ident=self.ident,
        )


ExtensionHeader = Union[HopByHop, Routing, Fragment, DestOptions]
_ExtT = TypeVar("_ExtT", HopByHop, Routing, Fragment, DestOptions)
EXTENSION_NUMBERS = frozenset({EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT, EXT_DEST_OPTS})


def _decode_extension(number: int, data: bytes, at: int) -> tuple[ExtensionHeader, int, int]:
    """The extension header ``number`` at ``at``: (header, its Next Header, its length)."""
    if number == EXT_FRAGMENT:
        fields = FRAGMENT.unpack(data, at)
        flags = fields["offset_flags"]
        fragment = Fragment(
            offset=flags >> 3,
            more=bool(flags & 1),
            ident=fields["ident"],
            reserved=fields["reserved"],
            res=(flags >> 1) & 3,
        )
        return fragment, fields["next_header"], FRAGMENT.size
    prefix = EXT_PREFIX.unpack(data, at)
    length = (prefix["ext_len"] + 1) * 8
    if at + length > len(data):
        raise DecodeError(
            LAYER,
            at + 1,
            f"extension header {number} of {length} bytes exceeds the payload "
            f"({len(data) - at} bytes left)",
        )
    header_bytes = data[at : at + length]
    header: ExtensionHeader
    if number == EXT_ROUTING:
        fields = ROUTING.unpack(header_bytes)
        header = Routing(fields["routing_type"], fields["segments_left"], header_bytes[4:])
    elif number == EXT_HOP_BY_HOP:
        header = HopByHop(_decode_options(header_bytes[2:], at + 2))
    else:
        header = DestOptions(_decode_options(header_bytes[2:], at + 2))
    return header, prefix["next_header"], length


@dataclass(frozen=True)
class IPv6:
    """One IPv6 packet; ``next_header`` is the upper layer after ``extensions``."""

    src: str
    dst: str
    next_header: int
    payload: bytes = b""
    hop_limit: int = 64
    traffic_class: int = 0
    flow_label: int = 0
    extensions: tuple[ExtensionHeader, ...] = ()
    payload_length: int | None = None

    def __post_init__(self) -> None:
        ip6_to_bytes(self.src)
        ip6_to_bytes(self.dst)
        check_uint(LAYER, "next_header", self.next_header, 8)
        check_uint(LAYER, "hop_limit", self.hop_limit, 8)
        check_uint(LAYER, "traffic_class", self.traffic_class, 8)
        check_uint(LAYER, "flow_label", self.flow_label, 20)
        check_optional_uint(LAYER, "payload_length", self.payload_length, 16)
        frozen_bytes(self, LAYER, "payload")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for header in self.extensions:
            if not isinstance(header, (HopByHop, Routing, Fragment, DestOptions)):
                raise TypeError(
                    f"{LAYER}: extensions must be extension headers, not {type(header).__name__}"
                )
        if (
            self.payload_length is None
            and len(self.encode_extensions()) + len(self.payload) > 0xFFFF
        ):
            raise ValueError(
                f"{LAYER}: payload of {len(self.payload)} bytes is too long "
                "(jumbograms, RFC 2675, are not supported)"
            )

    @property
    def first_header(self) -> int:
        """The Next Header value of the fixed header: the first extension, or the upper layer."""
        return self.extensions[0].number if self.extensions else self.next_header

    def extension(self, kind: type[_ExtT]) -> _ExtT | None:
        """The first extension header of class ``kind`` (e.g. ``Fragment``), or ``None``."""
        for header in self.extensions:
            if isinstance(header, kind):
                return header
        return None

    def encode_extensions(self) -> bytes:
        """The extension-header chain, each Next Header naming the one after it."""
        numbers = [header.number for header in self.extensions[1:]] + [self.next_header]
        return b"".join(header.encode(number) for header, number in zip(self.extensions, numbers))

    def encode_header(self) -> bytes:
        """The fixed 40-byte header, payload length filled in."""
        length = self.payload_length
        if length is None:
            length = len(self.encode_extensions()) + len(self.payload)
        return HEADER.pack(
            version_class_flow=(6 << 28) | (self.traffic_class << 20) | self.flow_label,
            payload_length=length,
            next_header=self.first_header,
            hop_limit=self.hop_limit,
            src=ip6_to_bytes(self.src),
            dst=ip6_to_bytes(self.dst),
        )

    def encode(self) -> bytes:
        """Fixed header, extension headers and payload, as on the wire."""
        return self.encode_header() + self.encode_extensions() + self.payload

    @classmethod
    def decode(cls, buf: BytesLike, *, allow_truncated: bool = False) -> IPv6:
        """Parse a packet, walking the extension chain to the upper layer.

        ``allow_truncated`` accepts a payload length beyond the buffer (the quoted packet
        inside an ICMPv6 error); an extension header cut off by the buffer is still an error.
        """
        data = as_bytes(LAYER, buf)
        if data and data[0] >> 4 != 6:
            raise DecodeError(LAYER, 0, f"version {data[0] >> 4} is not 6")
        fields = HEADER.unpack(data)
        length = fields["payload_length"]
        end = HEADER_LEN + length
        if end > len(data):
            if not allow_truncated:
                raise DecodeError(
                    LAYER,
                    HEADER.offsets["payload_length"],
                    f"payload length {length} exceeds the {len(data) - HEADER_LEN} bytes "
                    "after the header",
                )
            end = len(data)
        body = data[:end]
        extensions: list[ExtensionHeader] = []
        number = fields["next_header"]
        at = HEADER_LEN
        while number in EXTENSION_NUMBERS:
            header, number, size = _decode_extension(number, body, at)
            extensions.append(header)
            at += size
            if isinstance(header, Fragment) and header.offset:
                # A later fragment carries fragment data, not the headers its Next
                # Header names (RFC 8200 4.5): those are in the first fragment only.
                break
        flow = fields["version_class_flow"]
        return cls(
            src=ip6_to_str(fields["src"]),
            dst=ip6_to_str(fields["dst"]),
            next_header=number,
            payload=body[at:],
            hop_limit=fields["hop_limit"],
            traffic_class=(flow >> 20) & 0xFF,
            flow_label=flow & 0xFFFFF,
            extensions=tuple(extensions),
            payload_length=length,
        )


MIN_MTU = 1280  # RFC 8200 section 5: every link carries packets this large


def fragment6(packet: IPv6, mtu: int, ident: int) -> list[IPv6]:
    """``packet`` as fragments of at most ``mtu`` bytes each (itself if it fits), RFC 8200
    section 4.5: the unfragmentable part (the hop-by-hop header, and every header up to the
    last routing header) is repeated in each fragment, followed by a fragment header
    (identification ``ident``) and the next slice of the fragmentable part, a multiple of 8
    bytes in all but the last. Lengths are left for :meth:`IPv6.encode` to compute.

    ValueError when ``mtu`` leaves no room for 8 bytes of data, or the packet already
    carries a fragment header.
    """
    check_uint(LAYER, "ident", ident, 32)
    if len(packet.encode()) <= mtu:
        return [packet]
    if packet.extension(Fragment) is not None:
        raise ValueError(f"{LAYER}: the packet is a fragment already")
    # The unfragmentable part ends after the last routing header, or after hop-by-hop.
    cut = 0
    for n, header in enumerate(packet.extensions):
        if isinstance(header, (HopByHop, Routing)) or (
            isinstance(header, DestOptions)
            and any(isinstance(later, Routing) for later in packet.extensions[n + 1 :])
        ):
            cut = n + 1
    unfragmentable = packet.extensions[:cut]
    fragmentable = IPv6(
        packet.src,
        packet.dst,
        packet.next_header,
        packet.payload,
        extensions=packet.extensions[cut:],
    )
    # What follows the fragment header: the remaining extension headers and the payload.
    data = fragmentable.encode()[HEADER_LEN:]
    first = fragmentable.first_header
    overhead = HEADER_LEN + len(replace(packet, extensions=unfragmentable).encode_extensions())
    room = (mtu - overhead - FRAGMENT.size) // 8 * 8
    if room < 8:
        raise ValueError(f"{LAYER}: MTU {mtu} leaves no room for 8 data bytes per fragment")
    out = []
    for at in range(0, len(data), room):
        chunk = data[at : at + room]
        more = at + room < len(data)
        out.append(
            replace(
                packet,
                next_header=first,
                payload=chunk,
                extensions=(*unfragmentable, Fragment(at // 8, more, ident)),
                payload_length=None,
            )
        )
    return out
