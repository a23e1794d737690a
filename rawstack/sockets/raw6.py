"""Raw IPv6 sockets: ICMPv6 (and other protocols) in and out, whole IPv6 packets where the
kernel lets a program write the header.

Theory of operation: an IPv6 raw socket is not an IPv4 one with longer addresses. The
kernel builds the IPv6 header and never hands it back on read (RFC 3542 section 3), so
what a raw IPv4 socket reads from the header arrives here as ancillary data: the hop
limit (IPV6_RECVHOPLIMIT), the destination and interface (IPV6_RECVPKTINFO), next to the
arrival stamp the IPv4 sockets use. On send, the same fields go the other way as RFC 3542
ancillary data (IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_PKTINFO, IPV6_DONTFRAG), and the kernel
computes the ICMPv6 checksum itself (3.1), so messages are written with a zero checksum.

:class:`RawIp6Sender` sends whole IPv6 packets (our header, our checksums). Where the quirk
row says the kernel takes a hand-built header (Linux: IPPROTO_RAW implies it), the bytes go
out as they are; elsewhere the header is taken apart and its fields are sent as ancillary
data on a raw socket of the upper-layer protocol, which gives the same packet on the wire
for everything a header without extension headers or a flow label can say (the kernel
may put a flow label of its own there: Linux's ``net.ipv6.auto_flowlabels``). The per-kernel
facts, with their sources, are :mod:`rawstack.quirks._ipv6` and docs/ipv6.md.
"""

from __future__ import annotations

import random
import socket
import struct
import sys
import time
from dataclasses import dataclass

from rawstack.codec import DecodeError
from rawstack.codec.icmp6 import ERROR_TYPES6
from rawstack.codec.ipv6 import MIN_MTU, IPv6, fragment6, ip6_to_bytes
from rawstack.errors import PrivilegeError, RawstackError, UsageError
from rawstack.quirks import Ipv6Quirks
from rawstack.quirks._ipv6 import HDRINCL
from rawstack.sockets import translated
from rawstack.sockets.raw import (
    Ancillary,
    _bind_to_device,
    enable_rx_timestamps,
    recv_ready,
    rx_timestamp_ns,
    send_errors,
)

# RFC 3542 option numbers differ per OS; Python exports the host's. None: not on this OS.
IPV6_RECVHOPLIMIT: int | None = getattr(socket, "IPV6_RECVHOPLIMIT", None)
IPV6_HOPLIMIT: int | None = getattr(socket, "IPV6_HOPLIMIT", None)
IPV6_RECVPKTINFO: int | None = getattr(socket, "IPV6_RECVPKTINFO", None)
IPV6_PKTINFO: int | None = getattr(socket, "IPV6_PKTINFO", None)
IPV6_TCLASS: int | None = getattr(socket, "IPV6_TCLASS", None)
IPV6_DONTFRAG: int | None = getattr(socket, "IPV6_DONTFRAG", None)
IPV6_CHECKSUM: int | None = getattr(socket, "IPV6_CHECKSUM", None)
# <linux/in6.h> IPV6_MTU (not exported by Python): a connected socket's path MTU. Linux only.
IPV6_MTU: int | None = 24 if sys.platform.startswith("linux") else None
_PKTINFO6 = struct.Struct("@16sI")  # struct in6_pktinfo: the address, then the ifindex
_INT = struct.Struct("@i")
_ANCILLARY_SPACE = socket.CMSG_SPACE(_PKTINFO6.size) + socket.CMSG_SPACE(_INT.size)


@dataclass(frozen=True)
class Received6:
    """One datagram read from an IPv6 raw socket: the upper-layer bytes and what the
    kernel said about the header it kept (RFC 3542 section 6)."""

    data: bytes
    src: str
    dst: str | None  # IPV6_PKTINFO: the header's destination
    hop_limit: int | None
    ifindex: int | None
    rx_ns: int | None


def _read_ancillary(ancillary: Ancillary) -> tuple[str | None, int | None, int | None]:
    dst: str | None = None
    hop_limit: int | None = None
    ifindex: int | None = None
    for level, kind, data in ancillary:
        if level != socket.IPPROTO_IPV6:
            continue
        if kind == IPV6_PKTINFO and len(data) >= _PKTINFO6.size:
            addr, ifindex = _PKTINFO6.unpack_from(data)
            dst = socket.inet_ntop(socket.AF_INET6, addr)
        elif kind == IPV6_HOPLIMIT and len(data) >= _INT.size:
            hop_limit = _INT.unpack_from(data)[0]
    return dst, hop_limit, ifindex


def header_cmsgs(
    *,
    hop_limit: int | None = None,
    tclass: int | None = None,
    src: str | None = None,
    dontfrag: bool | None = None,
) -> list[tuple[int, int, bytes]]:
    """RFC 3542 ancillary data setting header fields of one packet (sections 6.1-6.3, 11.2)."""
    out: list[tuple[int, int, bytes]] = []
    for value, option, name in (
        (hop_limit, IPV6_HOPLIMIT, "IPV6_HOPLIMIT"),
        (tclass, IPV6_TCLASS, "IPV6_TCLASS"),
        (None if dontfrag is None else int(dontfrag), IPV6_DONTFRAG, "IPV6_DONTFRAG"),
    ):
        if value is None:
            continue
        if option is None:
            raise UsageError(f"this system's socket API has no {name}")
        out.append((socket.IPPROTO_IPV6, option, _INT.pack(value)))
    if src is not None:
        if IPV6_PKTINFO is None:
            raise UsageError("this system's socket API has no IPV6_PKTINFO")
        # ifindex 0: the kernel routes as usual, from the source we name (RFC 3542 6.1).
        out.append((socket.IPPROTO_IPV6, IPV6_PKTINFO, _PKTINFO6.pack(ip6_to_bytes(src), 0)))
    return out


class Raw6Socket:
    """An AF_INET6 socket of one protocol that reads upper-layer messages with the header
    fields as ancillary data (raw, or the unprivileged ICMPv6 datagram socket).

    ``ident`` is the echo id a ping datagram socket owns (its local port), else None.
    """

    def __init__(
        self, sock: socket.socket, proto: int, timestamps: bool, ident: int | None = None
    ) -> None:
        self.sock = sock
        self.proto = proto
        self.timestamps = timestamps
        self.ident = ident

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(
        self,
        message: bytes,
        dst: str,
        *,
        hop_limit: int | None = None,
        tclass: int | None = None,
        src: str | None = None,
        dontfrag: bool | None = None,
    ) -> int:
        """Send ``message`` (the kernel adds the IPv6 header; ICMPv6 checksums it).

        Returns ``time.time_ns()`` taken right before the ``sendmsg``.
        """
        cmsgs = header_cmsgs(hop_limit=hop_limit, tclass=tclass, src=src, dontfrag=dontfrag)
        what = f"sending to {dst}"
        with translated(what), send_errors(what, dst):  # send_errors sees EPERM first
            stamp = time.time_ns()
            self.sock.sendmsg([message], cmsgs, 0, sockaddr6(dst, 0))
        return stamp

    def recv(self) -> list[Received6]:
        """Drain what is readable now."""
        out = []
        for data, ancillary, addr in recv_ready(
            self.sock,
            "reading an IPv6 socket",
            timestamps=self.timestamps,
            extra_space=_ANCILLARY_SPACE,
        ):
            dst, hop_limit, ifindex = _read_ancillary(ancillary)
            src = str(addr[0]).split("%", 1)[0]  # the scope is in ifindex already
            out.append(Received6(data, src, dst, hop_limit, ifindex, rx_timestamp_ns(ancillary)))
        return out

    def close(self) -> None:
        self.sock.close()


def _configure_reads(sock: socket.socket, iface: str | None) -> None:
    sock.setblocking(False)
    for option in (IPV6_RECVHOPLIMIT, IPV6_RECVPKTINFO):
        if option is not None:
            sock.setsockopt(socket.IPPROTO_IPV6, option, 1)
    if iface is not None:
        _bind_to_device(sock, iface)


def _open(kind: int, proto: int, what: str) -> socket.socket:
    with translated(what):
        return socket.socket(socket.AF_INET6, kind, proto)


def open_raw6(
    quirks: Ipv6Quirks,
    proto: int,
    *,
    iface: str | None = None,
    timestamps: bool = False,
    checksum_offset: int | None = None,
) -> Raw6Socket:
    """AF_INET6/SOCK_RAW for ``proto`` (TCP, UDP, ...): a copy of what arrives for it.

    ``checksum_offset`` sets IPV6_CHECKSUM: the kernel then fills the checksum at that
    offset on send and drops bad ones on receive (RFC 3542 3.1; ``quirks`` says which
    offsets a kernel refuses). Not for ICMPv6, whose checksum is always the kernel's.
    """
    if checksum_offset is not None and (
        checksum_offset < 0 or (checksum_offset % 2 and quirks.odd_checksum_offset_einval)
    ):
        raise ValueError(f"IPV6_CHECKSUM offset must be even and >= 0, not {checksum_offset}")
    what = f"opening a raw IPv6 socket (protocol {proto})"
    sock = _open(socket.SOCK_RAW, proto, what)
    try:
        with translated(what):
            _configure_reads(sock, iface)
            if checksum_offset is not None:
                if IPV6_CHECKSUM is None:
                    raise UsageError("this system's socket API has no IPV6_CHECKSUM")
                sock.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM, checksum_offset)
        return Raw6Socket(sock, proto, timestamps and enable_rx_timestamps(sock))
    except BaseException:
        sock.close()
        raise


def open_raw_icmp6(
    quirks: Ipv6Quirks,
    accept_types: frozenset[int] | set[int] | tuple[int, ...],
    *,
    iface: str | None = None,
    timestamps: bool = False,
) -> Raw6Socket:
    """AF_INET6/SOCK_RAW/IPPROTO_ICMPV6 that only reads ``accept_types``.

    Every kernel hands a raw ICMPv6 socket a copy of each ICMPv6 message, echo requests
    included (unlike raw IPv4 on the BSDs), so ICMP6_FILTER (RFC 3542 3.2) drops the rest
    in the kernel; its bytes are built per kernel, since a set bit blocks on Linux and
    passes on the BSDs (``quirks.filter_bytes``).
    """
    passed = frozenset(accept_types)
    if any(not 0 <= t <= 255 for t in passed):
        raise ValueError(f"ICMPv6 types are 0..255, not {sorted(passed)}")
    what = "opening a raw ICMPv6 socket"
    sock = _open(socket.SOCK_RAW, socket.IPPROTO_ICMPV6, what)
    try:
        with translated(what):
            _configure_reads(sock, iface)
            sock.setsockopt(quirks.filter_level, quirks.filter_option, quirks.filter_bytes(passed))
        return Raw6Socket(sock, socket.IPPROTO_ICMPV6, timestamps and enable_rx_timestamps(sock))
    except BaseException:
        sock.close()
        raise


def open_ping6_dgram() -> Raw6Socket:
    """The unprivileged ICMPv6 socket (SOCK_DGRAM/IPPROTO_ICMPV6; Linux ``net/ipv6/ping.c``,
    macOS ``icmp6_dgram_attach``), bound to a free echo id.

    On Linux only groups inside ``net.ipv4.ping_group_range`` may open it (it covers IPv6
    too); the kernel owns the echo id (the socket's port) and the checksum.
    """
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6)
    except PermissionError as exc:
        raise PrivilegeError(
            "opening an unprivileged ICMPv6 socket",
            "a group id inside net.ipv4.ping_group_range",
            hint="widen the sysctl, or run without --unprivileged as root",
        ) from exc
    except OSError as exc:
        raise RawstackError(f"opening an unprivileged ICMPv6 socket: {exc.strerror}") from exc
    try:
        with translated("configuring the ICMPv6 socket"):
            _configure_reads(sock, None)
            sock.bind(("::", 0))
        return Raw6Socket(
            sock, socket.IPPROTO_ICMPV6, enable_rx_timestamps(sock), sock.getsockname()[1]
        )
    except BaseException:
        sock.close()
        raise


class RawIp6Sender:
    """Whole wire-format IPv6 packets out, our header included, on every kernel.

    Linux (``quirks.header_write == HDRINCL``): one AF_INET6/SOCK_RAW/IPPROTO_RAW socket,
    whose writes are the packet as given (``rawv6_send_hdrinc`` fills nothing, so every
    length and checksum must already be right: the codecs compute them). It does not
    fragment either (EMSGSIZE above the MTU), so a packet larger than the path MTU is cut
    here into fragments (:func:`rawstack.codec.ipv6.fragment6`), as the kernel would cut a
    datagram of its own (RFC 8200 4.5: only the source fragments). Elsewhere: the
    header is sent as RFC 3542 ancillary data (hop limit, traffic class, source) on a raw
    socket of the packet's upper-layer protocol, opened on first use.
    """

    def __init__(self, quirks: Ipv6Quirks) -> None:
        self.quirks = quirks
        self._hdrincl: socket.socket | None = None
        self._by_proto: dict[int, Raw6Socket] = {}
        if quirks.header_write == HDRINCL:
            # IPPROTO_RAW implies the header is ours (inet6_create); IPV6_HDRINCL is only
            # needed on sockets of other protocols.
            self._hdrincl = _open(
                socket.SOCK_RAW, socket.IPPROTO_RAW, "opening a raw IPv6 socket (IPPROTO_RAW)"
            )

    def send(self, wire_packet: bytes, dst: str) -> int:
        """Write one complete IPv6 packet addressed to ``dst``; returns the send time (ns)."""
        what = f"sending a raw IPv6 packet to {dst}"
        if self._hdrincl is not None:
            pieces = self._fragments(wire_packet, dst)
            with translated(what), send_errors(what, dst):  # send_errors sees EPERM first
                stamp = time.time_ns()
                for piece in pieces:
                    self._hdrincl.sendto(piece, sockaddr6(dst, 0))
            return stamp
        try:
            packet = IPv6.decode(wire_packet)
        except DecodeError as exc:
            raise UsageError(f"{what}: not an IPv6 packet ({exc})") from exc
        if packet.extensions or packet.flow_label:
            raise UsageError(
                f"{what}: this kernel builds the IPv6 header itself (no IPV6_HDRINCL), so "
                "extension headers and flow labels cannot be sent as given"
            )
        sock = self._by_proto.get(packet.next_header)
        if sock is None:
            if packet.next_header in (socket.IPPROTO_ICMPV6,):
                sock = open_raw_icmp6(self.quirks, frozenset(ERROR_TYPES6))
            else:
                sock = open_raw6(self.quirks, packet.next_header)
            self._by_proto[packet.next_header] = sock
        return sock.send(
            packet.payload,
            dst,
            hop_limit=packet.hop_limit,
            tclass=packet.traffic_class,
            src=None if packet.src == "::" else packet.src,
        )

    def _fragments(self, wire_packet: bytes, dst: str) -> list[bytes]:
        if len(wire_packet) <= MIN_MTU:
            return [wire_packet]
        mtu = path_mtu6(dst)
        if mtu is None or len(wire_packet) <= mtu:
            return [wire_packet]
        try:
            packet = IPv6.decode(wire_packet)
            return [p.encode() for p in fragment6(packet, mtu, random.getrandbits(32))]
        except (DecodeError, ValueError):
            return [wire_packet]  # not fragmentable: the kernel says why (EMSGSIZE)

    def close(self) -> None:
        if self._hdrincl is not None:
            self._hdrincl.close()
        for sock in self._by_proto.values():
            sock.close()
        self._by_proto.clear()


def open_raw_ip6_sender(quirks: Ipv6Quirks) -> RawIp6Sender:
    """The sender for whole IPv6 packets on this kernel (see :class:`RawIp6Sender`)."""
    return RawIp6Sender(quirks)


def sockaddr6(addr: str, port: int) -> tuple[str, int, int, int]:
    """The AF_INET6 socket address for ``addr`` (maybe ``fe80::1%eth0``) and ``port``.

    Python reads no zone from the address text, so a link-local destination needs its
    interface index as the fourth member (sin6_scope_id), or connect/sendto say EINVAL.
    """
    bare, _, zone = addr.partition("%")
    scope = 0
    if zone:
        try:
            scope = int(zone) if zone.isdigit() else socket.if_nametoindex(zone)
        except OSError:
            raise UsageError(f"{addr}: no such interface {zone!r}") from None
    return bare, port, 0, scope


def reserve_tcp_port6(src: str) -> tuple[socket.socket, int]:
    """Bind (never listen) an IPv6 TCP socket to ``src`` (zone allowed) so no real
    connection of this host shares a probe's port."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        with translated(f"reserving a TCP port on {src}"):
            sock.bind(sockaddr6(src, 0))
    except BaseException:
        sock.close()
        raise
    port: int = sock.getsockname()[1]
    return sock, port


def strip_zone(addr: str) -> str:
    """``fe80::1%eth0`` -> ``fe80::1``: the address as it goes in a header."""
    return addr.split("%", 1)[0]


def with_zone(addr: str, ifindex: int | None) -> str:
    """``addr`` with its interface as ``%zone`` when it needs one to be reached (link-local
    unicast or multicast, RFC 4007 section 11; sendto and connect read the zone)."""
    if "%" in addr or not ifindex:
        return addr
    packed = ip6_to_bytes(addr)
    link_local = packed[0] == 0xFE and packed[1] & 0xC0 == 0x80
    if not (link_local or (packed[0] == 0xFF and packed[1] & 0x0F == 0x02)):
        return addr
    try:
        return f"{addr}%{socket.if_indextoname(ifindex)}"
    except OSError:
        return f"{addr}%{ifindex}"


def ipv6_available() -> bool:
    """False when this kernel has no IPv6 at all (EAFNOSUPPORT for an AF_INET6 socket)."""
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
    except OSError:
        return False
    return True


def resolve(host: str, family: int | None = None) -> tuple[int, str]:
    """``(AF_INET or AF_INET6, address text)`` for ``host``, or :class:`UsageError`.

    ``family`` None takes the first address getaddrinfo gives (an IPv6 literal is IPv6, as
    iputils ping decides without -4/-6).
    """
    wanted = socket.AF_UNSPEC if family is None else family
    try:
        infos = socket.getaddrinfo(host, None, wanted, socket.SOCK_RAW)
    except (OSError, ValueError) as exc:  # ValueError: NUL bytes, bad IDNA labels
        versions: dict[int, str] = {socket.AF_INET: " IPv4", socket.AF_INET6: " IPv6"}
        version = versions.get(wanted, "")
        raise UsageError(f"cannot resolve {host!r} to an{version} address") from exc
    for found, _, _, _, sockaddr in infos:
        if found == socket.AF_INET6 and len(sockaddr) > 3 and sockaddr[3]:
            # A link-local address names an interface too (RFC 4007 11): keep it as %zone.
            return int(found), with_zone(str(sockaddr[0]), int(sockaddr[3]))
        if found in (socket.AF_INET, socket.AF_INET6):
            return int(found), str(sockaddr[0])
    raise UsageError(f"cannot resolve {host!r} to an IP address")


def resolve_ipv6(host: str) -> str:
    """An IPv6 address for ``host`` (an address or a name), or :class:`UsageError`."""
    return resolve(host, socket.AF_INET6)[1]


def path_mtu6(dst: str) -> int | None:
    """The kernel's path MTU towards ``dst`` (IPV6_MTU of a connected UDP socket), or None
    where it cannot say (no route, or not Linux)."""
    if IPV6_MTU is None:
        return None
    probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        probe.connect(sockaddr6(dst, 9))  # UDP connect only consults the routing table
        mtu: int = probe.getsockopt(socket.IPPROTO_IPV6, IPV6_MTU)
        return mtu
    except OSError:
        return None
    finally:
        probe.close()


def route_source6(dst: str) -> str:
    """The source address the kernel would use towards ``dst`` (no packet is sent).

    No route is a :class:`UsageError` saying so, as iputils' "connect: Network is
    unreachable" (exit 2).
    """
    probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        try:
            probe.connect(sockaddr6(dst, 9))  # UDP connect only consults the routing table
        except OSError as exc:
            raise UsageError(f"no route to {dst}: {exc.strerror}") from exc
        src: str = probe.getsockname()[0]
        return src.split("%", 1)[0]
    finally:
        probe.close()
