"""The upper-layer checksum over the pseudo-header of either IP version.

UDP, TCP and ICMPv6 checksums cover a pseudo-header built from the addresses of the
packet that carries them: 12 bytes for IPv4 (RFC 9293 3.1, RFC 768), 40 for IPv6
(RFC 8200 section 8.1). The address text picks the version, so the segment codecs take
``src``/``dst`` strings of either family and stay version-agnostic.
"""

from __future__ import annotations

from . import ipv4, ipv6
from ._header import BytesLike


def is_ipv6(addr: str) -> bool:
    """True for IPv6 address text (it has a colon; an IPv4 dotted quad never does)."""
    return isinstance(addr, str) and ":" in addr


def transport_checksum(src: str, dst: str, proto: int, segment: BytesLike) -> int:
    """The pseudo-header checksum of ``segment`` between ``src`` and ``dst``.

    With the segment's checksum field zeroed this is the value to send; with the field
    as received it is 0 exactly when that checksum is right. Mixed families are a
    ValueError: no packet carries one of each.
    """
    if is_ipv6(src) != is_ipv6(dst):
        raise ValueError(f"pseudo-header: {src!r} and {dst!r} are of different IP versions")
    if is_ipv6(src):
        return ipv6.transport_checksum(src, dst, proto, segment)
    return ipv4.transport_checksum(src, dst, proto, segment)
