"""The link-layer socket contract shared by AF_PACKET (Linux) and /dev/bpf (BSD).

CHAO peers talk to a :class:`LinkSocket` and never to the OS mechanism underneath, so the
same server runs on Linux and on FreeBSD. :func:`open_link` picks the mechanism.
"""

from __future__ import annotations

import sys
from typing import Protocol


class LinkSocket(Protocol):
    """Whole Ethernet frames in and out of one interface, filtered to one EtherType."""

    ifname: str
    ifindex: int
    mac: bytes  # this interface's 6-byte MAC
    mtu: int

    def fileno(self) -> int:
        """For the selectors loop: readable when frames are waiting."""
        ...

    def send(self, frame: bytes) -> None:
        """Send one complete Ethernet frame (header included)."""
        ...

    def recv_frames(self) -> list[bytes]:
        """Drain what is readable now (non-blocking): complete frames received on the
        interface, excluding the ones this host sent. Empty list when nothing is waiting."""
        ...

    def close(self) -> None:
        """Idempotent."""
        ...


def open_link(ifname: str, ethertype: int) -> LinkSocket:
    """AF_PACKET on Linux, /dev/bpf on the BSDs and macOS."""
    if sys.platform.startswith("linux"):
        from rawstack.sockets.packet import open_packet

        return open_packet(ifname, ethertype)
    from rawstack.sockets.bpf import open_bpf

    return open_bpf(ifname, ethertype)
