"""ICMPv6 codec (RFC 4443) with Neighbor Discovery messages and options (RFC 4861).

Theory of operation: every ICMPv6 message starts with type, code and a checksum over the
IPv6 pseudo-header and the whole message (RFC 4443 section 2.3), so ``encode(src, dst)``
needs the addresses; ``checksum=0`` with no addresses leaves the field for the kernel,
which computes it on every raw ICMPv6 socket (RFC 3542 section 3.1). The body depends
on the type, so there are shapes:

- :class:`Icmp6Echo`: echo request 128 / reply 129 (RFC 4443 4.1, 4.2).
- :class:`Icmp6Error`: destination unreachable 1, packet too big 2 (the MTU), time
  exceeded 3, parameter problem 4 (the pointer): 4 bytes then as much of the invoking
  packet as fits in the minimum MTU (RFC 4443 3.1-3.4).
- Neighbor Discovery (RFC 4861 section 4): :class:`RouterSolicitation`,
  :class:`RouterAdvertisement`, :class:`NeighborSolicitation`,
  :class:`NeighborAdvertisement`, each with a tuple of options (section 4.6):
  :class:`NdLinkAddress` (source/target link-layer address), :class:`NdPrefixInfo`,
  :class:`NdMtu`, and :class:`NdUnknownOption` for any other type.
- :class:`Icmp6Message`: any other type, body uninterpreted.

:func:`decode_icmp6` picks the shape from the type byte. Decoding keeps the received
checksum and every reserved field, so a decoded message re-encodes to the same bytes;
with both addresses it also verifies the checksum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from ._errors import DecodeError
from ._header import (
    BytesLike,
    HeaderTable,
    as_bytes,
    check_optional_uint,
    check_uint,
    frozen_bytes,
)
from .checksum import checksum_mismatch, splice_checksum
from .ipv6 import PROTO_ICMPV6, IPv6, ip6_to_bytes, ip6_to_str, transport_checksum

__all__ = [
    "DEST_UNREACH6",
    "ECHO_REPLY6",
    "ECHO_REQUEST6",
    "ERROR_TYPES6",
    "ND_OPT_MTU",
    "ND_OPT_PREFIX_INFO",
    "ND_OPT_SOURCE_LINKADDR",
    "ND_OPT_TARGET_LINKADDR",
    "NEIGHBOR_ADVERT",
    "NEIGHBOR_SOLICIT",
    "PACKET_TOO_BIG",
    "PARAM_PROBLEM6",
    "ROUTER_ADVERT",
    "ROUTER_SOLICIT",
    "TIME_EXCEEDED6",
    "Icmp6Echo",
    "Icmp6Error",
    "Icmp6Message",
    "Icmp6Packet",
    "NdLinkAddress",
    "NdMtu",
    "NdOption",
    "NdPrefixInfo",
    "NdUnknownOption",
    "NeighborAdvertisement",
    "NeighborSolicitation",
    "RouterAdvertisement",
    "RouterSolicitation",
    "decode_icmp6",
    "decode_nd_options",
]

LAYER = "icmp6"

# Types (RFC 4443 section 2.1, RFC 4861 section 4).
DEST_UNREACH6 = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED6 = 3
PARAM_PROBLEM6 = 4
ECHO_REQUEST6 = 128
ECHO_REPLY6 = 129
ROUTER_SOLICIT = 133
ROUTER_ADVERT = 134
NEIGHBOR_SOLICIT = 135
NEIGHBOR_ADVERT = 136

# Destination-unreachable codes (RFC 4443 3.1); time-exceeded code 0 is the hop limit.
NO_ROUTE = 0
ADMIN_PROHIBITED = 1
ADDR_UNREACH = 3
PORT_UNREACH6 = 4
HOP_LIMIT_EXCEEDED = 0

# Neighbor Discovery option types (RFC 4861 section 4.6).
ND_OPT_SOURCE_LINKADDR = 1
ND_OPT_TARGET_LINKADDR = 2
ND_OPT_PREFIX_INFO = 3
ND_OPT_MTU = 5

ECHO_TYPES6 = frozenset({ECHO_REQUEST6, ECHO_REPLY6})
ERROR_TYPES6 = frozenset({DEST_UNREACH6, PACKET_TOO_BIG, TIME_EXCEEDED6, PARAM_PROBLEM6})

# RA flag bits (RFC 4861 4.2: M, O; RFC 3775 H; RFC 4191 Prf in bits 3-4).
RA_MANAGED = 0x80
RA_OTHER = 0x40
# NA flag bits, in the top of the 32-bit field after the checksum (RFC 4861 4.4).
NA_ROUTER = 0x80000000
NA_SOLICITED = 0x40000000
NA_OVERRIDE = 0x20000000
_NA_RESERVED = 0x1FFFFFFF
# Prefix information flags (RFC 4861 4.6.2).
PREFIX_ON_LINK = 0x80
PREFIX_AUTONOMOUS = 0x40

_BASE = (("type", "B", 0), ("code", "B", 0), ("checksum", "H", 0))
BASE_HEADER = HeaderTable(LAYER, _BASE)
ECHO_HEADER = HeaderTable(LAYER, (*_BASE, ("ident", "H", 0), ("seq", "H", 0)))
ERROR_HEADER = HeaderTable(LAYER, (*_BASE, ("rest", "I", 0)))
RS_HEADER = HeaderTable(LAYER, (*_BASE, ("reserved", "I", 0)))
RA_HEADER = HeaderTable(
    LAYER,
    (
        *_BASE,
        ("cur_hop_limit", "B", 0),
        ("flags", "B", 0),
        ("router_lifetime", "H", 0),
        ("reachable_time", "I", 0),
        ("retrans_timer", "I", 0),
    ),
)
NS_HEADER = HeaderTable(LAYER, (*_BASE, ("reserved", "I", 0), ("target", "16s", bytes(16))))
NA_HEADER = NS_HEADER  # same layout; the 32-bit field holds R, S, O and reserved bits
_CHECKSUM_AT = BASE_HEADER.offsets["checksum"]

OPTION_PREFIX = HeaderTable(LAYER, (("type", "B", 0), ("length", "B", 0)))
PREFIX_INFO = HeaderTable(
    LAYER,
    (
        ("type", "B", ND_OPT_PREFIX_INFO),
        ("length", "B", 4),
        ("prefix_length", "B", 64),
        ("flags", "B", 0),
        ("valid_lifetime", "I", 0),
        ("preferred_lifetime", "I", 0),
        ("reserved", "I", 0),
        ("prefix", "16s", bytes(16)),
    ),
)
MTU_OPTION = HeaderTable(
    LAYER,
    (("type", "B", ND_OPT_MTU), ("length", "B", 1), ("reserved", "H", 0), ("mtu", "I", 0)),
)


# --- Neighbor Discovery options (RFC 4861 section 4.6) ------------------------------


@dataclass(frozen=True)
class NdLinkAddress:
    """Source (type 1) or target (type 2) link-layer address; 6 bytes on Ethernet.

    The option is padded with zeros to a multiple of 8 octets; ``address`` holds every
    byte after the 2-byte prefix, so for Ethernet it is exactly the MAC (RFC 2464 6).
    """

    type: int
    address: bytes

    def __post_init__(self) -> None:
        if self.type not in (ND_OPT_SOURCE_LINKADDR, ND_OPT_TARGET_LINKADDR):
            raise ValueError(f"{LAYER}: link-layer address option type is 1 or 2, not {self.type}")
        frozen_bytes(self, LAYER, "address")
        if not self.address or len(self.address) > 2038:
            raise ValueError(f"{LAYER}: a link-layer address of {len(self.address)} bytes")

    def encode(self) -> bytes:
        body = self.address + bytes(-(2 + len(self.address)) % 8)
        return bytes((self.type, (2 + len(body)) // 8)) + body


@dataclass(frozen=True)
class NdPrefixInfo:
    """Prefix information (type 3): on-link and autoconfiguration flags, lifetimes."""

    prefix: str
    prefix_length: int = 64
    flags: int = PREFIX_ON_LINK | PREFIX_AUTONOMOUS
    valid_lifetime: int = 0xFFFFFFFF
    preferred_lifetime: int = 0xFFFFFFFF
    reserved: int = 0

    type: ClassVar[int] = ND_OPT_PREFIX_INFO

    def __post_init__(self) -> None:
        ip6_to_bytes(self.prefix)
        check_uint(LAYER, "prefix_length", self.prefix_length, 8)
        check_uint(LAYER, "flags", self.flags, 8)
        check_uint(LAYER, "valid_lifetime", self.valid_lifetime, 32)
        check_uint(LAYER, "preferred_lifetime", self.preferred_lifetime, 32)
        check_uint(LAYER, "reserved", self.reserved, 32)

    def encode(self) -> bytes:
        return PREFIX_INFO.pack(
            prefix_length=self.prefix_length,
            flags=self.flags,
            valid_lifetime=self.valid_lifetime,
            preferred_lifetime=self.preferred_lifetime,
            reserved=self.reserved,
            prefix=ip6_to_bytes(self.prefix),
        )


@dataclass(frozen=True)
class NdMtu:
    """The link MTU (type 5) a router advertises."""

    mtu: int
    reserved: int = 0

    type: ClassVar[int] = ND_OPT_MTU

    def __post_init__(self) -> None:
        check_uint(LAYER, "mtu", self.mtu, 32)
        check_uint(LAYER, "reserved", self.reserved, 16)

    def encode(self) -> bytes:
        return MTU_OPTION.pack(reserved=self.reserved, mtu=self.mtu)


@dataclass(frozen=True)
class NdUnknownOption:
    """Any other option: type and the bytes after the 2-byte prefix (6 + 8n of them)."""

    type: int
    data: bytes = bytes(6)

    def __post_init__(self) -> None:
        check_uint(LAYER, "option type", self.type, 8)
        frozen_bytes(self, LAYER, "data")
        if (2 + len(self.data)) % 8 or len(self.data) > 2038:
            raise ValueError(
                f"{LAYER}: option data must be 6 + 8n bytes long, not {len(self.data)}"
            )

    def encode(self) -> bytes:
        return bytes((self.type, (2 + len(self.data)) // 8)) + self.data


NdOption = Union[NdLinkAddress, NdPrefixInfo, NdMtu, NdUnknownOption]
_OPTION_CLASSES = (NdLinkAddress, NdPrefixInfo, NdMtu, NdUnknownOption)


def decode_nd_options(buf: BytesLike, base: int = 0) -> tuple[NdOption, ...]:
    """Split an ND option area; ``base`` is its offset in the message, for error reports.

    A zero length is an error: RFC 4861 section 4.6 has nodes drop such packets, since
    the walk could never advance.
    """
    data = as_bytes(LAYER, buf)
    options: list[NdOption] = []
    at = 0
    while at < len(data):
        if at + OPTION_PREFIX.size > len(data):
            raise DecodeError(
                LAYER, base + at, f"truncated option: needs 2 bytes, got {len(data) - at}"
            )
        prefix = OPTION_PREFIX.unpack(data, at)
        kind, length = prefix["type"], prefix["length"] * 8
        if length == 0:
            raise DecodeError(LAYER, base + at + 1, f"option type {kind} has length 0")
        if at + length > len(data):
            raise DecodeError(
                LAYER,
                base + at + 1,
                f"option type {kind} of {length} bytes overruns the message by "
                f"{at + length - len(data)} bytes",
            )
        chunk = data[at : at + length]
        option: NdOption
        if kind in (ND_OPT_SOURCE_LINKADDR, ND_OPT_TARGET_LINKADDR):
            option = NdLinkAddress(kind, chunk[2:])
        elif kind == ND_OPT_PREFIX_INFO and length == PREFIX_INFO.size:
            fields = PREFIX_INFO.unpack(chunk)
            option = NdPrefixInfo(
                prefix=ip6_to_str(fields["prefix"]),
                prefix_length=fields["prefix_length"],
                flags=fields["flags"],
                valid_lifetime=fields["valid_lifetime"],
                preferred_lifetime=fields["preferred_lifetime"],
                reserved=fields["reserved"],
            )
        elif kind == ND_OPT_MTU and length == MTU_OPTION.size:
            fields = MTU_OPTION.unpack(chunk)
            option = NdMtu(fields["mtu"], fields["reserved"])
        else:
            # Prefix/MTU options of a wrong size are kept uninterpreted, not rejected,
            # so every valid-framed area round-trips.
            option = NdUnknownOption(kind, chunk[2:])
        options.append(option)
        at += length
    return tuple(options)


def _check_options(options: tuple[Any, ...]) -> None:
    for option in options:
        if not isinstance(option, _OPTION_CLASSES):
            raise TypeError(f"{LAYER}: options must be ND options, not {type(option).__name__}")


# --- messages -----------------------------------------------------------------------


class _Message:
    """What every shape shares: the checksum over the pseudo-header (RFC 4443 2.3)."""

    checksum: int | None

    def body(self) -> bytes:
        """The message with a zero checksum field."""
        raise NotImplementedError

    def encode(self, src: str | None = None, dst: str | None = None) -> bytes:
        """The message as on the wire between ``src`` and ``dst``.

        Without addresses the checksum must be given (``checksum=0`` leaves it to the
        kernel, which fills it on raw ICMPv6 sockets, RFC 3542 section 3.1).
        """
        if (src is None) != (dst is None):
            raise ValueError(f"{LAYER}: give both src and dst, or neither")
        message = self.body()
        checksum = self.checksum
        if checksum is None:
            if src is None or dst is None:
                raise ValueError(
                    f"{LAYER}: the checksum covers the IPv6 pseudo-header: give src and dst, "
                    "or checksum=0 for the kernel to fill"
                )
            checksum = transport_checksum(src, dst, PROTO_ICMPV6, message)
        return splice_checksum(message, _CHECKSUM_AT, checksum)

    def checksum_ok(self, src: str, dst: str) -> bool:
        """True when the checksum (given or computed) verifies between ``src`` and ``dst``."""
        return transport_checksum(src, dst, PROTO_ICMPV6, self.encode(src, dst)) == 0


def _unpack(
    buf: BytesLike,
    table: HeaderTable,
    src: str | None,
    dst: str | None,
    *,
    allowed: frozenset[int] | None = None,
    what: str = "",
) -> tuple[bytes, dict[str, Any]]:
    """The message bytes and ``table``'s fields; the type is checked before the length."""
    if (src is None) != (dst is None):
        raise ValueError(f"{LAYER}: give both src and dst to verify the checksum, or neither")
    data = as_bytes(LAYER, buf)
    if allowed is not None and data and data[0] not in allowed:
        raise DecodeError(LAYER, 0, f"type {data[0]} is not {what}")
    fields = table.unpack(data)
    if src is not None and dst is not None and transport_checksum(src, dst, PROTO_ICMPV6, data):
        wire = struct.unpack_from("!H", data, _CHECKSUM_AT)[0]
        zeroed = splice_checksum(data, _CHECKSUM_AT, 0)
        expected = transport_checksum(src, dst, PROTO_ICMPV6, zeroed)
        raise DecodeError(LAYER, _CHECKSUM_AT, checksum_mismatch(wire, expected))
    return data, fields


def _check_common(message: Any) -> None:
    check_uint(LAYER, "code", message.code, 8)
    check_optional_uint(LAYER, "checksum", message.checksum, 16)


@dataclass(frozen=True)
class Icmp6Echo(_Message):
    """Echo request (128) or echo reply (129), RFC 4443 sections 4.1 and 4.2."""

    type: int
    ident: int
    seq: int
    payload: bytes = b""
    code: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if self.type not in ECHO_TYPES6:
            raise ValueError(f"{LAYER}: type {self.type!r} is not an echo type (128 or 129)")
        check_uint(LAYER, "ident", self.ident, 16)
        check_uint(LAYER, "seq", self.seq, 16)
        _check_common(self)
        frozen_bytes(self, LAYER, "payload")

    def body(self) -> bytes:
        return (
            ECHO_HEADER.pack(type=self.type, code=self.code, ident=self.ident, seq=self.seq)
            + self.payload
        )

    def reply(self) -> Icmp6Echo:
        """The echo reply: same identifier, sequence and data (RFC 4443 4.2)."""
        return Icmp6Echo(ECHO_REPLY6, self.ident, self.seq, self.payload)

    @classmethod
    def decode(cls, buf: BytesLike, src: str | None = None, dst: str | None = None) -> Icmp6Echo:
        """Parse an echo request or reply; with both addresses, verify the checksum."""
        data, fields = _unpack(
            buf, ECHO_HEADER, src, dst, allowed=ECHO_TYPES6, what="an echo type (128/129)"
        )
        return cls(
            type=fields["type"],
            ident=fields["ident"],
            seq=fields["seq"],
            payload=data[ECHO_HEADER.size :],
            code=fields["code"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class Icmp6Error(_Message):
    """An error message quoting the packet that caused it (RFC 4443 section 3).

    ``rest`` is the 32-bit field after the checksum: unused (0) for types 1 and 3, the
    MTU for packet too big (3.2), the pointer for parameter problem (3.4).
    """

    type: int
    code: int
    quoted: bytes
    rest: int = 0
    checksum: int | None = None

    def __post_init__(self) -> None:
        if self.type not in ERROR_TYPES6:
            raise ValueError(
                f"{LAYER}: type {self.type!r} is not an error type {sorted(ERROR_TYPES6)}"
            )
        check_uint(LAYER, "rest", self.rest, 32)
        _check_common(self)
        frozen_bytes(self, LAYER, "quoted")

    @property
    def mtu(self) -> int:
        """The next-hop MTU of a packet-too-big message (RFC 4443 3.2)."""
        return self.rest

    @property
    def pointer(self) -> int:
        """The offset of the offending byte of a parameter problem (RFC 4443 3.4)."""
        return self.rest

    def quoted_ipv6(self) -> IPv6:
        """The quoted invoking packet; raises :class:`DecodeError` (layer ``ipv6``)."""
        return IPv6.decode(self.quoted, allow_truncated=True)

    def body(self) -> bytes:
        return ERROR_HEADER.pack(type=self.type, code=self.code, rest=self.rest) + self.quoted

    @classmethod
    def decode(cls, buf: BytesLike, src: str | None = None, dst: str | None = None) -> Icmp6Error:
        """Parse an error message; the quote is kept as bytes (see :meth:`quoted_ipv6`)."""
        what = f"an error type {sorted(ERROR_TYPES6)}"
        data, fields = _unpack(buf, ERROR_HEADER, src, dst, allowed=ERROR_TYPES6, what=what)
        return cls(
            type=fields["type"],
            code=fields["code"],
            quoted=data[ERROR_HEADER.size :],
            rest=fields["rest"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class RouterSolicitation(_Message):
    """Router solicitation (133, RFC 4861 4.1): reserved word, then options."""

    options: tuple[NdOption, ...] = ()
    reserved: int = 0
    code: int = 0
    checksum: int | None = None

    type: ClassVar[int] = ROUTER_SOLICIT

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        _check_options(self.options)
        check_uint(LAYER, "reserved", self.reserved, 32)
        _check_common(self)

    def body(self) -> bytes:
        return RS_HEADER.pack(type=self.type, code=self.code, reserved=self.reserved) + b"".join(
            option.encode() for option in self.options
        )

    @classmethod
    def decode(
        cls, buf: BytesLike, src: str | None = None, dst: str | None = None
    ) -> RouterSolicitation:
        """Parse a router solicitation; with both addresses, verify the checksum."""
        data, fields = _unpack(
            buf, RS_HEADER, src, dst, allowed=frozenset({ROUTER_SOLICIT}), what="133"
        )
        return cls(
            options=decode_nd_options(data[RS_HEADER.size :], RS_HEADER.size),
            reserved=fields["reserved"],
            code=fields["code"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class RouterAdvertisement(_Message):
    """Router advertisement (134, RFC 4861 4.2): hop limit, flags, lifetimes, options."""

    cur_hop_limit: int = 64
    flags: int = 0
    router_lifetime: int = 1800
    reachable_time: int = 0
    retrans_timer: int = 0
    options: tuple[NdOption, ...] = ()
    code: int = 0
    checksum: int | None = None

    type: ClassVar[int] = ROUTER_ADVERT

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", tuple(self.options))
        _check_options(self.options)
        check_uint(LAYER, "cur_hop_limit", self.cur_hop_limit, 8)
        check_uint(LAYER, "flags", self.flags, 8)
        check_uint(LAYER, "router_lifetime", self.router_lifetime, 16)
        check_uint(LAYER, "reachable_time", self.reachable_time, 32)
        check_uint(LAYER, "retrans_timer", self.retrans_timer, 32)
        _check_common(self)

    def body(self) -> bytes:
        return RA_HEADER.pack(
            type=self.type,
            code=self.code,
            cur_hop_limit=self.cur_hop_limit,
            flags=self.flags,
            router_lifetime=self.router_lifetime,
            reachable_time=self.reachable_time,
            retrans_timer=self.retrans_timer,
        ) + b"".join(option.encode() for option in self.options)

    @classmethod
    def decode(
        cls, buf: BytesLike, src: str | None = None, dst: str | None = None
    ) -> RouterAdvertisement:
        """Parse a router advertisement; with both addresses, verify the checksum."""
        data, fields = _unpack(
            buf, RA_HEADER, src, dst, allowed=frozenset({ROUTER_ADVERT}), what="134"
        )
        return cls(
            cur_hop_limit=fields["cur_hop_limit"],
            flags=fields["flags"],
            router_lifetime=fields["router_lifetime"],
            reachable_time=fields["reachable_time"],
            retrans_timer=fields["retrans_timer"],
            options=decode_nd_options(data[RA_HEADER.size :], RA_HEADER.size),
            code=fields["code"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class NeighborSolicitation(_Message):
    """Neighbor solicitation (135, RFC 4861 4.3): the target address, then options."""

    target: str
    options: tuple[NdOption, ...] = ()
    reserved: int = 0
    code: int = 0
    checksum: int | None = None

    type: ClassVar[int] = NEIGHBOR_SOLICIT

    def __post_init__(self) -> None:
        ip6_to_bytes(self.target)
        object.__setattr__(self, "options", tuple(self.options))
        _check_options(self.options)
        check_uint(LAYER, "reserved", self.reserved, 32)
        _check_common(self)

    def body(self) -> bytes:
        return NS_HEADER.pack(
            type=self.type, code=self.code, reserved=self.reserved, target=ip6_to_bytes(self.target)
        ) + b"".join(option.encode() for option in self.options)

    @classmethod
    def decode(
        cls, buf: BytesLike, src: str | None = None, dst: str | None = None
    ) -> NeighborSolicitation:
        """Parse a neighbor solicitation; with both addresses, verify the checksum."""
        data, fields = _unpack(
            buf, NS_HEADER, src, dst, allowed=frozenset({NEIGHBOR_SOLICIT}), what="135"
        )
        return cls(
            target=ip6_to_str(fields["target"]),
            options=decode_nd_options(data[NS_HEADER.size :], NS_HEADER.size),
            reserved=fields["reserved"],
            code=fields["code"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class NeighborAdvertisement(_Message):
    """Neighbor advertisement (136, RFC 4861 4.4): R, S, O flags, target, options."""

    target: str
    router: bool = False
    solicited: bool = False
    override: bool = False
    options: tuple[NdOption, ...] = ()
    reserved: int = 0  # the 29 bits after the flags
    code: int = 0
    checksum: int | None = None

    type: ClassVar[int] = NEIGHBOR_ADVERT

    def __post_init__(self) -> None:
        ip6_to_bytes(self.target)
        for flag in ("router", "solicited", "override"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{LAYER}: {flag} must be a bool")
        object.__setattr__(self, "options", tuple(self.options))
        _check_options(self.options)
        check_uint(LAYER, "reserved", self.reserved, 29)
        _check_common(self)

    def body(self) -> bytes:
        word = self.reserved
        word |= NA_ROUTER if self.router else 0
        word |= NA_SOLICITED if self.solicited else 0
        word |= NA_OVERRIDE if self.override else 0
        return NA_HEADER.pack(
            type=self.type, code=self.code, reserved=word, target=ip6_to_bytes(self.target)
        ) + b"".join(option.encode() for option in self.options)

    @classmethod
    def decode(
        cls, buf: BytesLike, src: str | None = None, dst: str | None = None
    ) -> NeighborAdvertisement:
        """Parse a neighbor advertisement; with both addresses, verify the checksum."""
        data, fields = _unpack(
            buf, NA_HEADER, src, dst, allowed=frozenset({NEIGHBOR_ADVERT}), what="136"
        )
        word = fields["reserved"]
        return cls(
            target=ip6_to_str(fields["target"]),
            router=bool(word & NA_ROUTER),
            solicited=bool(word & NA_SOLICITED),
            override=bool(word & NA_OVERRIDE),
            options=decode_nd_options(data[NA_HEADER.size :], NA_HEADER.size),
            reserved=word & _NA_RESERVED,
            code=fields["code"],
            checksum=fields["checksum"],
        )


@dataclass(frozen=True)
class Icmp6Message(_Message):
    """Any other ICMPv6 type: type, code and the bytes after the checksum, uninterpreted."""

    type: int
    code: int = 0
    rest: bytes = b""
    checksum: int | None = None

    def __post_init__(self) -> None:
        check_uint(LAYER, "type", self.type, 8)
        _check_common(self)
        frozen_bytes(self, LAYER, "rest")

    def body(self) -> bytes:
        return BASE_HEADER.pack(type=self.type, code=self.code) + self.rest

    @classmethod
    def decode(cls, buf: BytesLike, src: str | None = None, dst: str | None = None) -> Icmp6Message:
        """Parse any ICMPv6 message without interpreting its body."""
        data, fields = _unpack(buf, BASE_HEADER, src, dst)
        return cls(
            type=fields["type"],
            code=fields["code"],
            rest=data[BASE_HEADER.size :],
            checksum=fields["checksum"],
        )


Icmp6Packet = Union[
    Icmp6Echo,
    Icmp6Error,
    RouterSolicitation,
    RouterAdvertisement,
    NeighborSolicitation,
    NeighborAdvertisement,
    Icmp6Message,
]
_ND_CLASSES: dict[int, Any] = {
    ROUTER_SOLICIT: RouterSolicitation,
    ROUTER_ADVERT: RouterAdvertisement,
    NEIGHBOR_SOLICIT: NeighborSolicitation,
    NEIGHBOR_ADVERT: NeighborAdvertisement,
}


def decode_icmp6(buf: BytesLike, src: str | None = None, dst: str | None = None) -> Icmp6Packet:
    """Decode ``buf`` into the shape its type byte calls for; verify with both addresses."""
    data = as_bytes(LAYER, buf)
    if not data:
        raise DecodeError(LAYER, 0, "truncated header: needs 4 bytes, got 0")
    kind = data[0]
    if kind in ECHO_TYPES6:
        return Icmp6Echo.decode(data, src, dst)
    if kind in ERROR_TYPES6:
        return Icmp6Error.decode(data, src, dst)
    if kind in _ND_CLASSES:
        message: Icmp6Packet = _ND_CLASSES[kind].decode(data, src, dst)
        return message
    return Icmp6Message.decode(data, src, dst)
