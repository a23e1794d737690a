"""Linux AF_PACKET sockets: whole Ethernet frames of one EtherType on one interface.

Theory of operation: the socket is created with protocol 0, which receives nothing, gets a
classic BPF filter for the EtherType (SO_ATTACH_FILTER, the program ``tcpdump -dd ether
proto 0x88b5`` prints), and only then is bound to ``(ifname, ETH_P_ALL)``. Creating it with
a protocol straight away would queue frames from *every* interface in the short window
before ``bind``; this order means the kernel's filters (interface index, then the program)
are the only filters, and Python never sees a frame it must throw away. packet(7).

Why ETH_P_ALL and a program rather than binding to the EtherType itself: only the taps of
ETH_P_ALL run before the receive path drops a frame's VLAN metadata (see below); a socket
bound to one EtherType gets tagged frames with the tag already gone.

The kernel also stamps each frame's arrival (SO_TIMESTAMPNS, CLOCK_REALTIME), so a client
can time a reply without its own wake-up latency: :meth:`PacketSocket.recv_frames_timed`, an
optional extra over :class:`~rawstack.sockets.link.LinkSocket`.

Closing: the kernel's release of a packet socket waits for an RCU grace period
(``synchronize_net()`` in ``packet_release``, ~12-16 ms on a 2-core VM), whoever closes it.
A process that is about to exit and has something to say first (a command forked by the
harness's peer host reports its status, then exits) calls :func:`close_at_exit`, so that
:meth:`PacketSocket.close` leaves the descriptor to the exit and that wait to nobody.

802.1Q tags: the receive path takes a frame's VLAN tag out of the data before any packet
socket sees it (``skb_vlan_untag`` in ``__netif_receive_skb_core``, or the NIC does it in
hardware) and keeps it as metadata, handed over only as PACKET_AUXDATA (packet(7):
``tp_vlan_tci``, ``tp_vlan_tpid``, ``TP_STATUS_VLAN_VALID``), and only to ETH_P_ALL taps:
without a VLAN device for the tag (no 8021q module, or none configured) the metadata is
cleared (``__vlan_hwaccel_clear_tag``) before protocol-specific sockets get the frame. The
filter sees the untagged data, so it matches the inner EtherType of a tagged frame. Reads
put the tag back into the frame where it was on the wire, as libpcap does, so everything
above sees wire frames and a reply built from one goes out in the same VLAN. Writes need
nothing: a tag in the data is sent as it is.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import socket
import struct
import sys

from rawstack.codec.bpf import encode_program, ethertype_filter
from rawstack.errors import UsageError
from rawstack.sockets import translated
from rawstack.sockets.raw import Ancillary, enable_rx_timestamps, recv_ready, rx_timestamp_ns

IFNAMSIZ = 16
SIOCGIFMTU = 0x8921  # <linux/sockios.h>
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23  # Linux >= 4.20; not exported by Python's socket module
PACKET_AUXDATA = 8  # <linux/if_packet.h>
ETH_P_ALL = 0x0003
# <asm-generic/socket.h>; Python does not export it. (parisc alone differs, at 0x401a.)
SO_ATTACH_FILTER: int = getattr(socket, "SO_ATTACH_FILTER", 26)
# struct tpacket_auxdata: tp_status, tp_len, tp_snaplen (u32); tp_mac, tp_net, tp_vlan_tci,
# tp_vlan_tpid (u16).
AUXDATA = struct.Struct("@IIIHHHH")
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
ETH_P_8021Q = 0x8100
MAC_HEADER = 12  # destination and source MACs: the tag goes after them
RECV_BUFFER = 65536  # large enough for a GRO-merged frame, so nothing is silently cut


class _AtExit:
    """Sockets :meth:`PacketSocket.close` left to the process's exit (:func:`close_at_exit`)."""

    on = False
    held: list[socket.socket] = []  # noqa: RUF012 - one list per process, on purpose


def close_at_exit() -> None:
    """From now on in this process, :meth:`PacketSocket.close` stops using the socket but
    leaves its descriptor open, for the process's exit to close (see the module docstring).
    For a process that ends soon after: one that runs on keeps every socket it closes."""
    _AtExit.on = True


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
            extra_space=socket.CMSG_SPACE(AUXDATA.size),
            buffer=RECV_BUFFER,
            quiet_errnos=(errno.ENETDOWN,),  # interface went down: nothing to read
        ):
            # addr = (ifname, proto, pkttype, hatype, hwaddr)
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            frames.append((with_vlan_tag(data, ancillary), rx_timestamp_ns(ancillary)))
        return frames

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if _AtExit.on:
                _AtExit.held.append(self.sock)  # referenced: no collection closes it either
            else:
                self.sock.close()


def with_vlan_tag(frame: bytes, ancillary: Ancillary) -> bytes:
    """``frame`` with the 802.1Q tag the kernel moved into PACKET_AUXDATA put back."""
    for level, kind, data in ancillary:
        if level != SOL_PACKET or kind != PACKET_AUXDATA or len(data) < AUXDATA.size:
            continue
        status, _len, _snap, _mac, _net, tci, tpid = AUXDATA.unpack_from(data)
        if not status & TP_STATUS_VLAN_VALID or len(frame) < MAC_HEADER:
            return frame
        if not status & TP_STATUS_VLAN_TPID_VALID or not tpid:
            tpid = ETH_P_8021Q  # kernels before 3.14 report only the TCI
        return frame[:MAC_HEADER] + struct.pack("!HH", tpid, tci) + frame[MAC_HEADER:]
    return frame


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
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)  # for the VLAN tag; Linux >= 2.6.27
            attach_ethertype_filter(sock, ethertype)
            sock.bind((ifname, ETH_P_ALL))
            return PacketSocket(sock, ifname, ethertype, enable_rx_timestamps(sock))
    except BaseException:
        sock.close()
        raise


def attach_ethertype_filter(sock: socket.socket, ethertype: int) -> None:
    """Let only ``ethertype`` frames (untagged, or tagged with that inner type) through."""
    insns = ethertype_filter(ethertype, RECV_BUFFER)
    code = ctypes.create_string_buffer(encode_program(insns, sys.byteorder))
    # struct sock_fprog {unsigned short len; struct sock_filter *filter;}; the kernel copies
    # the program during the call, so ``code`` may go once it returns.
    fprog = struct.pack("@HP", len(insns), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def _interface_mtu(sock: socket.socket, ifname: str) -> int:
    ifreq = struct.pack(f"{IFNAMSIZ}si", ifname.encode(), 0)
    out = fcntl.ioctl(sock.fileno(), SIOCGIFMTU, ifreq)
    mtu: int = struct.unpack(f"{IFNAMSIZ}si", out)[1]
    return mtu
