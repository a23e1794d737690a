"""IPv4 fragmentation (RFC 791 section 3.2, "Fragmentation"; RFC 1122 3.3.2, 3.3.3).

Theory of operation: :func:`fragment` cuts one datagram into datagrams of at most ``mtu``
bytes. Every fragment but the last carries a multiple of 8 data bytes (the offset counts
8-octet units) and has More Fragments set; the last keeps the original's More Fragments, so
a fragment can itself be fragmented. The first fragment keeps every option, the others
only those with the copied flag (:func:`rawstack.codec.ipv4_options.fragment_options`).
The identification is the original's in every fragment: the receiver reassembles by
(source, destination, protocol, identification), so the caller must choose it, not leave
0 for a kernel to fill per packet (Linux's ``raw_send_hdrinc`` would give each fragment a
different one). Lengths and checksums are left for :meth:`IPv4.encode` to compute.
"""

from __future__ import annotations

from dataclasses import replace

from .ipv4 import IPv4
from .ipv4_options import fragment_options

__all__ = ["fragment"]

LAYER = "ipv4"


def fragment(datagram: IPv4, mtu: int) -> list[IPv4]:
    """``datagram`` as fragments of at most ``mtu`` bytes each (itself if it fits).

    ValueError when it must be cut but has Don't Fragment set, or when ``mtu`` leaves no
    room for 8 data bytes after a header.
    """
    if datagram.header_length + len(datagram.payload) <= mtu:
        return [datagram]
    if datagram.df:
        raise ValueError(f"{LAYER}: datagram exceeds MTU {mtu} and has Don't Fragment set")
    rest_options = fragment_options(datagram.options)
    first_room = (mtu - datagram.header_length) // 8 * 8
    rest_room = (mtu - 20 - len(rest_options)) // 8 * 8
    if first_room < 8 or rest_room < 8:
        raise ValueError(f"{LAYER}: MTU {mtu} leaves no room for 8 data bytes per fragment")
    payload = datagram.payload
    out: list[IPv4] = []
    at = 0
    while at < len(payload):
        room = first_room if not out else rest_room
        chunk = payload[at : at + room]
        last = at + len(chunk) >= len(payload)
        out.append(
            replace(
                datagram,
                payload=chunk,
                options=datagram.options if not out else rest_options,
                frag_offset=datagram.frag_offset + at // 8,
                mf=datagram.mf if last else True,
                total_length=None,
                checksum=None,
            )
        )
        at += len(chunk)
    return out
