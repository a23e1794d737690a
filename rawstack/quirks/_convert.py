"""Wire format <-> raw-socket format for one IPv4 packet, following a KernelQuirks row.

Only three 16-bit header fields ever differ: ip_len (offset 2), ip_off (offset 6) and the
header checksum (offset 10). "Host order" only changes bytes on a little-endian target, so
``byteorder`` names the target's order, not necessarily this machine's (``rawstack craft``
prepares packets for other kernels). Every function returns new bytes.
"""

from __future__ import annotations

import sys
from typing import Literal

from rawstack.codec.checksum import internet_checksum
from rawstack.quirks._table import KernelQuirks

_LEN = 2
_OFF = 6
_SUM = 10
_MIN_HEADER = 20


def _header_length(packet: bytes) -> int:
    if len(packet) < _MIN_HEADER:
        raise ValueError(f"IPv4 packet too short: {len(packet)} bytes, need {_MIN_HEADER}")
    if packet[0] >> 4 != 4:
        raise ValueError(f"not an IPv4 packet: version {packet[0] >> 4}")
    hlen = (packet[0] & 0x0F) * 4
    if hlen < _MIN_HEADER or hlen > len(packet):
        raise ValueError(f"bad IPv4 header length {hlen} in a {len(packet)}-byte packet")
    return hlen


def _check_byteorder(byteorder: str) -> None:
    if byteorder not in ("little", "big"):
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")


def _swap16(buf: bytearray, at: int) -> None:
    buf[at], buf[at + 1] = buf[at + 1], buf[at]


def _set_checksum(buf: bytearray, hlen: int) -> None:
    buf[_SUM : _SUM + 2] = b"\0\0"
    buf[_SUM : _SUM + 2] = internet_checksum(bytes(buf[:hlen])).to_bytes(2, "big")


def wire_to_raw(packet: bytes, quirks: KernelQuirks, byteorder: str = sys.byteorder) -> bytes:
    """The bytes to write to an IP_HDRINCL socket on ``quirks``'s kernel for a wire packet.

    The header checksum is recomputed over the bytes as written (the README's macOS packet:
    ``1c 00`` length gives ``60 f0`` where the wire's ``00 1c`` gives ``7c d4``), so a
    deliberately wrong checksum must be patched in after the conversion.
    """
    _check_byteorder(byteorder)
    hlen = _header_length(packet)
    buf = bytearray(packet)
    if byteorder == "little":
        if quirks.write_len_host_order:
            _swap16(buf, _LEN)
        if quirks.write_off_host_order:
            _swap16(buf, _OFF)
    _set_checksum(buf, hlen)
    return bytes(buf)


def raw_to_wire(packet: bytes, quirks: KernelQuirks, byteorder: str = sys.byteorder) -> bytes:
    """The wire packet behind what a raw-socket read returned on ``quirks``'s kernel.

    ip_len/ip_off go back to network order, the header length is added back where the
    kernel subtracted it, and the checksum is recomputed to match the restored header.
    """
    _check_byteorder(byteorder)
    hlen = _header_length(packet)
    buf = bytearray(packet)
    swap = byteorder == "little"
    if swap and quirks.read_off_host_order:
        _swap16(buf, _OFF)
    length_order: Literal["little", "big"] = (
        "little" if swap and quirks.read_len_host_order else "big"
    )
    total = int.from_bytes(buf[_LEN : _LEN + 2], length_order)
    if quirks.read_len_excludes_header:
        total += hlen
        if total > 0xFFFF:
            raise ValueError(f"ip_len plus the {hlen}-byte header overflows 16 bits")
    buf[_LEN : _LEN + 2] = total.to_bytes(2, "big")
    _set_checksum(buf, hlen)
    return bytes(buf)


def wire_to_read(packet: bytes, quirks: KernelQuirks, byteorder: str = sys.byteorder) -> bytes:
    """What a raw-socket read on ``quirks``'s kernel returns for a wire packet.

    The inverse of :func:`raw_to_wire`, for faking a kernel in tests. The checksum is left
    as it arrived: the kernels verify it before converting the header and never rewrite it.
    """
    _check_byteorder(byteorder)
    hlen = _header_length(packet)
    buf = bytearray(packet)
    total = int.from_bytes(buf[_LEN : _LEN + 2], "big")
    if quirks.read_len_excludes_header:
        if total < hlen:
            raise ValueError(f"ip_len {total} is shorter than the {hlen}-byte header")
        total -= hlen
    swap = byteorder == "little"
    length_order: Literal["little", "big"] = (
        "little" if swap and quirks.read_len_host_order else "big"
    )
    buf[_LEN : _LEN + 2] = total.to_bytes(2, length_order)
    if swap and quirks.read_off_host_order:
        _swap16(buf, _OFF)
    return bytes(buf)
