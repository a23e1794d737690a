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
from rawstack.codec.ipv4 import PROTO_ICMP, IPv4, ip_to_bytes
from rawstack.codec.ipv4_options import echo_reply_options
from rawstack.errors import RawstackError
from rawstack.peers.base import log
from rawstack.peers.loop import Loop
from rawstack.peers.ratelimit import LimitedLog
from rawstack.quirks import KernelQuirks, host_quirks
from rawstack.sockets.raw import (
    CAN_BIND_TO_DEVICE,
    PacketInfo,
    RawIpReceiver,
    RawIpSender,
    open_raw_icmp_receiver,
    open_raw_ip_sender,
    routes_as_broadcast,
)

ECHO_IGNORE_ALL = Path("/proc/sys/net/ipv4/icmp_echo_ignore_all")
ECHO_IGNORE_BROADCASTS = Path("/proc/sys/net/ipv4/icmp_echo_ignore_broadcasts")
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


def _unicast(addr: str) -> bool:
    first = ip_to_bytes(addr)[0]
    return addr not in ("0.0.0.0", "255.255.255.255") and not 224 <= first <= 239


class IcmpResponder:
    """Answers ICMP echo requests (optionally only those arriving on ``iface``)."""

    name = "icmp"

    def __init__(self, iface: str | None = None, quirks: KernelQuirks | None = None) -> None:
        self.iface = iface
        self.quirks = quirks
        self._loop: Loop | None = None
        self._rx: RawIpReceiver | None = None
        self._tx: RawIpSender | None = None
        self._ident = 0
        self.counts: Counter[str] = Counter()
        # Any host on the link can make us complain once per packet: rate-limit it.
        self._drop_log = LimitedLog(self.name)
        self._ignore_log = LimitedLog(self.name)
        self._send_log = LimitedLog(self.name)

    def start(self, loop: Loop) -> dict[str, Any]:
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
        self._loop = loop
        loop.add_reader(self._rx, self._on_readable)
        return {"iface": self.iface}

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
            if decision.packet is None or decision.dst is None:
                self.counts["ignored"] += 1
                if decision.reason:
                    self._ignore_log(f"ignored {decision.reason}")
                continue
            try:
                self._tx.send(decision.packet, decision.dst)
            except RawstackError as exc:
                self.counts["send_errors"] += 1
                self._send_log(f"reply to {decision.dst} not sent: {exc}")
                continue
            self.counts["answered"] += 1

    def close(self) -> None:
        for limited in (self._drop_log, self._ignore_log, self._send_log):
            limited.flush()
        if self._loop is not None and self._rx is not None:
            self._loop.remove_reader(self._rx)
        self._loop = None
        for sock in (self._rx, self._tx):
            if sock is not None:
                sock.close()
        self._rx = self._tx = None

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)
