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

import os
import socket
import struct
import sys
import time
from collections.abc import Collection, Iterator, Sequence
from typing import Any, Callable, TypeVar

from rawstack.errors import PrivilegeError, RawstackError, UsageError
from rawstack.quirks import KernelQuirks, raw_to_wire, wire_to_raw
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
    """An IPPROTO_RAW socket that sends wire-format IPv4 packets through the quirk model."""

    def __init__(self, sock: socket.socket, quirks: KernelQuirks) -> None:
        self.sock = sock
        self.quirks = quirks

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, wire_packet: bytes, dst: str) -> int:
        """Write one complete IPv4 packet (header included) addressed to ``dst``.

        Returns ``time.time_ns()`` taken right before the ``sendto``.
        """
        raw = wire_to_raw(wire_packet, self.quirks, sys.byteorder)
        address = (dst, 0)
        with translated(f"sending a raw IPv4 packet to {dst}"):
            stamp = time.time_ns()
            self.sock.sendto(raw, address)
        return stamp

    def close(self) -> None:
        self.sock.close()


class RawIpReceiver:
    """A raw IPv4 socket for one protocol; reads come back in wire format.

    ``timestamps`` says whether the kernel stamps arrivals (see :meth:`recv_packets_timed`).
    """

    def __init__(self, sock: socket.socket, quirks: KernelQuirks, timestamps: bool = False) -> None:
        self.sock = sock
        self.quirks = quirks
        self.timestamps = timestamps

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv_packets(self) -> list[tuple[bytes, str]]:
        """Drain what is readable now: ``(wire IPv4 packet, source address)`` pairs."""
        return [(packet, src) for packet, src, _ in self.recv_packets_timed()]

    def recv_packets_timed(self) -> list[tuple[bytes, str, int | None]]:
        """Like :meth:`recv_packets`, plus each packet's kernel arrival stamp (ns) or None."""
        out: list[tuple[bytes, str, int | None]] = []
        for data, ancillary, addr in recv_ready(
            self.sock, "reading a raw socket", timestamps=self.timestamps
        ):
            try:
                packet = raw_to_wire(data, self.quirks, sys.byteorder)
            except ValueError:
                continue  # too short to hold an IP header: nothing to convert or answer
            out.append((packet, addr[0], rx_timestamp_ns(ancillary)))
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
) -> RawIpReceiver:
    """AF_INET/SOCK_RAW/IPPROTO_ICMP that only reads ``accept_types``.

    On Linux a raw ICMP socket also sees every echo *request* delivered locally, our own
    included (seed 004's sidenote; ``ip_local_deliver_finish``), so ICMP_FILTER drops the
    other types in the kernel when ``quirks.has_icmp_filter``. The BSDs have no
    ICMP_FILTER, but they do not pass echo requests to raw sockets either; callers still
    check the type. ``iface`` limits
    reads to packets arriving on that interface (SO_BINDTODEVICE, Linux). ``timestamps``
    asks the kernel to stamp arrivals, where it can (``receiver.timestamps`` says).
    """

    def configure(sock: socket.socket) -> bool:
        sock.setblocking(False)
        if quirks.has_icmp_filter:
            mask = struct.pack("I", icmp_filter_mask(accept_types))
            sock.setsockopt(SOL_RAW, ICMP_FILTER, mask)
        if iface is not None:
            _bind_to_device(sock, iface)
        # enable_rx_timestamps answers False rather than raise, so `what` never names it.
        return timestamps and enable_rx_timestamps(sock)

    sock, stamped = _open_raw(socket.IPPROTO_ICMP, "opening a raw ICMP socket", configure)
    return RawIpReceiver(sock, quirks, stamped)


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
        with translated(f"sending an echo request to {dst}"):
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
    """The source address the kernel would use towards ``dst`` (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with translated(f"finding a route to {dst}"):
            probe.connect((dst, 9))  # UDP connect only consults the routing table
            src: str = probe.getsockname()[0]
            return src
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
