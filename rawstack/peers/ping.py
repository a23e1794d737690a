"""ping over raw sockets: our own IP header out through IPPROTO_RAW (the quirk model),
replies in on a raw ICMP socket that the kernel filters to replies and errors.

With ``unprivileged=True`` the Linux SOCK_DGRAM ICMP socket is used instead: no
CAP_NET_RAW needed, the kernel writes the IP header and picks the echo id.

IPv6 destinations (``family=AF_INET6``, or an address that resolves to one) go the same
way with ICMPv6: our IPv6 header through IPPROTO_RAW where the kernel takes one (Linux),
the hop limit as RFC 3542 ancillary data where it does not (:mod:`rawstack.sockets.raw6`),
and replies on a raw ICMPv6 socket filtered in the kernel to replies and errors, the hop
limit arriving as ancillary data since raw IPv6 reads carry no header.

RTTs are timed as iputils times them: from the wall clock read right before ``sendto`` to
the kernel's arrival stamp on the reply (both sockets ask for one), so the time this loop
takes to wake up and read is not counted. Where the kernel gives no stamp the session falls
back to the loop's clock (:mod:`rawstack.engines.ping`).
"""

from __future__ import annotations

import math
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Union

from rawstack.codec.icmp import DEST_UNREACH, ECHO_REPLY, TIME_EXCEEDED
from rawstack.codec.icmp6 import ECHO_REPLY6, ERROR_TYPES6
from rawstack.codec.ipv4 import PROTO_ICMP, IPv4
from rawstack.codec.ipv6 import PROTO_ICMPV6, IPv6
from rawstack.engines.ping import (
    MAX_SIZE6,
    EchoError,
    EchoReply,
    Event,
    PingSession,
    PingStats,
)
from rawstack.errors import RawstackError, UsageError
from rawstack.peers.loop import Loop
from rawstack.quirks import KernelQuirks, host_ipv6_quirks, host_quirks
from rawstack.sockets.raw import (
    PingSocket,
    RawIpReceiver,
    RawIpSender,
    open_ping_dgram,
    open_raw_icmp_receiver,
    open_raw_ip_sender,
    resolve_ipv4,
    route_source,
)
from rawstack.sockets.raw6 import (
    Raw6Socket,
    RawIp6Sender,
    open_ping6_dgram,
    open_raw_icmp6,
    open_raw_ip6_sender,
    resolve,
    route_source6,
    strip_zone,
)

REPLY_TYPES = frozenset({ECHO_REPLY, DEST_UNREACH, TIME_EXCEEDED})
REPLY_TYPES6 = frozenset({ECHO_REPLY6}) | ERROR_TYPES6


@dataclass
class PingResult:
    """What a :func:`ping` run saw."""

    host: str
    dst: str
    header: str
    stats: PingStats
    replies: list[EchoReply] = field(default_factory=list)
    errors: list[EchoError] = field(default_factory=list)
    send_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when any reply came back (iputils exits 0 then)."""
        return self.stats.received > 0

    @property
    def rtts(self) -> list[float]:
        """RTTs in milliseconds of the first reply to each request (none when untimed)."""
        return [r.rtt_ms for r in self.replies if not r.duplicate and r.rtt_ms is not None]


OnEvent = Callable[[Union[EchoReply, EchoError, str]], None]


def ping(
    host: str,
    count: int = 1,
    interval: float = 1.0,
    timeout: float = 1.0,
    *,
    size: int = 56,
    ttl: int = 64,
    unprivileged: bool = False,
    on_event: OnEvent | None = None,
    quirks: KernelQuirks | None = None,
    on_start: Callable[[str], None] | None = None,
    family: int | None = None,
) -> PingResult:
    """Send ``count`` echo requests ``interval`` s apart; wait ``timeout`` s after the last.

    Returns early once every request is answered. ``on_event`` sees each reply, ICMP
    error and send failure (a string) as it happens; ``on_start`` gets iputils' ``PING``
    header line once the sockets are open. ``family`` (``AF_INET``/``AF_INET6``, as
    ``-4``/``-6``) picks the IP version; None takes what ``host`` resolves to first. ``ttl``
    is the hop limit over IPv6.
    """
    _check(count, interval, timeout, ttl)
    if family != socket.AF_INET:
        found, addr = resolve(host, family)
        if found == socket.AF_INET6:
            return _ping6(
                host,
                addr,
                count=count,
                interval=interval,
                timeout=timeout,
                size=size,
                ttl=ttl,
                unprivileged=unprivileged,
                on_event=on_event,
                on_start=on_start,
            )
    dst = resolve_ipv4(host)
    if unprivileged:
        sock = open_ping_dgram()
        try:
            sock.set_ttl(ttl)
            session = PingSession(dst, sock.ident, size)
            run = _Run(
                host=host,
                session=session,
                timeout=timeout,
                interval=interval,
                count=count,
                on_event=on_event,
                dgram=sock,
            )
            return run.run(on_start)
        finally:
            sock.close()
    quirks = quirks or host_quirks()
    receiver = open_raw_icmp_receiver(quirks, REPLY_TYPES, timestamps=True)
    try:
        sender = open_raw_ip_sender(quirks)
        try:
            src = route_source(dst)  # after the sockets: a missing privilege is said first
            session = PingSession(dst, random.getrandbits(16), size)
            run = _Run(
                host=host,
                session=session,
                timeout=timeout,
                interval=interval,
                count=count,
                on_event=on_event,
                raw=(sender, receiver),
            )
            run.src, run.ttl = src, ttl
            return run.run(on_start)
        finally:
            sender.close()
    finally:
        receiver.close()


def _ping6(
    host: str,
    dst: str,
    *,
    count: int,
    interval: float,
    timeout: float,
    size: int,
    ttl: int,
    unprivileged: bool,
    on_event: OnEvent | None,
    on_start: Callable[[str], None] | None,
) -> PingResult:
    """:func:`ping` towards the IPv6 address ``dst``."""
    if size > MAX_SIZE6:
        raise UsageError(f"packet size must be 0..{MAX_SIZE6} over IPv6, not {size}")

    def run_with(session: PingSession, v6: tuple[RawIp6Sender | None, Raw6Socket]) -> _Run:
        run = _Run(
            host=host,
            session=session,
            timeout=timeout,
            interval=interval,
            count=count,
            on_event=on_event,
            v6=v6,
        )
        run.ttl = ttl
        return run

    if unprivileged:
        dgram = open_ping6_dgram()
        try:
            assert dgram.ident is not None
            session = PingSession(dst, dgram.ident, size, ipv6=True)
            return run_with(session, (None, dgram)).run(on_start)
        finally:
            dgram.close()
    quirks6 = host_ipv6_quirks()
    receiver = open_raw_icmp6(quirks6, REPLY_TYPES6, timestamps=True)
    try:
        sender = open_raw_ip6_sender(quirks6)
        try:
            src = route_source6(dst)  # after the sockets: a missing privilege is said first
            session = PingSession(dst, random.getrandbits(16), size, ipv6=True, src=src)
            run = run_with(session, (sender, receiver))
            run.src = src
            return run.run(on_start)
        finally:
            sender.close()
    finally:
        receiver.close()


def _check(count: int, interval: float, timeout: float, ttl: int) -> None:
    if count < 1:
        raise UsageError(f"count must be at least 1, not {count}")
    if not (math.isfinite(interval) and interval >= 0):
        raise UsageError(f"bad interval {interval}: must be >= 0 seconds")
    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"bad timeout {timeout}: must be > 0 seconds")
    if not 1 <= ttl <= 255:
        raise UsageError(f"ttl must be 1..255, not {ttl}")


class _Run:
    """One session on one loop: timers send, the reader matches, the end timer stops."""

    def __init__(
        self,
        *,
        host: str,
        session: PingSession,
        timeout: float,
        interval: float,
        count: int,
        on_event: OnEvent | None,
        dgram: PingSocket | None = None,
        raw: tuple[RawIpSender, RawIpReceiver] | None = None,
        v6: tuple[RawIp6Sender | None, Raw6Socket] | None = None,
    ) -> None:
        self.host, self.session, self.timeout = host, session, timeout
        self.interval, self.count, self.on_event = interval, count, on_event
        self.dgram, self.raw = dgram, raw
        self.v6 = v6  # (sender of whole IPv6 packets or None for a ping socket, reader)
        self.src = "0.0.0.0"
        self.ttl = 64
        self.ip_ident = random.getrandbits(16)
        self.loop = Loop()
        self.result = PingResult(host, session.dst, session.header_line(host), session.stats())

    def run(self, on_start: Callable[[str], None] | None = None) -> PingResult:
        reader: PingSocket | RawIpReceiver | Raw6Socket
        if self.v6 is not None:
            reader = self.v6[1]
        else:
            reader = self.dgram if self.dgram is not None else self._raw()[1]
        if on_start is not None:
            on_start(self.result.header)
        try:
            self.loop.add_reader(reader, self._on_readable)
            self._send()
            self.loop.run()
            self.loop.remove_reader(reader)
        finally:
            self.loop.close()
        self.result.stats = self.session.stats()
        return self.result

    def _raw(self) -> tuple[RawIpSender, RawIpReceiver]:
        assert self.raw is not None
        return self.raw

    def _send(self) -> None:
        seq, message = self.session.next_request(self.loop.time(), time.time())
        try:
            if self.v6 is not None:
                sent_ns = self._send6(message)
            elif self.dgram is not None:
                sent_ns = self.dgram.send(message, self.session.dst)
            else:
                self.ip_ident = (self.ip_ident + 1) & 0xFFFF
                packet = IPv4(
                    self.src,
                    self.session.dst,
                    PROTO_ICMP,
                    message,
                    ttl=self.ttl,
                    ident=self.ip_ident,
                )
                sent_ns = self._raw()[0].send(packet.encode(), self.session.dst)
            self.session.mark_sent(seq, sent_ns)
        except RawstackError as exc:
            self.session.errors += 1
            text = f"icmp_seq={seq}: {exc}"
            self.result.send_errors.append(text)
            self._emit(text)
        if self.session.transmitted < self.count:
            self.loop.call_later(self.interval, self._send)
        else:
            self.loop.call_later(self.timeout, self.loop.stop)

    def _send6(self, message: bytes) -> int:
        assert self.v6 is not None
        sender, sock = self.v6
        if sender is None:  # the ping socket: the kernel builds the header
            return sock.send(message, self.session.dst, hop_limit=self.ttl)
        dst = strip_zone(self.session.dst)
        packet = IPv6(self.src, dst, PROTO_ICMPV6, message, hop_limit=self.ttl)
        return sender.send(packet.encode(), self.session.dst)

    def _on_readable(self) -> None:
        now = self.loop.time()
        events: list[Event | None] = []
        if self.v6 is not None:
            for got in self.v6[1].recv():
                events.append(
                    self.session.feed_icmp(got.data, got.src, got.hop_limit, now, got.rx_ns)
                )
        elif self.dgram is not None:
            for message, src, ttl, rx_ns in self.dgram.recv_messages():
                events.append(self.session.feed_icmp(message, src, ttl, now, rx_ns))
        else:
            for packet, _src, rx_ns in self._raw()[1].recv_packets_timed():
                events.append(self.session.feed_ip(packet, now, rx_ns))
        for event in events:
            if isinstance(event, EchoReply):
                self.result.replies.append(event)
                self._emit(event)
            elif isinstance(event, EchoError):
                self.result.errors.append(event)
                self._emit(event)
        if self.session.finished(self.count):
            self.loop.stop()

    def _emit(self, event: EchoReply | EchoError | str) -> None:
        if self.on_event is not None:
            self.on_event(event)
