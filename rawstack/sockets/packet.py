"""Linux AF_PACKET sockets: whole Ethernet frames of one EtherType on one interface.

Theory of operation: the socket is created with protocol 0, which receives nothing, and
only then bound to ``(ifname, ethertype)``. Creating it with ``htons(ethertype)`` straight
away would queue matching frames from *every* interface in the short window before
``bind``; binding first means the kernel's filter (interface index AND EtherType) is the
only filter, and Python never sees a frame it must throw away. packet(7).

The kernel also stamps each frame's arrival (SO_TIMESTAMPNS, CLOCK_REALTIME), so a client
can time a reply without its own wake-up latency: :meth:`PacketSocket.recv_frames_timed`, an
optional extra over :class:`~rawstack.sockets.link.LinkSocket`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import socket
import struct

from rawstack.errors import UsageError
from rawstack.sockets import translated
from rawstack.sockets.raw import enable_rx_timestamps, recv_ready, rx_timestamp_ns

IFNAMSIZ = 16
SIOCGIFMTU = 0x8921  # <linux/sockios.h>
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux >= 4.20; not exported by Python's socket module
RECV_BUFFER = 65536  # large enough for a GRO-merged frame, so nothing is silently cut


class PacketSocket:
    """An AF_PACKET/SOCK_RAW socket bound to one interface and one EtherType.

    Implements :class:`rawstack.sockets.link.LinkSocket`, plus :meth:`recv_frames_timed`.
    """

    def __init__(
        self, sock: socket.socket, ifname: str, ethertype: int, timestamps: bool = False
    ) -> None:
        self.sock = sock
        self.ifname = ifname
        self.ethertype = ethertype
        self.timestamps = timestamps
        self.ifindex = socket.if_nametoindex(ifname)
        self.mac: bytes = sock.getsockname()[4][:6]
        self.mtu = _interface_mtu(sock, ifname)
        self._closed = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, frame: bytes) -> None:
        """Send one frame out of the bound interface (address taken from the bind)."""
        with translated(f"sending on {self.ifname}"):
            self.sock.send(frame)

    def recv_frames(self) -> list[bytes]:
        """Frames waiting now, minus our own outgoing copies."""
        return [frame for frame, _ in self.recv_frames_timed()]

    def recv_frames_timed(self) -> list[tuple[bytes, int | None]]:
        """Like :meth:`recv_frames`, with each frame's kernel arrival stamp (ns) or None."""
        frames: list[tuple[bytes, int | None]] = []
        for data, ancillary, addr in recv_ready(
            self.sock,
            f"receiving on {self.ifname}",
            timestamps=self.timestamps,
            buffer=RECV_BUFFER,
            quiet_errnos=(errno.ENETDOWN,),  # interface went down: nothing to read
        ):
            # addr = (ifname, proto, pkttype, hatype, hwaddr)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            frames.append((data, rx_timestamp_ns(ancillary)))
        return frames

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sock.close()


def open_packet(ifname: str, ethertype: int = 0x88B5) -> PacketSocket:
    """Open a non-blocking packet socket for ``ethertype`` frames on ``ifname``.

    Unknown interface -> :class:`UsageError`; no CAP_NET_RAW -> ``PrivilegeError``.
    """
    if not 0 < len(ifname) < IFNAMSIZ or "/" in ifname or ifname != ifname.strip():
        raise UsageError(f"bad interface name {ifname!r}")
    if not 0x0600 <= ethertype <= 0xFFFF:
        raise UsageError(f"bad EtherType {ethertype:#x} (must be 0x0600..0xffff)")
    try:
        socket.if_nametoindex(ifname)
    except OSError as exc:
        raise UsageError(f"no such interface: {ifname}") from exc
    what = f"opening a packet socket on {ifname}"
    with translated(what):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        with translated(what):
            sock.setblocking(False)
            # Our own transmissions would otherwise be looped back to us; the pkttype
            # check in recv_frames stays for kernels older than 4.20.
            with contextlib.suppress(OSError):
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.bind((ifname, ethertype))
            return PacketSocket(sock, ifname, ethertype, enable_rx_timestamps(sock))
    except BaseException:
        sock.close()
        raise


def _interface_mtu(sock: socket.socket, ifname: str) -> int:
    ifreq = struct.pack(f"{IFNAMSIZ}si", ifname.encode(), 0)
    out = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, ifreq)
    mtu: int = struct.unpack(f"{IFNAMSIZ}si", out)[1]
    return mtu
