"""UDP echo server and the round-trip client, on the one Loop.

Server: one SOCK_DGRAM/IPPROTO_UDP socket, receive then ``sendto`` the same bytes back to
the sender (an echo server), datagrams up to 65507 bytes (65535 minus the IPv4 and UDP
headers). Datagrams land in one preallocated buffer (``recvfrom_into``), so an echo
allocates no 64 KiB object. On the shared loop it is one reader among others; served alone
(``rawstack udp serve``, :meth:`UdpEchoServer.run_alone`) it leaves the selector and blocks in
``recvfrom_into``, so a round trip costs two system calls, as in socat. A signal then stops
it by raising out of the blocked call (PEP 475 would otherwise retry it).

Client: each probe carries a tag ``rsu:<session>:<seq>:`` in front of the message, so a reply
is matched to the probe that caused it: a late reply to probe 3 is never counted for probe 4,
a reply from an older run (other session) is ignored, a second copy is a duplicate.
:class:`ProbeTracker` does the matching without sockets, so it is unit-tested alone.
"""

from __future__ import annotations

import math
import os
import signal
import socket
from dataclasses import dataclass
from types import FrameType
from typing import Any, Callable

from rawstack.errors import ExchangeFailed, UsageError
from rawstack.peers.base import log
from rawstack.peers.loop import Loop, Reactor
from rawstack.sockets.inet import format_addr, open_udp_client, open_udp_server, resolve

MAX_DATAGRAM = 65507  # IPv4: 65535 - 20 (IP header) - 8 (UDP header)
RECV_SIZE = 65536
RECV_BATCH = 64  # datagrams per readiness event, so one busy peer cannot starve the others


class UdpEchoServer:
    """UDP echo implementing :class:`rawstack.peers.base.Server`."""

    name = "udp"

    def __init__(self, bind: str = "::", port: int = 8080, *, verbose: bool = False) -> None:
        self.bind = bind
        self.port = port
        self.verbose = verbose
        self._sock: socket.socket | None = None
        self._loop: Reactor | None = None
        self.datagrams = 0
        self.bytes = 0
        self.send_errors = 0
        self.addr = ""
        self._buf = memoryview(bytearray(0))

    def start(self, loop: Reactor) -> dict[str, Any]:
        self._sock = open_udp_server(self.bind, self.port)
        self._loop = loop
        self._buf = memoryview(bytearray(RECV_SIZE))
        self.addr = format_addr(self._sock.getsockname())
        loop.add_reader(self._sock, self._on_read)
        return {"addr": self.addr}

    def close(self) -> None:
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock)
            self._sock.close()
            self._sock = None

    def stats(self) -> dict[str, Any]:
        return {"datagrams": self.datagrams, "bytes": self.bytes, "send_errors": self.send_errors}

    def _on_read(self) -> None:
        sock = self._sock
        assert sock is not None
        for _ in range(RECV_BATCH):
            try:
                n, peer = sock.recvfrom_into(self._buf)
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. a queued ICMP error; the socket stays usable
                log("udp", f"recvfrom: {exc.strerror or exc}")
                continue
            self._echo(sock, n, peer)

    def _echo(self, sock: socket.socket, n: int, peer: Any) -> None:
        self.datagrams += 1
        self.bytes += n
        try:
            sock.sendto(self._buf[:n], peer)
        except OSError as exc:  # a full send buffer drops the echo, as UDP may
            self.send_errors += 1
            log("udp", f"sendto {format_addr(peer)}: {exc.strerror or exc}")
        if self.verbose:
            log("udp", f"{format_addr(peer)} {n} bytes")

    def run_alone(self, loop: Loop) -> None:
        """Serve until SIGTERM/SIGINT with blocking calls, when no other server shares ``loop``.

        ``loop.stop_signal`` records the signal as :meth:`Loop.run` would; one that came
        before this call (the loop's own handler caught it) stops at once.
        """
        sock = self._sock
        assert sock is not None
        loop.remove_reader(sock)
        sock.setblocking(True)

        def stop(signum: int, _frame: FrameType | None) -> None:
            loop.stop_signal = signum
            raise _Stopped

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            if loop.stop_signal is None:
                self._echo_blocking(sock)
        except _Stopped:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _echo_blocking(self, sock: socket.socket) -> None:
        recv, echo, buf = sock.recvfrom_into, self._echo, self._buf
        while True:
            try:
                n, peer = recv(buf)
            except OSError as exc:
                log("udp", f"recvfrom: {exc.strerror or exc}")
                continue
            echo(sock, n, peer)


class _Stopped(Exception):
    """Raised by :meth:`UdpEchoServer.run_alone`'s signal handler out of a blocked call."""


@dataclass(frozen=True)
class UdpReply:
    seq: int
    rtt_ms: float
    size: int


@dataclass(frozen=True)
class UdpResult:
    """What N round trips gave; RTT statistics are None when nothing came back."""

    peer: str
    sent: int
    replies: tuple[UdpReply, ...]
    duplicates: int = 0
    late: int = 0
    mismatched: int = 0
    refused: int = 0

    @property
    def received(self) -> int:
        return len(self.replies)

    @property
    def lost(self) -> int:
        return self.sent - self.received

    @property
    def loss_pct(self) -> float:
        return 100.0 * self.lost / self.sent if self.sent else 0.0

    def _rtts(self) -> list[float]:
        return sorted(r.rtt_ms for r in self.replies)

    @property
    def min_ms(self) -> float | None:
        rtts = self._rtts()
        return rtts[0] if rtts else None

    @property
    def max_ms(self) -> float | None:
        rtts = self._rtts()
        return rtts[-1] if rtts else None

    @property
    def avg_ms(self) -> float | None:
        rtts = self._rtts()
        return sum(rtts) / len(rtts) if rtts else None

    @property
    def p50_ms(self) -> float | None:
        return percentile(self._rtts(), 50)

    @property
    def p99_ms(self) -> float | None:
        return percentile(self._rtts(), 99)

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 3)

        return {
            "peer": self.peer,
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost,
            "loss_pct": round(self.loss_pct, 2),
            "duplicates": self.duplicates,
            "late": self.late,
            "mismatched": self.mismatched,
            "refused": self.refused,
            "rtt_ms": {
                "min": r(self.min_ms),
                "avg": r(self.avg_ms),
                "max": r(self.max_ms),
                "p50": r(self.p50_ms),
                "p99": r(self.p99_ms),
            },
            "replies": [
                {"seq": x.seq, "rtt_ms": r(x.rtt_ms), "bytes": x.size} for x in self.replies
            ],
        }


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (the smallest value with at least pct% of values <= it)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class ProbeTracker:
    """Tags outgoing probes and classifies replies. Pure: times are passed in."""

    def __init__(
        self, message: bytes, size: int | None, timeout: float, session: int | None = None
    ) -> None:
        self.message = message
        self.size = size
        self.timeout = timeout
        self.session = session if session is not None else int.from_bytes(os.urandom(4), "big")
        self._sent: dict[int, tuple[float, bytes]] = {}
        self._answered: set[int] = set()
        self.replies: list[UdpReply] = []
        self.duplicates = 0
        self.late = 0
        self.mismatched = 0
        if size is not None:
            if size > MAX_DATAGRAM:
                raise UsageError(f"--size {size} is larger than a UDP datagram ({MAX_DATAGRAM})")
            if size < len(self._tag(0)):
                raise UsageError(
                    f"--size {size} is smaller than the probe tag ({len(self._tag(0))})"
                )
        elif len(self._tag(0)) + len(message) > MAX_DATAGRAM:
            raise UsageError(f"message too long for one UDP datagram ({MAX_DATAGRAM} bytes max)")

    def _tag(self, seq: int) -> bytes:
        return b"rsu:%08x:%010d:" % (self.session, seq)

    def payload(self, seq: int, now: float) -> bytes:
        """The datagram for probe ``seq``: tag + message, padded/cut to ``size`` if given."""
        data = self._tag(seq) + self.message
        if self.size is not None:
            data = (data + b"." * max(0, self.size - len(data)))[: self.size]
        self._sent[seq] = (now, data)
        return data

    def receive(self, data: bytes, now: float) -> UdpReply | None:
        """Classify a datagram; returns the reply when it answers an outstanding probe."""
        parts = data.split(b":", 3)
        if len(parts) < 4 or parts[0] != b"rsu" or parts[1] != b"%08x" % self.session:
            self.mismatched += 1
            return None
        try:
            seq = int(parts[2])
        except ValueError:
            self.mismatched += 1
            return None
        sent = self._sent.get(seq)
        if sent is None or sent[1] != data:
            self.mismatched += 1
            return None
        if seq in self._answered:
            self.duplicates += 1
            return None
        rtt = now - sent[0]
        if rtt > self.timeout:
            self._answered.add(seq)  # too late: lost, and not credited to any later probe
            self.late += 1
            return None
        self._answered.add(seq)
        reply = UdpReply(seq, rtt * 1000.0, len(data))
        self.replies.append(reply)
        return reply

    def outstanding(self, now: float) -> bool:
        """True while some probe can still be answered in time."""
        return any(
            seq not in self._answered and now - t < self.timeout
            for seq, (t, _) in self._sent.items()
        )


def udp_round_trips(  # noqa: PLR0917 (the documented positional API)
    host: str,
    port: int,
    message: bytes = b"Hello, UDP server!",
    count: int = 1,
    timeout: float = 1.0,
    interval: float = 0.0,
    size: int | None = None,
    on_reply: Callable[[UdpReply], None] | None = None,
) -> UdpResult:
    """Send ``count`` tagged probes ``interval`` seconds apart; wait ``timeout`` per probe."""
    if count < 1:
        raise UsageError("--count must be at least 1")
    tracker = ProbeTracker(message, size, timeout)
    family, sockaddr = resolve(host, port, socket.SOCK_DGRAM)
    peer = format_addr(sockaddr)
    loop = Loop()
    sock = open_udp_client(family, sockaddr)
    state = {"next": 0, "refused": 0}

    def finish_if_done() -> None:
        if state["next"] >= count and not tracker.outstanding(loop.time()):
            loop.stop()

    def send_next() -> None:
        seq = state["next"]
        try:
            sock.send(tracker.payload(seq, loop.time()))
        except ConnectionRefusedError:  # the ICMP error of an earlier probe
            state["refused"] += 1
        except OSError as exc:
            raise ExchangeFailed(f"send to {peer}: {exc.strerror or exc}") from None
        state["next"] = seq + 1
        if state["next"] < count:
            loop.call_later(interval, send_next)
        else:
            loop.call_later(timeout, finish_if_done)

    def on_readable() -> None:
        for _ in range(RECV_BATCH):
            try:
                data = sock.recv(RECV_SIZE)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                state["refused"] += 1
                continue
            reply = tracker.receive(data, loop.time())
            if reply is not None and on_reply is not None:
                on_reply(reply)
        finish_if_done()

    try:
        loop.add_reader(sock, on_readable)
        loop.call_later(0, send_next)
        loop.run()
    finally:
        loop.remove_reader(sock)
        sock.close()
        loop.close()
    return UdpResult(
        peer=peer,
        sent=state["next"],
        replies=tuple(tracker.replies),
        duplicates=tracker.duplicates,
        late=tracker.late,
        mismatched=tracker.mismatched,
        refused=state["refused"],
    )
