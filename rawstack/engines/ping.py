"""The ping session: echo requests out, replies matched, iputils-compatible statistics.

Theory of operation (sans-IO): the caller asks :meth:`PingSession.next_request` for the
ICMP bytes of each echo request, sends them however it likes (raw IPPROTO_RAW socket with
our own IP header, or the Linux SOCK_DGRAM ping socket), and feeds whatever it reads back
through :meth:`PingSession.feed_ip` (a whole IPv4 packet) or :meth:`PingSession.feed_icmp`
(the ICMP message alone). With ``ipv6=True`` the session speaks ICMPv6 (RFC 4443): echo
types 128/129, iputils ``ping -6``'s header and error lines, and the IPv6 pseudo-header in
the checksum when ``src`` is known (else 0, for the kernel to fill, RFC 3542 3.1); raw
IPv6 reads never include the IPv6 header, so IPv6 replies always come through
:meth:`PingSession.feed_icmp` with the hop limit the socket reported. Times are passed in
by the caller, so the session never reads a clock. A reply counts only if its id, sequence
number AND source address match a request we sent (RFC 792: the id and sequence "aid in
matching echos and replies"); a second reply to the same sequence is a duplicate, as
iputils reports it.

Two clocks, as iputils times it: the caller reports the CLOCK_REALTIME nanoseconds taken
right before each ``sendto`` (:meth:`PingSession.mark_sent`) and feeds each reply with the
kernel's arrival stamp on that clock (``rx_ns``, from SO_TIMESTAMPNS), so the RTT leaves out
the time user space takes to wake up and read. Without either stamp, or if the wall clock
stepped back in between, the RTT falls back to the caller's monotonic ``now`` values.

RTTs are kept in integer microseconds and the summary is computed with iputils' own
arithmetic (``ping_common.c``: double ``tsum`` and ``tsum2``, truncations, integer
``llsqrt``; see :func:`rtt_summary_us`) so the two lines it prints match iputils byte for
byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

from rawstack.codec import DecodeError
from rawstack.codec.icmp import ECHO_REPLY, ECHO_REQUEST, IcmpEcho, IcmpError, decode_icmp
from rawstack.codec.icmp6 import (
    DEST_UNREACH6,
    ECHO_REPLY6,
    ECHO_REQUEST6,
    PACKET_TOO_BIG,
    PARAM_PROBLEM6,
    TIME_EXCEEDED6,
    Icmp6Echo,
    Icmp6Error,
    decode_icmp6,
)
from rawstack.codec.ipv4 import PROTO_ICMP, IPv4
from rawstack.codec.ipv6 import PROTO_ICMPV6
from rawstack.codec.ipv6 import IPv6 as IPv6Packet

# iputils stamps a native ``struct timeval`` (two C longs) at the start of the data.
TIMEVAL = struct.Struct("@ll")
ICMP_HEADER_LEN = 8
IPV4_HEADER_LEN = 20
DEFAULT_SIZE = 56
IP_MAXPACKET = 65535
MAX_SIZE = IP_MAXPACKET - IPV4_HEADER_LEN - ICMP_HEADER_LEN  # 65507: the most one datagram holds
# The IPv6 payload length counts the ICMPv6 header and the data, not the fixed header.
MAX_SIZE6 = IP_MAXPACKET - ICMP_HEADER_LEN  # 65527
INT_MAX = 2**31 - 1
ERROR_TEXT = {
    (3, 0): "Destination Net Unreachable",
    (3, 1): "Destination Host Unreachable",
    (3, 2): "Destination Protocol Unreachable",
    (3, 3): "Destination Port Unreachable",
    (3, 4): "Frag needed",
    (3, 13): "Communication prohibited by filter",
    (11, 0): "Time to live exceeded",
    (11, 1): "Frag reassembly time exceeded",
}


@dataclass(frozen=True)
class EchoReply:
    """A reply matched to one of our requests."""

    seq: int
    src: str
    size: int  # ICMP bytes, header included (iputils' "64 bytes")
    ttl: int | None
    rtt_us: int | None  # None when untimed: data too short for iputils' timestamp
    duplicate: bool

    @property
    def rtt_ms(self) -> float | None:
        return None if self.rtt_us is None else self.rtt_us / 1000.0

    def line(self) -> str:
        """iputils' per-reply line (no ``time=`` when the data cannot hold a timestamp)."""
        ttl = "" if self.ttl is None else f" ttl={self.ttl}"
        time = "" if self.rtt_us is None else f" time={format_rtt(self.rtt_us)} ms"
        dup = " (DUP!)" if self.duplicate else ""
        return f"{self.size} bytes from {self.src}: icmp_seq={self.seq}{ttl}{time}{dup}"


# iputils ping6_common.c print_icmp(): the ICMPv6 destination-unreachable codes.
UNREACH6_TEXT = {
    0: "No route",
    1: "Administratively prohibited",
    2: "Beyond scope of source address",
    3: "Address unreachable",
    4: "Port unreachable",
}


def icmp6_error_text(kind: int, code: int, info: int) -> str:
    """iputils' ``print_icmp`` for ICMPv6 (``info``: the MTU or the pointer)."""
    if kind == DEST_UNREACH6:
        return "Destination unreachable: " + UNREACH6_TEXT.get(code, f"Unknown code {code}")
    if kind == PACKET_TOO_BIG:
        return f"Packet too big: mtu={info}" + (f", code={code}" if code else "")
    if kind == TIME_EXCEEDED6:
        what = {0: "Hop limit", 1: "Defragmentation failure"}.get(code, f"code {code}")
        return "Time exceeded: " + what
    if kind == PARAM_PROBLEM6:
        where = {0: "Wrong header field ", 1: "Unknown header ", 2: "Unknown option "}
        return "Parameter problem: " + where.get(code, f"code {code} ") + f"at {info}"
    return f"Unknown icmp type: {kind}"


@dataclass(frozen=True)
class EchoError:
    """An ICMP error (unreachable, time exceeded) quoting one of our requests."""

    seq: int
    src: str
    type: int
    code: int
    ipv6: bool = False
    info: int = 0  # ICMPv6: the packet-too-big MTU or the parameter-problem pointer

    def line(self) -> str:
        if self.ipv6:
            text = icmp6_error_text(self.type, self.code, self.info)
        else:
            fallback = f"Bad ICMP type {self.type} code {self.code}"
            text = ERROR_TEXT.get((self.type, self.code), fallback)
        return f"From {self.src} icmp_seq={self.seq} {text}"


Event = Union[EchoReply, EchoError]


@dataclass(frozen=True)
class PingStats:
    """Counters and RTTs at the end (or middle) of a session."""

    dst: str
    transmitted: int
    received: int
    duplicates: int
    errors: int
    elapsed_ms: int
    rtts_us: tuple[int, ...]  # every timed reply, duplicates included (as iputils sums them)
    pipe: int = 0  # the most requests ever in flight when a reply came (iputils' pipesize)

    @property
    def loss_percent(self) -> float:
        if not self.transmitted:
            return 0.0
        lost = (self.transmitted - self.received) * 100.0 / self.transmitted
        # iputils casts to C float before printing with %g: round-trip through float32.
        return float(struct.unpack("f", struct.pack("f", lost))[0])

    def summary(self) -> list[str]:
        """The iputils statistics block: header, counts line and (if any reply) the rtt line.

        As iputils' ``finish()``, ", pipe N" follows the rtt line when replies overlapped
        (N > 1 requests were in flight when one came back), on a line of its own if there
        is no rtt line."""
        counts = f"{self.transmitted} packets transmitted, {self.received} received"
        if self.duplicates:
            counts += f", +{self.duplicates} duplicates"
        if self.errors:
            counts += f", +{self.errors} errors"
        if self.transmitted:
            counts += f", {self.loss_percent:g}% packet loss, time {self.elapsed_ms}ms"
        lines = [f"--- {self.dst} ping statistics ---", counts]
        if self.received and self.rtts_us:
            mn, avg, mx, mdev = rtt_summary_us(self.rtts_us)
            lines.append(
                "rtt min/avg/max/mdev = " + "/".join(_ms3(v) for v in (mn, avg, mx, mdev)) + " ms"
            )
            if self.pipe > 1:
                lines[-1] += f", pipe {self.pipe}"
        elif self.pipe > 1:
            lines.append(f", pipe {self.pipe}")
        return lines


@dataclass
class _Sent:
    sent_at: float  # monotonic, when the request was built
    payload: bytes
    replied: bool = False
    sent_ns: int | None = None  # CLOCK_REALTIME, right before the sendto


def _rtt_us(sent: _Sent, now: float, rx_ns: int | None) -> int:
    if rx_ns is not None and sent.sent_ns is not None and rx_ns >= sent.sent_ns:
        return (rx_ns - sent.sent_ns + 500) // 1000
    return max(0, round((now - sent.sent_at) * 1_000_000))


@dataclass
class PingSession:
    """One ping run towards ``dst`` with echo id ``ident``."""

    dst: str
    ident: int
    size: int = DEFAULT_SIZE
    start: float | None = None
    transmitted: int = 0
    received: int = 0
    duplicates: int = 0
    errors: int = 0
    rtts_us: list[int] = field(default_factory=list)
    ipv6: bool = False
    src: str | None = None  # the IPv6 source, for the checksum; None leaves it to the kernel
    pipe: int = 0
    _sent: dict[int, _Sent] = field(default_factory=dict)
    _last_sent: float | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.ident <= 0xFFFF:
            raise ValueError(f"echo id must be 0..65535, not {self.ident}")
        limit = MAX_SIZE6 if self.ipv6 else MAX_SIZE
        if not 0 <= self.size <= limit:
            raise ValueError(f"packet size must be 0..{limit}, not {self.size}")

    @property
    def timing(self) -> bool:
        """iputils times replies only when the data holds its timeval (``-s`` >= 16):
        below that it prints no ``time=`` and no rtt line, and so do we."""
        return self.size >= TIMEVAL.size

    def header_line(self, host: str | None = None) -> str:
        """iputils' first line, e.g. ``PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.``;
        over IPv6 ``PING fd00::2(fd00::2) 56 data bytes`` (iputils ``ping6_run``)."""
        if self.ipv6:
            return f"PING {host or self.dst}({self.dst}) {self.size} data bytes"
        total = self.size + ICMP_HEADER_LEN + IPV4_HEADER_LEN
        return f"PING {host or self.dst} ({self.dst}) {self.size}({total}) bytes of data."

    def next_request(self, now: float, wall: float) -> tuple[int, bytes]:
        """``(seq, ICMP echo request bytes)`` for the next request; ``now`` is monotonic."""
        if self.start is None:
            self.start = now
        self.transmitted += 1
        seq = self.transmitted & 0xFFFF  # iputils starts at 1 and wraps at 16 bits
        payload = make_payload(self.size, wall)
        self._sent[seq] = _Sent(now, payload)
        self._last_sent = now
        if self.ipv6:
            echo6 = Icmp6Echo(ECHO_REQUEST6, self.ident, seq, payload, checksum=_kernel(self.src))
            src, dst = self.src, self.dst.split("%", 1)[0]  # the header has no zone
            return seq, echo6.encode(src, dst) if src is not None else echo6.encode()
        echo = IcmpEcho(ECHO_REQUEST, self.ident, seq, payload)
        return seq, echo.encode()

    def mark_sent(self, seq: int, wall_ns: int) -> None:
        """Request ``seq`` left at ``wall_ns`` (CLOCK_REALTIME ns, read right before sendto)."""
        sent = self._sent.get(seq)
        if sent is not None:
            sent.sent_ns = wall_ns

    def feed_ip(self, packet: bytes, now: float, rx_ns: int | None = None) -> Event | None:
        """A whole wire-format IPv4 packet read from a raw ICMP socket.

        ``now`` is monotonic; ``rx_ns`` is the kernel's arrival stamp, if the socket gave one.
        """
        try:
            ip = IPv4.decode(packet)
        except DecodeError:
            return None
        if ip.proto != PROTO_ICMP:
            return None
        return self.feed_icmp(ip.payload, ip.src, ip.ttl, now, rx_ns)

    def feed_icmp(
        self, message: bytes, src: str, ttl: int | None, now: float, rx_ns: int | None = None
    ) -> Event | None:
        """The ICMP message alone (ping sockets), from ``src``; None if it is not ours."""
        if self.ipv6:
            return self._feed_icmp6(message, src, ttl, now, rx_ns)
        try:
            icmp = decode_icmp(message)
        except DecodeError:
            return None
        if isinstance(icmp, IcmpError):
            return self._feed_error(icmp, src)
        if not isinstance(icmp, IcmpEcho) or icmp.type != ECHO_REPLY:
            return None
        if icmp.ident != self.ident or src != self.dst:
            return None
        return self._matched(
            icmp.seq, icmp.payload, src=src, size=len(message), ttl=ttl, now=now, rx_ns=rx_ns
        )

    def _feed_icmp6(
        self, message: bytes, src: str, hop_limit: int | None, now: float, rx_ns: int | None
    ) -> Event | None:
        # The kernel verified the checksum of everything a raw ICMPv6 socket reads
        # (rawv6_rcv_skb, rip6_input), so it is not checked again without the addresses.
        try:
            icmp = decode_icmp6(message)
        except DecodeError:
            return None
        if isinstance(icmp, Icmp6Error):
            return self._feed_error6(icmp, src)
        if not isinstance(icmp, Icmp6Echo) or icmp.type != ECHO_REPLY6:
            return None
        if icmp.ident != self.ident or src.split("%", 1)[0] != self.dst.split("%", 1)[0]:
            return None
        src = self.dst  # as iputils prints a link-local peer: with its %zone
        return self._matched(
            icmp.seq, icmp.payload, src=src, size=len(message), ttl=hop_limit, now=now, rx_ns=rx_ns
        )

    def _matched(
        self,
        seq: int,
        payload: bytes,
        *,
        src: str,
        size: int,
        ttl: int | None,
        now: float,
        rx_ns: int | None,
    ) -> Event | None:
        """A reply of either family whose id and source matched: check the data, count it."""
        sent = self._sent.get(seq)
        if sent is None or payload != sent.payload:
            return None
        # iputils' acknowledge(): how far behind the newest request this reply is, in
        # 16-bit sequence space; duplicates count too.
        behind = (self.transmitted - seq) & 0xFFFF
        if behind <= 0x7FFF:
            self.pipe = max(self.pipe, behind + 1)
        rtt_us = _rtt_us(sent, now, rx_ns) if self.timing else None
        if rtt_us is not None:
            self.rtts_us.append(rtt_us)
        duplicate = sent.replied
        if duplicate:
            self.duplicates += 1
        else:
            sent.replied = True
            self.received += 1
        return EchoReply(seq, src, size, ttl, rtt_us, duplicate)

    def _feed_error(self, icmp: IcmpError, src: str) -> EchoError | None:
        # The error quotes our request's IP header and its first 8 bytes (RFC 792).
        quoted = icmp.quoted
        if len(quoted) < IPV4_HEADER_LEN:
            return None
        ihl = (quoted[0] & 0x0F) * 4
        inner = quoted[ihl : ihl + ICMP_HEADER_LEN]
        if len(inner) < ICMP_HEADER_LEN or quoted[9] != PROTO_ICMP or inner[0] != ECHO_REQUEST:
            return None
        ident, seq = struct.unpack("!HH", inner[4:8])
        if ident != self.ident or seq not in self._sent:
            return None
        self.errors += 1
        return EchoError(seq, src, icmp.type, icmp.code)

    def _feed_error6(self, icmp: Icmp6Error, src: str) -> EchoError | None:
        # The error quotes as much of our request as fits (RFC 4443 section 3).
        try:
            inner = IPv6Packet.decode(icmp.quoted, allow_truncated=True)
        except DecodeError:
            return None
        echo = inner.payload[:ICMP_HEADER_LEN]
        if inner.next_header != PROTO_ICMPV6 or len(echo) < ICMP_HEADER_LEN:
            return None
        if echo[0] != ECHO_REQUEST6:
            return None
        ident, seq = struct.unpack("!HH", echo[4:8])
        if ident != self.ident or seq not in self._sent:
            return None
        self.errors += 1
        return EchoError(seq, src, icmp.type, icmp.code, ipv6=True, info=icmp.rest)

    def outstanding(self) -> list[int]:
        """Sequence numbers still waiting for a reply."""
        return [seq for seq, s in self._sent.items() if not s.replied]

    def finished(self, count: int) -> bool:
        """Whether a ``-c count`` run ends now, as iputils' ``main_loop`` decides: every
        request sent and as many answers in, replies and errors together (``nreceived +
        nerrors >= npackets``). So a run whose requests all ran into ICMP errors (a hop
        limit, an unreachable host) ends without waiting out ``-W`` for replies."""
        return self.transmitted >= count and self.received + self.errors >= count

    def stats(self) -> PingStats:
        """Statistics so far. The elapsed time is iputils': from the first request to the
        last one sent (``cur_time`` moves only in ``pinger()``), so neither the wait for the
        last reply nor the final ``-W`` wait counts; rounded from nanoseconds to ms."""
        start, last = self.start, self._last_sent
        elapsed_ns = 0 if start is None or last is None else max(0, round((last - start) * 1e9))
        return PingStats(
            dst=self.dst,
            transmitted=self.transmitted,
            received=self.received,
            duplicates=self.duplicates,
            errors=self.errors,
            elapsed_ms=(elapsed_ns + 500_000) // 1_000_000,
            rtts_us=tuple(self.rtts_us),
            pipe=self.pipe,
        )


def _kernel(src: str | None) -> int | None:
    """The checksum to write: computed (None) when we know the source, else 0 for the
    kernel, which fills every raw or datagram ICMPv6 socket's (RFC 3542 3.1)."""
    return None if src is not None else 0


def make_payload(size: int, wall: float) -> bytes:
    """iputils' data: a timeval when it fits, then each byte equal to its offset (mod 256)."""
    if size >= TIMEVAL.size:
        sec = int(wall)
        stamp = TIMEVAL.pack(sec, int((wall - sec) * 1_000_000))
        return stamp + bytes(i & 0xFF for i in range(TIMEVAL.size, size))
    return bytes(i & 0xFF for i in range(size))


def rtt_summary_us(rtts_us: tuple[int, ...] | list[int]) -> tuple[int, int, int, int]:
    """``(min, avg, max, mdev)`` in microseconds, computed as iputils computes them.

    iputils (``ping/ping_common.c``, 20221126) keeps ``tsum`` and ``tsum2`` as C doubles,
    adding each integer RTT and its square; ``finish()`` truncates ``tsum / total`` to a
    long for the average and ``(tsum2 - tsum * tsum / total) / total`` (all in double, the
    division included) to a long long before its integer Newton square root ``llsqrt``.
    Python floats are IEEE doubles with the same round-to-nearest operations, and ``int()``
    truncates as a C conversion does, so doing the same steps in the same order gives the
    same digits. (Exact integer arithmetic does not: flooring ``tsum * tsum // total``
    makes the variance up to one unit larger, 0.006 where iputils prints 0.005.)
    """
    if not rtts_us:
        raise ValueError("no RTTs")
    total = len(rtts_us)
    tsum = 0.0
    tsum2 = 0.0
    for rtt in rtts_us:
        tsum += rtt
        tsum2 += float(rtt * rtt)  # (double)((long long)triptime * (long long)triptime)
    avg = int(tsum / total)
    if tsum < INT_MAX:
        # "This slightly clumsy computation order is important to avoid integer rounding
        # errors for small ping times." (iputils)
        var = int((tsum2 - ((tsum * tsum) / total)) / total)
    else:
        var = int((tsum2 / total) - (avg * avg))
    return min(rtts_us), avg, max(rtts_us), _llsqrt(var)


def format_rtt(us: int) -> str:
    """The ``time=`` field exactly as iputils prints it (fewer decimals as it grows)."""
    if us >= 100000 - 50:
        return f"{(us + 500) // 1000}"
    if us >= 10000 - 5:
        return f"{(us + 50) // 1000}.{((us + 50) % 1000) // 100}"
    if us >= 1000:
        return f"{(us + 5) // 1000}.{((us + 5) % 1000) // 10:02d}"
    return _ms3(us)


def _ms3(us: int) -> str:
    # printf("%ld.%03ld", v / 1000, v % 1000) with C's truncating division, so even a
    # negative value (llsqrt of a negative variance returns it unchanged) prints as iputils'.
    whole = abs(us) // 1000 * (-1 if us < 0 else 1)
    return f"{whole}.{us - whole * 1000:03d}"


def _llsqrt(a: int) -> int:
    # Newton's method exactly as iputils' llsqrt (a <= 0 comes back unchanged); every value
    # here is positive, so Python's floor division is C's truncating one.
    x = a
    if x > 0:
        prev = None
        while prev is None or x < prev:
            prev = x
            x = (x + a // x) // 2
    return x
