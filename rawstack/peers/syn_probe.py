"""A TCP SYN probe with a hand-built segment: open, closed or filtered.

Theory of operation: we write one SYN (with an MSS option) in our own IPv4 header through
IPPROTO_RAW and read the answer on a raw IPPROTO_TCP socket, which gets a copy of every
TCP segment delivered to this host. A SYN-ACK acknowledging our ISN means *open* (and we
answer it with a RST at once, so the peer drops its half-open connection); a RST means
*closed*; an ICMP destination-unreachable quoting our SYN means *filtered* at once, with
the code as its reason (as nmap reports it: ``admin-prohibited``, ``host-unreach``...; RFC
792, RFC 1812 5.2.7.1 for codes 9, 10, 13); silence until the timeout means *filtered*
too. A raw ICMP socket filtered to type 3 reads those errors.

Over IPv6 (an IPv6 HOST, or ``family=AF_INET6``) the SYN goes out in our own IPv6 header
where the kernel takes one (:class:`rawstack.sockets.raw6.RawIp6Sender`: IPPROTO_RAW on
Linux, RFC 3542 ancillary data elsewhere), and the answer is read on a raw IPv6 TCP
socket, which hands over the segment alone (RFC 3542 section 3) with its destination in
IPV6_PKTINFO; the rules are the same, an ICMPv6 destination-unreachable (type 1, RFC 4443
3.1) read on a raw ICMPv6 socket meaning *filtered* at once.

Our kernel knows nothing of the connection either, so it also answers the SYN-ACK with
a RST of its own (RFC 9293 3.10.7.1: a segment for a CLOSED connection elicits a reset).
We still send ours: it is what rawstack promises, and it holds where that kernel RST is
suppressed (a firewall, a BSD blackhole sysctl). The peer ignores whichever comes second.
The source port is reserved by binding a (never listening) TCP socket, so no real
connection of this host can share it.
"""

from __future__ import annotations

import math
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rawstack.codec import DecodeError
from rawstack.codec.icmp import DEST_UNREACH, IcmpError, decode_icmp
from rawstack.codec.icmp6 import DEST_UNREACH6, Icmp6Error, decode_icmp6
from rawstack.codec.ipv4 import PROTO_ICMP, PROTO_TCP, IPv4
from rawstack.codec.ipv6 import IPv6
from rawstack.codec.tcp import ACK, RST, SYN, Tcp
from rawstack.codec.tcp_options import TcpMss
from rawstack.errors import UsageError
from rawstack.peers.loop import Loop
from rawstack.quirks import KernelQuirks, host_ipv6_quirks, host_quirks
from rawstack.sockets.raw import (
    RawIpReceiver,
    RawIpSender,
    open_raw_icmp_receiver,
    open_raw_ip_sender,
    open_raw_tcp,
    reserve_tcp_port,
    resolve_ipv4,
    route_source,
)
from rawstack.sockets.raw6 import (
    Raw6Socket,
    RawIp6Sender,
    Received6,
    open_raw6,
    open_raw_icmp6,
    open_raw_ip6_sender,
    reserve_tcp_port6,
    resolve,
    route_source6,
    strip_zone,
)

OPEN = "open"
CLOSED = "closed"
FILTERED = "filtered"
SYN_MSS = 1460
SYN_WINDOW = 64240
# Destination-unreachable codes that make a port filtered, named as nmap names its reasons
# (nmap's SYN scan treats exactly these as "filtered"; the others are left to the timeout).
UNREACH_REASONS = {
    0: "net-unreach",
    1: "host-unreach",
    2: "proto-unreach",
    3: "port-unreach",
    9: "net-prohibited",
    10: "host-prohibited",
    13: "admin-prohibited",
}
# The ICMPv6 destination-unreachable codes (RFC 4443 3.1; 5 and 6 from RFC 4443 too), with
# the reason names nmap's reason table gives them.
UNREACH6_REASONS = {
    0: "no-route",
    1: "admin-prohibited",
    2: "beyond-scope",
    3: "host-unreach",
    4: "port-unreach",
    5: "source-addr-failed-policy",
    6: "reject-route",
}


@dataclass(frozen=True)
class Probe:
    """One probe's outcome; ``rtt`` is the handshake (or RST) time in seconds."""

    state: str
    rtt: float | None = None
    mss: int | None = None  # the peer's MSS option in its SYN-ACK
    reason: str | None = None  # for an ICMP answer: nmap's name of the unreachable code
    icmp_from: str | None = None  # who sent that ICMP error

    def line(self, dst: str, port: int, timeout: float) -> str:
        if ":" in dst:
            dst = f"[{dst}]"  # an IPv6 address and a port, as in a URL (RFC 3986 3.2.2)
        if self.state == OPEN:
            mss = f", MSS {self.mss}" if self.mss is not None else ""
            return f"{dst}:{port} open (SYN-ACK in {_ms(self.rtt)} ms{mss})"
        if self.state == CLOSED:
            return f"{dst}:{port} closed (RST in {_ms(self.rtt)} ms)"
        if self.reason is not None:
            return (
                f"{dst}:{port} filtered (ICMP {self.reason} from {self.icmp_from} "
                f"in {_ms(self.rtt)} ms)"
            )
        return f"{dst}:{port} filtered (no answer in {timeout:g} s)"


@dataclass
class SynProbeResult:
    host: str
    dst: str
    port: int
    probes: list[Probe] = field(default_factory=list)

    @property
    def state(self) -> str:
        """open if any probe saw a SYN-ACK, else closed if any saw a RST, else filtered."""
        states = {p.state for p in self.probes}
        for state in (OPEN, CLOSED):
            if state in states:
                return state
        return FILTERED

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "dst": self.dst,
            "port": self.port,
            "state": self.state,
            "probes": [
                {
                    "state": p.state,
                    "rtt_ms": None if p.rtt is None else p.rtt * 1000,
                    "mss": p.mss,
                    "reason": p.reason,
                    "icmp_from": p.icmp_from,
                }
                for p in self.probes
            ],
        }


def classify(packet: bytes, *, src: str, dst: str, sport: int, dport: int, isn: int) -> Tcp | None:
    """The answer to our SYN inside a wire IPv4 packet, or None if it is something else."""
    try:
        ip = IPv4.decode(packet)
        if ip.proto != PROTO_TCP or ip.src != dst or ip.dst != src or ip.mf or ip.frag_offset:
            return None
        # No checksum check: on loopback and veth the sender's checksum is offloaded
        # (CHECKSUM_PARTIAL), so a raw socket reads a segment whose checksum field holds
        # only the pseudo-header sum; the kernel has already accepted the packet.
        seg = Tcp.decode(ip.payload)
    except DecodeError:
        return None
    return _answer(seg, sport=sport, dport=dport, isn=isn)


def classify6(
    received: Received6, *, src: str, dst: str, sport: int, dport: int, isn: int
) -> Tcp | None:
    """The answer to our SYN in a segment read from a raw IPv6 TCP socket, or None.

    The segment arrives without its IPv6 header; its addresses are the read's source and
    IPV6_PKTINFO destination (where the platform gives one).
    """
    if received.src != strip_zone(dst) or (received.dst is not None and received.dst != src):
        return None
    try:
        seg = Tcp.decode(received.data)  # no checksum check: see classify
    except DecodeError:
        return None
    return _answer(seg, sport=sport, dport=dport, isn=isn)


def _answer(seg: Tcp, *, sport: int, dport: int, isn: int) -> Tcp | None:
    """``seg`` if it answers our SYN from ``sport`` to ``dport`` with ISN ``isn``."""
    if seg.src_port != dport or seg.dst_port != sport:
        return None
    expected_ack = (isn + 1) & 0xFFFFFFFF
    if seg.flags & RST:
        # RFC 9293 3.10.7.1: a RST answering a SYN carries ACK of our ISN + 1.
        return seg if seg.flags & ACK and seg.ack == expected_ack else None
    if seg.flags & (SYN | ACK) == SYN | ACK and seg.ack == expected_ack:
        return seg
    return None


def classify_icmp(
    packet: bytes, *, src: str, dst: str, sport: int, dport: int, isn: int
) -> tuple[str, str] | None:
    """``(reason, sender)`` when a wire IPv4 packet is an ICMP destination-unreachable
    about our SYN (the quoted header and the first 8 TCP bytes: ports and ISN, RFC 792)."""
    try:
        ip = IPv4.decode(packet)
        if ip.proto != PROTO_ICMP or ip.dst != src:
            return None
        icmp = decode_icmp(ip.payload)
        if not isinstance(icmp, IcmpError) or icmp.type != DEST_UNREACH:
            return None
        quoted = icmp.quoted_ipv4()
    except DecodeError:
        return None
    reason = UNREACH_REASONS.get(icmp.code)
    head = quoted.payload[:8]
    if reason is None or quoted.proto != PROTO_TCP or len(head) < 8:
        return None
    if (quoted.src, quoted.dst) != (src, dst):
        return None
    if (int.from_bytes(head[0:2], "big"), int.from_bytes(head[2:4], "big")) != (sport, dport):
        return None
    if int.from_bytes(head[4:8], "big") != isn:
        return None
    return reason, ip.src


def classify_icmp6(
    received: Received6, *, src: str, dst: str, sport: int, dport: int, isn: int
) -> tuple[str, str] | None:
    """``(reason, sender)`` when an ICMPv6 message read on a raw ICMPv6 socket is a
    destination-unreachable about our SYN (it quotes as much of the SYN as fits, RFC 4443
    3.1: its IPv6 header, then the ports and ISN)."""
    if received.dst is not None and received.dst != src:
        return None
    try:
        icmp = decode_icmp6(received.data)
        if not isinstance(icmp, Icmp6Error) or icmp.type != DEST_UNREACH6:
            return None
        quoted = icmp.quoted_ipv6()
    except DecodeError:
        return None
    reason = UNREACH6_REASONS.get(icmp.code)
    head = quoted.payload[:8]
    if reason is None or quoted.next_header != PROTO_TCP or len(head) < 8:
        return None
    if (quoted.src, quoted.dst) != (src, strip_zone(dst)):
        return None
    if (int.from_bytes(head[0:2], "big"), int.from_bytes(head[2:4], "big")) != (sport, dport):
        return None
    if int.from_bytes(head[4:8], "big") != isn:
        return None
    return reason, received.src


def _record(
    result: SynProbeResult,
    probe: Probe,
    on_probe: Callable[[SynProbeResult, Probe], None] | None,
) -> None:
    result.probes.append(probe)
    if on_probe is not None:
        on_probe(result, probe)


def syn_probe(
    host: str,
    port: int,
    count: int = 1,
    timeout: float = 1.0,
    *,
    quirks: KernelQuirks | None = None,
    on_probe: Callable[[SynProbeResult, Probe], None] | None = None,
    family: int | None = None,
) -> SynProbeResult:
    """Send ``count`` SYNs one after another, each waiting up to ``timeout`` s.

    ``on_probe(result, probe)`` is called as each probe ends. ``family`` (``AF_INET`` or
    ``AF_INET6``, as ``-4``/``-6``) picks the IP version; None takes what ``host``
    resolves to first.
    """
    if not 1 <= port <= 0xFFFF:
        raise UsageError(f"port must be 1..65535, not {port}")
    if count < 1:
        raise UsageError(f"count must be at least 1, not {count}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"bad timeout {timeout}: must be > 0 seconds")
    if family != socket.AF_INET:
        found, addr = resolve(host, family)
        if found == socket.AF_INET6:
            return _syn_probe6(host, addr, port, count=count, timeout=timeout, on_probe=on_probe)
    dst = resolve_ipv4(host)
    q = quirks or host_quirks()  # a name of its own: the lambdas below see it narrowed

    def source() -> tuple[str, socket.socket, int]:
        src = route_source(dst)
        return (src, *reserve_tcp_port(src))

    return _probe_all(
        SynProbeResult(host, dst, port),
        receiver=lambda: open_raw_tcp(q),
        errors=lambda: open_raw_icmp_receiver(q, {DEST_UNREACH}),
        sender=lambda: open_raw_ip_sender(q),
        source=source,
        count=count,
        timeout=timeout,
        on_probe=on_probe,
    )


def _syn_probe6(
    host: str,
    dst: str,
    port: int,
    *,
    count: int,
    timeout: float,
    on_probe: Callable[[SynProbeResult, Probe], None] | None,
) -> SynProbeResult:
    """:func:`syn_probe` towards the IPv6 address ``dst``."""
    quirks6 = host_ipv6_quirks()

    def source() -> tuple[str, socket.socket, int]:
        src = route_source6(dst)
        # A link-local source binds only with the zone the destination names.
        zone = dst.partition("%")[2]
        link_local = src.startswith("fe80:")
        return (src, *reserve_tcp_port6(f"{src}%{zone}" if zone and link_local else src))

    return _probe_all(
        SynProbeResult(host, dst, port),
        receiver=lambda: open_raw6(quirks6, PROTO_TCP),
        errors=lambda: open_raw_icmp6(quirks6, {DEST_UNREACH6}),
        sender=lambda: open_raw_ip6_sender(quirks6),
        source=source,
        count=count,
        timeout=timeout,
        on_probe=on_probe,
    )


# One IP version's sockets at a time: its receivers and its sender.
_Receiver = TypeVar("_Receiver", RawIpReceiver, Raw6Socket)
_Sender = TypeVar("_Sender", RawIpSender, RawIp6Sender)


def _probe_all(
    result: SynProbeResult,
    *,
    receiver: Callable[[], _Receiver],
    errors: Callable[[], _Receiver],
    sender: Callable[[], _Sender],
    source: Callable[[], tuple[str, socket.socket, int]],
    count: int,
    timeout: float,
    on_probe: Callable[[SynProbeResult, Probe], None] | None,
) -> SynProbeResult:
    """Open the sockets (each closed again on any failure), then probe ``count`` times.

    ``source()`` (the route's source address, a reserved port and its number) is asked
    after the sockets, so that a missing privilege is what is said first.
    """
    tcp_in = receiver()
    icmp_in: _Receiver | None = None
    try:
        icmp_in = errors()
        out = sender()
        try:
            src, reserved, sport = source()
        except BaseException:
            out.close()
            raise
        try:
            for _ in range(count):
                probe = _probe_once(
                    sender=out,
                    receivers=(tcp_in, icmp_in),
                    src=src,
                    dst=result.dst,
                    sport=sport,
                    dport=result.port,
                    timeout=timeout,
                )
                _record(result, probe, on_probe)
        finally:
            reserved.close()
            out.close()
    finally:
        tcp_in.close()
        if icmp_in is not None:
            icmp_in.close()
    return result


def _probe_once(
    *,
    sender: RawIpSender | RawIp6Sender,
    receivers: tuple[RawIpReceiver, RawIpReceiver] | tuple[Raw6Socket, Raw6Socket],
    src: str,
    dst: str,
    sport: int,
    dport: int,
    timeout: float,
) -> Probe:
    isn = random.getrandbits(32)
    syn = Tcp(sport, dport, isn, flags=SYN, window=SYN_WINDOW, options=(TcpMss(SYN_MSS),))
    loop = Loop()
    answer: list[Probe] = []
    sent_at = loop.time()

    receiver, errors = receivers

    def answers() -> list[Tcp | None]:
        if isinstance(receiver, Raw6Socket):
            return [
                classify6(got, src=src, dst=dst, sport=sport, dport=dport, isn=isn)
                for got in receiver.recv()
            ]
        return [
            classify(packet, src=src, dst=dst, sport=sport, dport=dport, isn=isn)
            for packet, _ in receiver.recv_packets()
        ]

    def unreachables() -> list[tuple[str, str] | None]:
        if isinstance(errors, Raw6Socket):
            return [
                classify_icmp6(got, src=src, dst=dst, sport=sport, dport=dport, isn=isn)
                for got in errors.recv()
            ]
        return [
            classify_icmp(packet, src=src, dst=dst, sport=sport, dport=dport, isn=isn)
            for packet, _ in errors.recv_packets()
        ]

    def on_error() -> None:
        for found in unreachables():
            if found is not None:
                reason, sender_addr = found
                answer.append(Probe(FILTERED, loop.time() - sent_at, None, reason, sender_addr))
                loop.stop()
                return

    def on_readable() -> None:
        for seg in answers():
            if seg is None:
                continue
            rtt = loop.time() - sent_at
            if seg.flags & RST:
                answer.append(Probe(CLOSED, rtt))
            else:
                mss = seg.option(TcpMss)
                rst = Tcp(sport, dport, (isn + 1) & 0xFFFFFFFF, flags=RST, window=0)
                _send(sender, src, dst, rst)
                answer.append(Probe(OPEN, rtt, None if mss is None else mss.mss))
            loop.stop()
            return

    try:
        loop.add_reader(receiver, on_readable)
        loop.add_reader(errors, on_error)
        sent_at = loop.time()
        _send(sender, src, dst, syn)
        loop.call_later(timeout, loop.stop)
        loop.run()
        loop.remove_reader(receiver)
        loop.remove_reader(errors)
    finally:
        loop.close()
    return answer[0] if answer else Probe(FILTERED)


def _send(sender: RawIpSender | RawIp6Sender, src: str, dst: str, seg: Tcp) -> None:
    if isinstance(sender, RawIp6Sender):
        wire = strip_zone(dst)  # sendto takes the %zone, the header and checksum do not
        sender.send(IPv6(src, wire, PROTO_TCP, seg.encode(src, wire)).encode(), dst)
        return
    packet = IPv4(src, dst, PROTO_TCP, seg.encode(src, dst), df=True, ident=random.getrandbits(16))
    sender.send(packet.encode(), dst)


def _ms(seconds: float | None) -> str:
    return "?" if seconds is None else f"{seconds * 1000:.3f}"
