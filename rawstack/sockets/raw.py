"""Raw IPv4 sockets: our own IP header out, whole IP packets in.

Theory of operation: every packet we build is a *wire* packet (network byte order, exact
lengths). What a raw socket wants written, and what it hands back on read, is the kernel's
*raw-socket format*, which on some kernels differs from the wire (ip_len/ip_off in host
order, header length subtracted): :mod:`rawstack.quirks` owns that difference, and this
module applies it at the socket boundary (``wire_to_raw`` on send, ``raw_to_wire`` on
read) so nothing above ever sees the raw format. shared/QUIRKS.md lists the facts.

Timing: ``send`` returns the CLOCK_REALTIME nanoseconds taken right before ``sendto`` (the
packet already built and converted), and the ``*_timed`` reads return the kernel's arrival
stamp on the same clock (SO_TIMESTAMPNS on Linux, SO_TIMESTAMP on the BSDs and macOS) when
it was asked for: the way iputils keeps user-space wake-up latency out of its RTT.
"""

from __future__ import annotations

import errno
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Callable, TypeVar

from rawstack.codec import DecodeError
from rawstack.codec.fragment import fragment
from rawstack.codec.ipv4 import IPv4
from rawstack.errors import PrivilegeError, RawstackError, UsageError
from rawstack.quirks import IDENT, KernelQuirks, raw_to_wire, wire_to_raw
from rawstack.sockets import translated

SOL_RAW = 255  # <linux/socket.h>; not exported by Python's socket module
ICMP_FILTER = 1  # <linux/icmp.h>: a 32-bit mask of ICMP types to DROP
# Linux-only options; no numeric fallbacks, since the same number means another option
# elsewhere.
CAN_BIND_TO_DEVICE = hasattr(socket, "SO_BINDTODEVICE")
# Python does not export IP_RECVTTL on Linux; 12 is <linux/in.h>'s value there only.
IP_RECVTTL: int | None = getattr(
    socket, "IP_RECVTTL", 12 if sys.platform.startswith("linux") else None
)
RECV_BUFFER = 65536
# <linux/in.h> IP_MTU (not exported by Python): a connected socket's path MTU. Linux only.
IP_MTU: int | None = 14 if sys.platform.startswith("linux") else None
# <linux/in.h> IP_PKTINFO (not exported by Python on every build): struct in_pktinfo
# {int ipi_ifindex; struct in_addr ipi_spec_dst, ipi_addr} with each datagram. Linux only.
IP_PKTINFO: int | None = 8 if sys.platform.startswith("linux") else None
_PKTINFO = struct.Struct("@i4s4s")
# Every host must accept datagrams this large (RFC 791, RFC 1122 3.3.3): below it no
# packet needs the path MTU looked up.
MIN_MTU = 576


# Receive timestamps. Python exports neither SO_TIMESTAMP nor SO_TIMESTAMPNS, and the
# numbers differ per OS (and per Linux architecture), so they come from one table: the
# option to set, and each control-message type the kernel may answer with, mapped to the
# native layout of its (seconds, fraction) pair and nanoseconds per unit of the fraction.
_TIMEVAL = struct.Struct("@li" if sys.platform == "darwin" else "@ll")  # suseconds_t: int on macOS
_TIMESPEC = struct.Struct("@ll")
# os.uname().machine is platform.machine() without importing platform at start-up.
if sys.platform.startswith("linux") and not os.uname().machine.startswith(
    ("mips", "alpha", "parisc", "sparc")  # the architectures whose asm/socket.h differs
):
    # <asm-generic/socket.h>: SO_TIMESTAMP_OLD 29, SO_TIMESTAMPNS_OLD 35. The _OLD pair is
    # in native longs, which is exactly what _TIMEVAL/_TIMESPEC unpack.
    _STAMP_OPTION: int | None = 35
    _STAMP_CMSGS: dict[int, tuple[struct.Struct, int]] = {35: (_TIMESPEC, 1), 29: (_TIMEVAL, 1000)}
elif sys.platform.startswith("freebsd") or sys.platform == "darwin":
    # <sys/socket.h>: SO_TIMESTAMP 0x0400 answered with SCM_TIMESTAMP 0x02 (a timeval).
    _STAMP_OPTION = 0x0400
    _STAMP_CMSGS = {0x02: (_TIMEVAL, 1000)}
else:
    _STAMP_OPTION = None
    _STAMP_CMSGS = {}
STAMP_CMSG_SPACE = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
Ancillary = Sequence[tuple[int, int, bytes]]


def enable_rx_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp each arriving packet (CLOCK_REALTIME); False where it cannot."""
    if _STAMP_OPTION is None or not STAMP_CMSG_SPACE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _STAMP_OPTION, 1)
    except OSError:
        return False  # an old or unusual kernel: callers fall back to their own clock
    return True


def rx_timestamp_ns(ancillary: Ancillary) -> int | None:
    """The arrival stamp in a ``recvmsg`` result's ancillary data, as ``time.time_ns()``."""
    for level, kind, data in ancillary:
        found = _STAMP_CMSGS.get(kind) if level == socket.SOL_SOCKET else None
        if found is not None and len(data) >= found[0].size:
            sec, frac = found[0].unpack_from(data)
            return int(sec) * 1_000_000_000 + int(frac) * found[1]
    return None


def recv_ready(
    sock: socket.socket,
    what: str,
    *,
    timestamps: bool = False,
    extra_space: int = 0,
    buffer: int = RECV_BUFFER,
    quiet_errnos: Collection[int] = (),
) -> Iterator[tuple[bytes, Ancillary, Any]]:
    """Yield ``(data, ancillary, address)`` for each datagram readable now, then stop.

    ``extra_space`` is ancillary room beyond the arrival stamp's; an error whose errno is
    in ``quiet_errnos`` ends the drain, any other is a RawstackError naming ``what``.
    """
    space = extra_space + (STAMP_CMSG_SPACE if timestamps else 0)
    while True:
        try:
            data, ancillary, _flags, addr = sock.recvmsg(buffer, space)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if exc.errno in quiet_errnos:
                return
            raise RawstackError(f"{what}: {exc.strerror}") from exc
        yield data, ancillary, addr


class RawIpSender:
    """An IPPROTO_RAW socket that sends wire-format IPv4 packets through the quirk model.

    Where the kernel does not fragment an IP_HDRINCL write (``quirks.fragments_oversize``
    is False: Linux answers EMSGSIZE above the device MTU, ``raw_send_hdrinc``), a packet
    larger than the path MTU is fragmented here (:func:`rawstack.codec.fragment.fragment`)
    and sent as its fragments, as the kernel would fragment a datagram of its own.
    """

    def __init__(self, sock: socket.socket, quirks: KernelQuirks) -> None:
        self.sock = sock
        self.quirks = quirks

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, wire_packet: bytes, dst: str) -> int:
        """Write one complete IPv4 packet (header included) addressed to ``dst``.

        Returns ``time.time_ns()`` taken right before the (first) ``sendto``.
        """
        address = (dst, 0)
        packets = self._fragments(wire_packet, dst)
        raws = [wire_to_raw(packet, self.quirks, sys.byteorder) for packet in packets]
        what = f"sending a raw IPv4 packet to {dst}"
        # send_errors inside translated: it must see the PermissionError first.
        with translated(what), send_errors(what, dst):
            stamp = time.time_ns()
            for raw in raws:
                self.sock.sendto(raw, address)
        return stamp

    def _fragments(self, wire_packet: bytes, dst: str) -> list[bytes]:
        if self.quirks.fragments_oversize or len(wire_packet) <= MIN_MTU:
            return [wire_packet]
        mtu = path_mtu(dst)
        if mtu is None or len(wire_packet) <= mtu:
            return [wire_packet]
        try:
            datagram = IPv4.decode(wire_packet)
            if datagram.ident == 0 and self.quirks.fills(IDENT, len(wire_packet)):
                # The kernel would fill a different id into each fragment, and the receiver
                # reassembles by id: choose one for all of them.
                datagram = replace(datagram, ident=random.randrange(1, 0x10000))
            return [f.encode() for f in fragment(datagram, mtu)]
        except (DecodeError, ValueError):
            # Don't Fragment set, or not a well-formed datagram: the kernel says what is
            # wrong with it (EMSGSIZE, EINVAL), as it would without us.
            return [wire_packet]

    def close(self) -> None:
        self.sock.close()


@contextmanager
def send_errors(what: str, dst: str) -> Iterator[None]:
    """EACCES and EPERM from a send on a socket we already hold are not missing privilege.

    EACCES: the kernel routes ``dst`` as a broadcast address and the socket lacks
    SO_BROADCAST (``ip_route_output`` / ``raw_sendmsg``; iputils: "Do you want to ping
    broadcast?"). EPERM: a local firewall rule refused the packet (netfilter's verdict).
    """
    try:
        yield
    except PermissionError as exc:
        if exc.errno == errno.EACCES:
            raise UsageError(
                f"{what}: {dst} is a broadcast address (EACCES: sending to it needs "
                "SO_BROADCAST, which this socket does not set)"
            ) from exc
        raise RawstackError(f"{what}: a local firewall rule refused it (EPERM)") from exc


def routes_as_broadcast(addr: str) -> bool:
    """True when this host's routing table makes ``addr`` a broadcast (or multicast)
    destination: the connect of a UDP socket without SO_BROADCAST fails with EACCES, the
    test iputils ping makes before "Do you want to ping broadcast? Then -b"."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((addr, 9))  # consults the routing table only
    except PermissionError:
        return True
    except OSError:
        return False  # no route: not a broadcast, and the send will say what is wrong
    finally:
        probe.close()
    return False


def path_mtu(dst: str) -> int | None:
    """The kernel's path MTU towards ``dst`` (IP_MTU of a connected UDP socket), or None
    where it cannot say (no route, or not Linux)."""
    if IP_MTU is None:
        return None
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect((dst, 9))  # UDP connect only consults the routing table
        mtu: int = probe.getsockopt(socket.IPPROTO_IP, IP_MTU)
        return mtu
    except OSError:
        return None
    finally:
        probe.close()


@dataclass(frozen=True)
class PacketInfo:
    """IP_PKTINFO of one received datagram (Linux): the interface it arrived on, its
    header destination, and the local address a reply should come from (``spec_dst``:
    the destination itself for a local unicast address, the interface's address for a
    broadcast or multicast one, ``fib_compute_spec_dst``)."""

    ifindex: int
    spec_dst: str
    dst: str

    @property
    def to_group(self) -> bool:
        """Sent to a broadcast or multicast address rather than to one of ours."""
        return self.spec_dst != self.dst


def packet_info(ancillary: Ancillary) -> PacketInfo | None:
    """The IP_PKTINFO in a ``recvmsg`` result's ancillary data, if any."""
    for level, kind, data in ancillary:
        if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(data) >= _PKTINFO.size:
            ifindex, spec_dst, dst = _PKTINFO.unpack_from(data)
            return PacketInfo(ifindex, socket.inet_ntoa(spec_dst), socket.inet_ntoa(dst))
    return None


class RawIpReceiver:
    """A raw IPv4 socket for one protocol; reads come back in wire format.

    ``timestamps`` says whether the kernel stamps arrivals (see :meth:`recv_packets_timed`);
    ``pktinfo`` whether it says where each packet was addressed (:meth:`recv_packets_info`).
    """

    def __init__(
        self,
        sock: socket.socket,
        quirks: KernelQuirks,
        timestamps: bool = False,
        pktinfo: bool = False,
    ) -> None:
        self.sock = sock
        self.quirks = quirks
        self.timestamps = timestamps
        self.pktinfo = pktinfo

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_packets(self) -> list[tuple[bytes, str]]:
        """Drain what is readable now: ``(wire IPv4 packet, source address)`` pairs."""
        return [(packet, src) for packet, src, _ in self.recv_packets_timed()]

    def recv_packets_timed(self) -> list[tuple[bytes, str, int | None]]:
        """Like :meth:`recv_packets`, plus each packet's kernel arrival stamp (ns) or None."""
        return [(p, src, rx_timestamp_ns(anc)) for p, src, anc in self._drain()]

    def recv_packets_info(self) -> list[tuple[bytes, str, PacketInfo | None]]:
        """Like :meth:`recv_packets`, plus each packet's IP_PKTINFO (None where not asked)."""
        return [(p, src, packet_info(anc)) for p, src, anc in self._drain()]

    def _drain(self) -> list[tuple[bytes, str, Ancillary]]:
        out: list[tuple[bytes, str, Ancillary]] = []
        extra = socket.CMSG_SPACE(_PKTINFO.size) if self.pktinfo else 0
        for data, ancillary, addr in recv_ready(
            self.sock, "reading a raw socket", timestamps=self.timestamps, extra_space=extra
        ):
            try:
                packet = raw_to_wire(data, self.quirks, sys.byteorder)
            except ValueError:
                continue  # too short to hold an IP header: nothing to convert or answer
            out.append((packet, addr[0], ancillary))
        return out

    def close(self) -> None:
        self.sock.close()


def open_raw_ip_sender(quirks: KernelQuirks) -> RawIpSender:
    """AF_INET/SOCK_RAW/IPPROTO_RAW with IP_HDRINCL.

    IP_HDRINCL is set on every kernel: Linux implies it for IPPROTO_RAW (raw(7)), so
    setting it is a no-op there, while macOS and the BSDs require it (QUIRKS.md). One
    code path, and the socket says what it is regardless of the platform's default.
    """

    def configure(sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)

    sock, _ = _open_raw(socket.IPPROTO_RAW, "opening a raw IPv4 socket (IPPROTO_RAW)", configure)
    return RawIpSender(sock, quirks)


_T = TypeVar("_T")


def _open_raw(
    proto: int, what: str, configure: Callable[[socket.socket], _T]
) -> tuple[socket.socket, _T]:
    """An AF_INET/SOCK_RAW socket for ``proto`` and what ``configure`` made of it.

    Errors of either step say ``what``; the socket is closed when ``configure`` fails.
    """
    with translated(what):
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    try:
        with translated(what):
            return sock, configure(sock)
    except BaseException:
        sock.close()
        raise


def icmp_filter_mask(accept_types: frozenset[int] | set[int] | tuple[int, ...]) -> int:
    """The ICMP_FILTER value: a bit set for every type (0..31) the kernel should drop."""
    keep = 0
    for t in accept_types:
        if not 0 <= t < 32:
            raise ValueError(f"ICMP_FILTER covers types 0..31, not {t}")
        keep |= 1 << t
    return ~keep & 0xFFFFFFFF


def open_raw_icmp_receiver(
    quirks: KernelQuirks,
    accept_types: frozenset[int] | set[int] | tuple[int, ...],
    iface: str | None = None,
    *,
    timestamps: bool = False,
    pktinfo: bool = False,
) -> RawIpReceiver:
    """AF_INET/SOCK_RAW/IPPROTO_ICMP that only reads ``accept_types``.

    On Linux a raw ICMP socket also sees every echo *request* delivered locally, our own
    included (``ip_local_deliver_finish`` hands a copy to every raw socket), so ICMP_FILTER
    drops the other types in the kernel when ``quirks.has_icmp_filter``. The BSDs have no
    ICMP_FILTER, but they do not pass echo requests to raw sockets either; callers still
    check the type. ``iface`` limits
    reads to packets arriving on that interface (SO_BINDTODEVICE, Linux). ``timestamps``
    asks the kernel to stamp arrivals, where it can (``receiver.timestamps`` says);
    ``pktinfo`` for each packet's IP_PKTINFO, where there is one (``receiver.pktinfo``).
    """
    with_info = pktinfo and IP_PKTINFO is not None

    def configure(sock: socket.socket) -> bool:
        sock.setblocking(False)
        if with_info and IP_PKTINFO is not None:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        if quirks.has_icmp_filter:
            mask = struct.pack("I", icmp_filter_mask(accept_types))
            sock.setsockopt(SOL_RAW, ICMP_FILTER, mask)
        if iface is not None:
            _bind_to_device(sock, iface)
        # enable_rx_timestamps answers False rather than raise, so `what` never names it.
        return timestamps and enable_rx_timestamps(sock)

    sock, stamped = _open_raw(socket.IPPROTO_ICMP, "opening a raw ICMP socket", configure)
    return RawIpReceiver(sock, quirks, stamped, with_info)


def open_raw_tcp(quirks: KernelQuirks) -> RawIpReceiver:
    """AF_INET/SOCK_RAW/IPPROTO_TCP: a copy of every TCP segment delivered to this host.

    Used to read SYN-ACK/RST answers to a hand-built SYN; sending goes through
    :func:`open_raw_ip_sender`.
    """
    sock, _ = _open_raw(
        socket.IPPROTO_TCP, "opening a raw TCP socket", lambda s: s.setblocking(False)
    )
    return RawIpReceiver(sock, quirks)


class PingSocket:
    """The Linux unprivileged ICMP socket; the kernel owns the IP header and the echo id."""

    def __init__(self, sock: socket.socket, timestamps: bool = False) -> None:
        self.sock = sock
        self.timestamps = timestamps
        self.ident: int = sock.getsockname()[1]  # the echo id is the socket's local port

    def fileno(self) -> int:
        return self.sock.fileno()

    def set_ttl(self, ttl: int) -> None:
        with translated("setting the ICMP socket's TTL"):
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)

    def send(self, message: bytes, dst: str) -> int:
        """Send an ICMP echo request (the kernel rewrites its id and checksum).

        Returns ``time.time_ns()`` taken right before the ``sendto``.
        """
        address = (dst, 0)
        what = f"sending an echo request to {dst}"
        with translated(what), send_errors(what, dst):
            stamp = time.time_ns()
            self.sock.sendto(message, address)
        return stamp

    def recv_messages(self) -> list[tuple[bytes, str, int | None, int | None]]:
        """Drain ``(ICMP message, source, TTL or None, arrival ns or None)`` readable now."""
        out: list[tuple[bytes, str, int | None, int | None]] = []
        for data, ancillary, addr in recv_ready(
            self.sock,
            "reading the ICMP socket",
            timestamps=self.timestamps,
            extra_space=socket.CMSG_SPACE(4),
        ):
            ttl: int | None = None
            for level, kind, value in ancillary:
                if level == socket.IPPROTO_IP and kind == socket.IP_TTL and len(value) >= 4:
                    ttl = int.from_bytes(value[:4], sys.byteorder)
            out.append((data, addr[0], ttl, rx_timestamp_ns(ancillary)))
        return out

    def close(self) -> None:
        self.sock.close()


def open_ping_dgram() -> PingSocket:
    """The Linux unprivileged ICMP socket (SOCK_DGRAM/IPPROTO_ICMP), bound to a free id.

    Only groups inside ``net.ipv4.ping_group_range`` may open it (root included); reads
    are the ICMP message alone, and IP_RECVTTL delivers the reply's TTL as ancillary data,
    next to the kernel's arrival stamp where it can give one.
    """
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
    except PermissionError as exc:
        raise PrivilegeError(
            "opening an unprivileged ICMP socket",
            "a group id inside net.ipv4.ping_group_range",
            hint="widen the sysctl, or run without --unprivileged as root",
        ) from exc
    except OSError as exc:
        raise RawstackError(f"opening an unprivileged ICMP socket: {exc.strerror}") from exc
    try:
        with translated("configuring the ICMP socket"):
            sock.setblocking(False)
            if IP_RECVTTL is not None:
                sock.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
            sock.bind(("0.0.0.0", 0))
        return PingSocket(sock, enable_rx_timestamps(sock))
    except BaseException:
        sock.close()
        raise


def route_source(dst: str) -> str:
    """The source address the kernel would use towards ``dst`` (no packet is sent).

    No route is a :class:`UsageError` (exit 2, as iputils' "connect: Network is
    unreachable"), and so is a broadcast destination (iputils: "Do you want to ping
    broadcast? Then -b"), which is EACCES here, not a missing privilege.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    what = f"finding a route to {dst}"
    try:
        probe.connect((dst, 9))  # UDP connect only consults the routing table
        src: str = probe.getsockname()[0]
        return src
    except PermissionError as exc:
        raise UsageError(
            f"{what}: {dst} is a broadcast address (EACCES without SO_BROADCAST); "
            "this ping sends to one host only"
        ) from exc
    except OSError as exc:
        raise UsageError(f"{what}: {exc.strerror or exc}") from exc
    finally:
        probe.close()


def reserve_tcp_port(src: str) -> tuple[socket.socket, int]:
    """Bind (never listen) a TCP socket so no real connection shares our probe's port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with translated(f"reserving a TCP port on {src}"):
            sock.bind((src, 0))
    except BaseException:
        sock.close()
        raise
    port: int = sock.getsockname()[1]
    return sock, port


def resolve_ipv4(host: str) -> str:
    """A dotted quad for ``host`` (an address or a name), or :class:`UsageError`."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_RAW)
    except (OSError, ValueError) as exc:  # ValueError: NUL bytes, bad IDNA labels
        raise UsageError(f"cannot resolve {host!r} to an IPv4 address") from exc
    addr = str(infos[0][4][0])
    return addr


def _bind_to_device(sock: socket.socket, iface: str) -> None:
    try:
        socket.if_nametoindex(iface)
    except OSError as exc:
        raise UsageError(f"no such interface: {iface}") from exc
    if not CAN_BIND_TO_DEVICE:
        raise UsageError(f"limiting a raw socket to {iface} needs SO_BINDTODEVICE (Linux)")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, iface.encode())
