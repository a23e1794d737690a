"""An ICMP echo responder in user space: requests in on a raw ICMP socket, replies out
through IPPROTO_RAW with an IP header we build ourselves.

The kernel normally answers echo requests itself; for this responder to be the only
one, ``net.ipv4.icmp_echo_ignore_all`` must be 1 in its namespace, otherwise every
request gets two replies (iputils reports the second as ``DUP!``). The BSDs never hand
echo requests to raw sockets (QUIRKS.md), so there this responder sees nothing.

The rules a host's echo answers keep (RFC 1122 3.2.2.6, and what Linux's ``icmp_echo``
does), made here because nothing in the kernel makes them for a raw socket:

- Size: the raw socket reads the request reassembled, up to 65535 bytes; a reply larger
  than the path MTU is fragmented by the sender (:class:`RawIpSender`), since Linux does
  not fragment IP_HDRINCL writes.
- Broadcast and multicast requests (IP_PKTINFO says the packet was not addressed to one of
  our addresses) are answered only when ``net.ipv4.icmp_echo_ignore_broadcasts`` is 0, and
  then from our address on that interface, never from the group address (RFC 1122
  3.2.1.3: a broadcast address is never a source).
- A request *from* a broadcast or multicast address is never answered (it names no host).
- Record Route and Timestamp options are reflected with this host added (RFC 1122
  3.2.2.6 SHOULD; :func:`rawstack.codec.ipv4_options.echo_reply_options`).

ICMPv6 echo (RFC 4443 4.1, 4.2) is answered too, on a raw ICMPv6 socket that every kernel
hands echo requests (docs/ipv6.md); ``net.ipv6.icmp.echo_ignore_all`` must be 1 for the
kernel to stay quiet. The reply goes out with our own IPv6 header where the kernel takes
one (:class:`rawstack.sockets.raw6.RawIp6Sender`), from the address the request was sent
to (IPV6_PKTINFO), or for a multicast request from a unicast address of ours (4.2: "MUST
be a unicast address belonging to the interface"), as ``net.ipv6.icmp.echo_ignore_multicast``
allows; a request from ``::`` or a multicast source names no host and is not answered.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rawstack.codec import DecodeError
from rawstack.codec.icmp import ECHO_REPLY, ECHO_REQUEST, IcmpEcho, decode_icmp
from rawstack.codec.icmp6 import ECHO_REPLY6, ECHO_REQUEST6, Icmp6Echo, decode_icmp6
from rawstack.codec.ipv4 import PROTO_ICMP, IPv4, ip_to_bytes
from rawstack.codec.ipv4_options import echo_reply_options
from rawstack.codec.ipv6 import PROTO_ICMPV6, IPv6, ip6_to_bytes
from rawstack.errors import RawstackError
from rawstack.peers.base import log
from rawstack.peers.loop import Reactor
from rawstack.peers.ratelimit import LimitedLog
from rawstack.quirks import KernelQuirks, host_ipv6_quirks, host_quirks
from rawstack.sockets.raw import (
    CAN_BIND_TO_DEVICE,
    PacketInfo,
    RawIpReceiver,
    RawIpSender,
    open_raw_icmp_receiver,
    open_raw_ip_sender,
    routes_as_broadcast,
)
from rawstack.sockets.raw6 import (
    Raw6Socket,
    RawIp6Sender,
    Received6,
    ipv6_available,
    open_raw_icmp6,
    open_raw_ip6_sender,
    route_source6,
    with_zone,
)

ECHO_IGNORE_ALL = Path("/proc/sys/net/ipv4/icmp_echo_ignore_all")
ECHO_IGNORE_BROADCASTS = Path("/proc/sys/net/ipv4/icmp_echo_ignore_broadcasts")
ECHO_IGNORE_ALL6 = Path("/proc/sys/net/ipv6/icmp/echo_ignore_all")
ECHO_IGNORE_MULTICAST6 = Path("/proc/sys/net/ipv6/icmp/echo_ignore_multicast")
REPLY_TTL = 64


def kernel_answers_echo(path: Path = ECHO_IGNORE_ALL) -> bool | None:
    """True when this namespace's kernel replies to echo requests itself; None if unknown."""
    try:
        return path.read_text().strip() == "0"
    except OSError:
        return None


def ignores_broadcast_echo(path: Path = ECHO_IGNORE_BROADCASTS) -> bool:
    """``net.ipv4.icmp_echo_ignore_broadcasts`` of this namespace (read on every broadcast
    request, as the kernel does); where it cannot be read, the kernel's default: ignore."""
    try:
        return path.read_text().strip() != "0"
    except OSError:
        return True


def ms_since_midnight_ut(now: float | None = None) -> int:
    """RFC 791's timestamp: milliseconds since midnight UT (Linux's
    ``inet_current_timestamp``)."""
    wall = time.time() if now is None else now
    return int(wall % 86400 * 1000)


@dataclass(frozen=True)
class Decision:
    """What the responder does with one packet: send ``packet`` to ``dst``, or ignore it
    for ``reason`` (None for a packet that is simply not an echo request)."""

    packet: bytes | None = None
    dst: str | None = None
    reason: str | None = None


def build_reply(
    request: bytes,
    ident: int,
    *,
    info: PacketInfo | None = None,
    ignore_broadcasts: Callable[[], bool] = ignores_broadcast_echo,
    broadcast_source: Callable[[str], bool] = lambda addr: False,
    ms: int = 0,
) -> Decision:
    """The decision on one wire packet read from the raw ICMP socket.

    ``info`` is its IP_PKTINFO (where the platform gives one); ``ignore_broadcasts`` is
    asked only for a request sent to a group address; ``broadcast_source`` says whether
    this host routes an address as broadcast; ``ms`` is the time for Timestamp options.
    Raises :class:`DecodeError` for a malformed packet (the caller logs the reason).
    """
    ip = IPv4.decode(request, verify=True)
    if ip.proto != PROTO_ICMP or ip.mf or ip.frag_offset:
        return Decision()
    icmp = decode_icmp(ip.payload, verify=True)
    if not isinstance(icmp, IcmpEcho) or icmp.type != ECHO_REQUEST:
        return Decision()
    if not _unicast(ip.src) or broadcast_source(ip.src):
        # RFC 1122 3.2.1.3: a broadcast or multicast address is never a source, so
        # nobody is there to answer.
        return Decision(reason=f"echo request from {ip.src}, a group address: not answered")
    src = ip.dst
    if not _unicast(ip.dst) or (info is not None and info.to_group):
        if ignore_broadcasts():
            return Decision(
                reason=f"echo request to {ip.dst} from {ip.src}: a group address, and "
                "net.ipv4.icmp_echo_ignore_broadcasts is 1"
            )
        if info is None:
            return Decision(reason=f"echo request to group {ip.dst}: no local address known")
        src = info.spec_dst  # our address on the interface, never the group's
    options = echo_reply_options(ip.options, src, ms)
    if options is None:
        return Decision(reason=f"echo request from {ip.src} with a source route: not answered")
    reply = IcmpEcho(ECHO_REPLY, icmp.ident, icmp.seq, icmp.payload)
    packet = IPv4(
        src=src,
        dst=ip.src,
        proto=PROTO_ICMP,
        payload=reply.encode(),
        ttl=REPLY_TTL,
        tos=ip.tos,
        ident=ident,
        options=options,
    )
    return Decision(packet.encode(), ip.src)


def build_reply6(
    request: Received6,
    *,
    ignore_multicast: Callable[[], bool] = lambda: ignores_broadcast_echo(ECHO_IGNORE_MULTICAST6),
    source_towards: Callable[[str], str] = route_source6,
) -> Decision:
    """The decision on one ICMPv6 message read from the raw ICMPv6 socket.

    The kernel verified its checksum (raw ICMPv6 sockets drop bad ones), and the header is
    not there to read: ``request.dst`` is its destination from IPV6_PKTINFO. For a request
    to a multicast group ``ignore_multicast`` is asked, and ``source_towards`` picks our
    unicast source. Raises :class:`DecodeError` for a malformed message.
    """
    icmp = decode_icmp6(request.data)
    if not isinstance(icmp, Icmp6Echo) or icmp.type != ECHO_REQUEST6:
        return Decision()
    if request.src == "::" or ip6_to_bytes(request.src)[0] == 0xFF:
        return Decision(reason=f"echo request from {request.src}, no host: not answered")
    src = request.dst
    if src is None or ip6_to_bytes(src)[0] == 0xFF:
        if ignore_multicast():
            return Decision(
                reason=f"echo request to {src} from {request.src}: a multicast group, and "
                "net.ipv6.icmp.echo_ignore_multicast is 1"
            )
        src = source_towards(request.src)
    reply = Icmp6Echo(ECHO_REPLY6, icmp.ident, icmp.seq, icmp.payload).encode(src, request.src)
    packet = IPv6(src, request.src, PROTO_ICMPV6, reply, hop_limit=REPLY_TTL)
    # A link-local requester is reached through the interface the request came in on.
    return Decision(packet.encode(), with_zone(request.src, request.ifindex))


def _unicast(addr: str) -> bool:
    first = ip_to_bytes(addr)[0]
    return addr not in ("0.0.0.0", "255.255.255.255") and not 224 <= first <= 239


class IcmpResponder:
    """Answers ICMP echo requests (optionally only those arriving on ``iface``)."""

    name = "icmp"

    def __init__(self, iface: str | None = None, quirks: KernelQuirks | None = None) -> None:
        self.iface = iface
        self.quirks = quirks
        self._loop: Reactor | None = None
        self._rx: RawIpReceiver | None = None
        self._tx: RawIpSender | None = None
        self._rx6: Raw6Socket | None = None
        self._tx6: RawIp6Sender | None = None
        self._ident = 0
        self.counts: Counter[str] = Counter()
        # Any host on the link can make us complain once per packet: rate-limit it.
        self._drop_log = LimitedLog(self.name)
        self._ignore_log = LimitedLog(self.name)
        self._send_log = LimitedLog(self.name)

    def start(self, loop: Reactor) -> dict[str, Any]:
        quirks = self.quirks or host_quirks()
        iface = self.iface
        if iface is not None and not CAN_BIND_TO_DEVICE:
            # serve-all passes its --iface to every peer; where the kernel cannot limit a
            # raw socket to one interface, answer on all rather than refuse to start.
            log(self.name, f"warning: cannot limit to {iface} here; answering on every interface")
            iface = None
        try:
            self._rx = open_raw_icmp_receiver(quirks, {ECHO_REQUEST}, iface, pktinfo=True)
            self._tx = open_raw_ip_sender(quirks)
            self._open_ipv6(iface)
        except BaseException:
            self.close()
            raise
        if kernel_answers_echo():
            log(
                self.name,
                "warning: net.ipv4.icmp_echo_ignore_all is 0 in this namespace, so the kernel "
                "answers echo requests too and every reply will be duplicated",
            )
        elif quirks.echo_request_to_raw is False:
            log(self.name, f"warning: {quirks.label} does not pass echo requests to raw sockets")
        if self._rx6 is not None and kernel_answers_echo(ECHO_IGNORE_ALL6):
            log(
                self.name,
                "warning: net.ipv6.icmp.echo_ignore_all is 0 in this namespace, so the kernel "
                "answers ICMPv6 echo requests too and every reply will be duplicated",
            )
        self._loop = loop
        loop.add_reader(self._rx, self._on_readable)
        if self._rx6 is not None:
            loop.add_reader(self._rx6, self._on_readable6)
        return {"iface": self.iface}

    def _open_ipv6(self, iface: str | None) -> None:
        if not ipv6_available():
            log(self.name, "warning: this kernel has no IPv6; answering IPv4 only")
            return
        quirks6 = host_ipv6_quirks()
        self._rx6 = open_raw_icmp6(quirks6, {ECHO_REQUEST6}, iface=iface)
        self._tx6 = open_raw_ip6_sender(quirks6)
        if quirks6.echo_ignore_sysctl is None:
            # docs/ipv6.md: no switch found that stops this kernel's own ICMPv6 echo replies.
            log(
                self.name,
                f"warning: {quirks6.label} answers ICMPv6 echo requests itself, so every "
                "IPv6 reply will be duplicated",
            )

    def _on_readable6(self) -> None:
        if self._rx6 is None or self._tx6 is None:
            return
        try:
            requests = self._rx6.recv()
        except RawstackError as exc:
            log(self.name, f"read failed: {exc}")
            return
        for request in requests:
            self.counts["received"] += 1
            try:
                decision = build_reply6(request)
            except (DecodeError, RawstackError) as exc:
                self.counts["dropped"] += 1
                self._drop_log(f"dropped: {exc}")
                continue
            self._act(decision, self._tx6)

    def _on_readable(self) -> None:
        if self._rx is None or self._tx is None:
            return
        try:
            packets = self._rx.recv_packets_info()
        except RawstackError as exc:
            log(self.name, f"read failed: {exc}")
            return
        for packet, _src, info in packets:
            self.counts["received"] += 1
            # Never 0: Linux would fill a fresh id into each fragment of a large reply.
            self._ident = self._ident % 0xFFFF + 1
            try:
                decision = build_reply(
                    packet,
                    self._ident,
                    info=info,
                    broadcast_source=routes_as_broadcast,
                    ms=ms_since_midnight_ut(),
                )
            except DecodeError as exc:
                self.counts["dropped"] += 1
                self._drop_log(f"dropped: {exc}")
                continue
            self._act(decision, self._tx)

    def _act(self, decision: Decision, sender: RawIpSender | RawIp6Sender) -> None:
        """Send the reply ``decision`` holds, or count and log why there is none."""
        if decision.packet is None or decision.dst is None:
            self.counts["ignored"] += 1
            if decision.reason:
                self._ignore_log(f"ignored {decision.reason}")
            return
        try:
            sender.send(decision.packet, decision.dst)
        except RawstackError as exc:
            self.counts["send_errors"] += 1
            self._send_log(f"reply to {decision.dst} not sent: {exc}")
            return
        self.counts["answered"] += 1

    def close(self) -> None:
        for limited in (self._drop_log, self._ignore_log, self._send_log):
            limited.flush()
        if self._loop is not None and self._rx is not None:
            self._loop.remove_reader(self._rx)
        if self._loop is not None and self._rx6 is not None:
            self._loop.remove_reader(self._rx6)
        self._loop = None
        for sock in (self._rx, self._tx, self._rx6, self._tx6):
            if sock is not None:
                sock.close()
        self._rx = self._tx = None
        self._rx6 = self._tx6 = None

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)
