"""Independent protocol probes the supervisor uses to prove a peer really serves.

Each probe opens its socket inside a node (``node.socket``), does one exchange against a
peer on another node and returns the round-trip time in seconds, or raises
:class:`~rawstack_harness.errors.ProbeFailed`. They use plain sockets and the CHAO codec only,
so a bug in rawstack's own clients cannot make a broken server look ready. They work on any
backend whose nodes open sockets (``capabilities.node_sockets``); the FreeBSD backend runs
the same functions inside a jail instead.

Theory of operation: every probe is an *exchange*, a generator that opens its socket
(non-blocking), sends, and yields ``(socket, events)`` each time it must wait, until it
returns the RTT. :func:`exchange_all` drives any number of them from one thread on one
poll set, each attempt under its own timeout, retrying a failed one while its caller says
so. A node's whole set of probes (every peer, IPv4 and IPv6) is therefore in flight at
once, and costs about the slowest exchange rather than the sum, with no thread per probe
(a thread's start-up and the GIL handoffs cost more than a probe on a veth). The blocking
functions (:func:`http_get`, :func:`udp_echo`, ...) run one exchange the same way.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from rawstack_harness.backends.base import ReadyEvent
from rawstack_harness.errors import ProbeFailed

from rawstack.peers.registry import BY_NAME, ready_port

__all__ = ["EXCHANGES", "EXCHANGES6", "Closer", "Exchange", "NodeLike", "ProbeFailed",
           "Target", "chao_exchange", "chao_request", "close_soon", "exchange_all", "http_exchange",
           "http_get", "icmp6_echo", "icmp6_exchange", "icmp_echo", "icmp_exchange",
           "probe_peer", "probe_peers", "run_exchange", "udp_echo",
           "udp_exchange"]  # fmt: skip

READ, WRITE = select.POLLIN, select.POLLOUT
# What an exchange yields to wait on: its socket and the poll events it needs.
Wait = tuple[socket.socket, int]
Exchange = Generator[Wait, None, float]
K = TypeVar("K", bound=Hashable)
RETRY_PAUSE = 0.002  # after a failed attempt, before the next


class NodeLike(Protocol):
    """The part of :class:`rawstack_harness.backends.base.Node` a probe uses.

    Every node handle is one (the Linux backend passes its handles straight in, so mypy
    checks that); so is the FreeBSD in-jail stand-in for the process's own stack, which
    has no more than these three.
    """

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket: ...

    def mac(self, ifname: str = "eth0") -> str: ...

    def addr(self, version: int = 4, ifname: str | None = None) -> str: ...


MOST_CLOSERS = 32  # threads a Closer may run at once (each idle one is a parked thread)


class Closer:
    """Threads that close descriptors handed to them (``os.close`` lets go of the GIL while
    it waits). Started on first use, and again in a forked child.

    Closing an ``AF_PACKET`` socket waits for an RCU grace period (``synchronize_net()`` in
    ``packet_release``, ~12 ms on a 2-core VM), and every close waiting at the same time
    shares one: 200 packet sockets closed one after another took 2.4 s here, side by side
    57 ms. A single thread fell behind a run of bare pairs (two capture sockets every 4-5
    ms) and left the backlog to the process's exit, which closes descriptors one by one
    too: 120 tests left ~140 descriptors open at the session's end, and the process ended
    1.4-1.8 s after its last test (~0 now). So a new thread starts whenever
    every thread is busy, up to ``most``; the pool stays at what the load needed.
    """

    def __init__(self, most: int = MOST_CLOSERS, close: Callable[[int], None] = os.close) -> None:
        self._most = most
        self._close = close
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:  # a child has no thread but ours, and its own descriptors
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a descriptor (or about to take one)

    def put(self, fds: list[int]) -> None:
        for fd in fds:
            self._queue.put(fd)
        with self._lock:
            # Counts are a moment old: a thread that just took one may still count as idle,
            # so the pool can lag by a thread for one call; the next call catches up.
            start = min(self._queue.qsize() - self._idle, self._most - self._threads)
            self._threads += max(start, 0)
        for _ in range(start):
            threading.Thread(target=self._run, name="netns-close", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                self._idle += 1
            fd = self._queue.get()
            with self._lock:
                self._idle -= 1
            with contextlib.suppress(OSError):
                self._close(fd)


_CLOSER = Closer()


def close_soon(*socks: socket.socket) -> None:
    """Have the sockets closed by the closer thread and return at once.

    Closing an ``AF_PACKET`` socket waits for an RCU grace period (``synchronize_net()`` in
    ``packet_release``, 5-30 ms): nobody needs to wait for it, and an open socket only
    delays the kernel's own deletion of a namespace that is already unmounted. The socket
    objects are closed (detached) before this returns; only the descriptors' close waits.
    Long-lived threads (:class:`Closer`), not one per call: starting a thread waits until
    it runs (~0.4 ms here), which every CHAO probe paid.
    """
    _CLOSER.put([fd for fd in (sock.detach() for sock in socks) if fd >= 0])


def run_exchange(start: Callable[[], Exchange], timeout: float) -> float:
    """Run one exchange to its end (its RTT) or raise its failure / a timeout."""
    result = exchange_all({0: (start, timeout)})[0]
    if isinstance(result, BaseException):
        raise result
    return result


def exchange_all(
    jobs: Mapping[K, tuple[Callable[[], Exchange], float]],
    on_failure: Callable[[K, BaseException], bool] | None = None,
) -> dict[K, float | BaseException]:
    """Run every job's exchange at once from this thread: key -> RTT or its failure.

    A job is ``(start, timeout)``: ``start()`` makes a new attempt's exchange, which has
    ``timeout`` seconds. When an attempt fails (:class:`ProbeFailed`, ``OSError``, or its
    timeout) ``on_failure(key, error)`` decides: True starts another attempt, False keeps the
    error as that job's result, and an exception it raises stops everything and propagates
    (every open exchange is closed first, so its socket is).
    """
    results: dict[K, float | BaseException] = {}
    running: dict[K, tuple[Exchange, float, Wait]] = {}  # key -> (exchange, deadline, wait)
    again: dict[K, float] = {}  # failed attempts to start anew, and when

    def step(key: K, gen: Exchange, deadline: float, first: bool) -> None:
        try:
            running[key] = (gen, deadline, next(gen) if first else gen.send(None))
            return
        except StopIteration as stop:
            outcome: float | BaseException = float(stop.value)
        except (ProbeFailed, OSError) as exc:
            outcome = exc
        settle(key, outcome)

    def settle(key: K, outcome: float | BaseException) -> None:
        running.pop(key, None)
        if isinstance(outcome, BaseException) and on_failure and on_failure(key, outcome):
            again[key] = time.monotonic() + RETRY_PAUSE  # never a busy loop on a refusal
        else:
            results[key] = outcome

    def launch(key: K) -> None:
        start, timeout = jobs[key]
        try:
            gen = start()
        except (ProbeFailed, OSError) as exc:
            settle(key, exc)
            return
        step(key, gen, time.monotonic() + timeout, True)

    try:
        for key in jobs:
            launch(key)
        while running or again:
            now = time.monotonic()
            for key in [k for k, at in again.items() if at <= now]:
                del again[key]
                launch(key)
            if not running and not again:
                break
            # A fresh poll set each round: an exchange may wait on a new socket each step,
            # and one that ended has closed its own (poll, not select: any fd number).
            poller = select.poll()
            by_fd: dict[int, K] = {}
            for key, (_, _, (sock, events)) in running.items():
                by_fd[sock.fileno()] = key
                poller.register(sock, events)
            first = min([d for _, d, _ in running.values()] + list(again.values()))
            wait_ms = max(0.0, first - time.monotonic()) * 1000
            woken = {by_fd[fd] for fd, _ in poller.poll(wait_ms) if fd in by_fd}
            for key in woken:
                if key in running:
                    gen, deadline, _ = running[key]
                    step(key, gen, deadline, False)
            now = time.monotonic()
            for key in [k for k, (_, d, _) in running.items() if d <= now and k not in woken]:
                settle(key, _time_out(running[key][0]))
    finally:
        for gen, _, _ in list(running.values()):
            gen.close()
    return results


def _time_out(gen: Exchange) -> BaseException:
    """End an exchange whose time is up, as a socket timeout at its wait: it names itself."""
    try:
        gen.throw(TimeoutError("timed out"))
    except (ProbeFailed, OSError) as exc:
        return exc
    except StopIteration:
        pass
    gen.close()
    return ProbeFailed("timed out")


def _connected(sock: socket.socket, addr: tuple[str, int]) -> Generator[Wait, None, None]:
    """A non-blocking ``connect``: wait until it completes; raise its error."""
    err = sock.connect_ex(addr)
    if err in (errno.EINPROGRESS, errno.EAGAIN):
        yield sock, WRITE
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if err:
        raise OSError(err, os.strerror(err))


def http_exchange(node: NodeLike, host: str, port: int) -> Exchange:
    """``GET /`` over TCP; any ``HTTP/1.x 200`` status line counts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    start = time.monotonic()
    data = b""
    with node.socket(family, socket.SOCK_STREAM, 0) as sock:
        sock.setblocking(False)
        try:
            yield from _connected(sock, (host, port))
            # An IPv6 literal goes in brackets (RFC 9112 §3.2, RFC 3986 §3.2.2): the server
            # answers a bare one with 400, as it must.
            field = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            # A fresh connection's send buffer takes these few bytes whole.
            sock.send(f"GET / HTTP/1.1\r\nHost: {field}\r\nConnection: close\r\n\r\n".encode())
            while b"\r\n" not in data:
                yield sock, READ
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise ProbeFailed(f"http {host}:{port}: {exc}") from None
    rtt = time.monotonic() - start
    status = data.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        raise ProbeFailed(f"http {host}:{port}: bad status line {data[:40]!r}")
    return rtt


def udp_exchange(node: NodeLike, host: str, port: int) -> Exchange:
    """One datagram out, the same bytes back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    payload = b"probe-" + os.urandom(8).hex().encode()
    with node.socket(family, socket.SOCK_DGRAM, 0) as sock:
        sock.setblocking(False)
        try:
            sock.connect((host, port))
            start = time.monotonic()
            sock.send(payload)
            while True:
                yield sock, READ
                if sock.recv(65535) == payload:
                    return time.monotonic() - start
        except OSError as exc:
            raise ProbeFailed(f"udp {host}:{port}: {exc}") from None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _echo_ids() -> tuple[int, int]:
    return os.getpid() & 0xFFFF, int.from_bytes(os.urandom(2), "big")


def icmp_exchange(node: NodeLike, host: str) -> Exchange:
    """An IPv4 echo request from a raw socket; wait for the matching echo reply."""
    ident, seq = _echo_ids()
    body = b"rawstack-harness-probe"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + body), ident, seq) + body
    with node.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.setblocking(False)
        try:
            start = time.monotonic()
            sock.sendto(packet, (host, 0))
            while True:
                yield sock, READ
                data, (src, _) = sock.recvfrom(65535)
                icmp = data[(data[0] & 0x0F) * 4 :]
                if src == host and len(icmp) >= 8 and icmp[0] == 0:
                    _, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
                    if (rid, rseq) == (ident, seq) and icmp[8:] == body:
                        return time.monotonic() - start
        except OSError as exc:
            raise ProbeFailed(f"icmp {host}: {exc}") from None


def icmp6_exchange(node: NodeLike, host: str) -> Exchange:
    """An ICMPv6 echo request (type 128) from a raw ICMPv6 socket; wait for the matching
    reply (129). The kernel fills the checksum and strips the IPv6 header (RFC 3542 3)."""
    ident, seq = _echo_ids()
    body = b"rawstack-harness-probe6"
    packet = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + body
    with node.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        sock.setblocking(False)
        try:
            start = time.monotonic()
            sock.sendto(packet, (host, 0))
            while True:
                yield sock, READ
                data, addr = sock.recvfrom(65535)
                if addr[0] == host and len(data) >= 8 and data[0] == 129:
                    _, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
                    if (rid, rseq) == (ident, seq) and data[8:] == body:
                        return time.monotonic() - start
        except OSError as exc:
            raise ProbeFailed(f"icmp6 {host}: {exc}") from None


def chao_exchange(node: NodeLike, ifname: str, dst_mac: str) -> Exchange:
    """A CHAO request frame to ``dst_mac``; wait for the reply with the same sequence number."""
    from rawstack.codec.chao import CHAO_REPLY, CHAO_REQUEST, Chao
    from rawstack.codec.ethernet import ETH_P_CHAO

    seq = int.from_bytes(os.urandom(2), "big")
    src = bytes.fromhex(node.mac(ifname).replace(":", ""))
    dst = bytes.fromhex(dst_mac.replace(":", ""))
    frame = dst + src + struct.pack("!H", ETH_P_CHAO)
    frame += Chao(CHAO_REQUEST, seq, b"harness-probe").encode()
    # Protocol 0 receives nothing until the bind names the interface and EtherType, as in
    # rawstack.sockets.packet (its open_packet cannot open a socket inside a node).
    sock = node.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setblocking(False)
        sock.bind((ifname, ETH_P_CHAO))
        start = time.monotonic()
        sock.send(frame)
        while True:
            yield sock, READ
            data = sock.recv(65535)
            if len(data) < 14 or data[:6] != src:
                continue
            try:
                reply = Chao.decode(data[14:])
            except Exception:
                continue
            if reply.type == CHAO_REPLY and reply.seq == seq:
                return time.monotonic() - start
    except OSError as exc:
        raise ProbeFailed(f"chao {dst_mac}: {exc}") from None
    finally:
        close_soon(sock)


def http_get(node: NodeLike, host: str, port: int, timeout: float = 2.0) -> float:
    """:func:`http_exchange`, blocking: the RTT, or :class:`ProbeFailed`."""
    return run_exchange(lambda: http_exchange(node, host, port), timeout)


def udp_echo(node: NodeLike, host: str, port: int, timeout: float = 1.0) -> float:
    """:func:`udp_exchange`, blocking."""
    return run_exchange(lambda: udp_exchange(node, host, port), timeout)


def icmp_echo(node: NodeLike, host: str, timeout: float = 1.0) -> float:
    """:func:`icmp_exchange`, blocking."""
    return run_exchange(lambda: icmp_exchange(node, host), timeout)


def icmp6_echo(node: NodeLike, host: str, timeout: float = 1.0) -> float:
    """:func:`icmp6_exchange`, blocking."""
    return run_exchange(lambda: icmp6_exchange(node, host), timeout)


def chao_request(node: NodeLike, ifname: str, dst_mac: str, timeout: float = 1.0) -> float:
    """:func:`chao_exchange`, blocking."""
    return run_exchange(lambda: chao_exchange(node, ifname, dst_mac), timeout)


@dataclass(frozen=True)
class Target:
    """What a probe needs to know of the peer it probes, and the prober's own interface."""

    host: str
    port: int  # 0 for a peer without one
    mac: str  # "" unless the peer speaks link-layer frames
    src_ifname: str


# peer -> (its exchange from a node to the target, the timeout of one attempt in seconds).
EXCHANGES: dict[str, tuple[Callable[[NodeLike, Target], Exchange], float]] = {
    "http": (lambda node, t: http_exchange(node, t.host, t.port), 2.0),
    "udp": (lambda node, t: udp_exchange(node, t.host, t.port), 1.0),
    "chao": (lambda node, t: chao_exchange(node, t.src_ifname, t.mac), 1.0),
    "icmp": (lambda node, t: icmp_exchange(node, t.host), 1.0),
}
# The same peers over IPv6, probed too where the target has an IPv6 address.
EXCHANGES6: dict[str, tuple[Callable[[NodeLike, Target], Exchange], float]] = {
    "http": EXCHANGES["http"],
    "udp": EXCHANGES["udp"],
    "icmp": (lambda node, t: icmp6_exchange(node, t.host), 1.0),
}


def _jobs(
    peers: Sequence[str],
    *,
    src: NodeLike,
    src_ifname: str,
    dst: NodeLike,
    dst_ifname: str,
    ready: Mapping[str, ReadyEvent],
) -> dict[tuple[str, int], tuple[Callable[[], Exchange], float]]:
    """``(peer, 4 or 6)`` -> the job :func:`exchange_all` runs for it."""
    jobs: dict[tuple[str, int], tuple[Callable[[], Exchange], float]] = {}
    host6: str | None = None
    for peer in peers:
        if peer not in EXCHANGES:
            raise ValueError(f"unknown peer {peer!r}")
        info = BY_NAME[peer]
        target = Target(
            host=dst.addr(4, dst_ifname),
            port=ready_port(ready[peer]) if info.default_port is not None else 0,
            mac=dst.mac(dst_ifname) if info.link else "",
            src_ifname=src_ifname,
        )
        make, timeout = EXCHANGES[peer]
        jobs[peer, 4] = (functools.partial(make, src, target), timeout)
        if peer not in EXCHANGES6:
            continue
        if host6 is None:
            try:
                host6 = dst.addr(6, dst_ifname)
            except LookupError:  # no IPv6 on that interface: nothing more to prove
                host6 = ""
        if host6:
            make6, timeout6 = EXCHANGES6[peer]
            jobs[peer, 6] = (functools.partial(make6, src, replace(target, host=host6)), timeout6)
    return jobs


def probe_peers(
    peers: Sequence[str],
    *,
    src: NodeLike,
    src_ifname: str,
    dst: NodeLike,
    dst_ifname: str,
    ready: Mapping[str, ReadyEvent],
    on_failure: Callable[[str, BaseException], None],
) -> dict[str, float]:
    """Probe all of ``dst``'s ``peers`` from ``src`` at once, until each answered: peer -> RTT.

    Each peer is probed over IPv4, and over IPv6 too where ``dst`` has an address on that
    interface; the RTT reported is the IPv4 one. After a failed attempt,
    ``on_failure(peer, error)`` is called: it returns to try again, or raises to give up
    (the exception propagates once every exchange is closed).
    """

    def again(key: tuple[str, int], exc: BaseException) -> bool:
        on_failure(key[0], exc)
        return True

    results = exchange_all(
        _jobs(peers, src=src, src_ifname=src_ifname, dst=dst, dst_ifname=dst_ifname, ready=ready),
        again,
    )
    rtts = {}
    for peer in peers:
        rtt = results[peer, 4]
        assert not isinstance(rtt, BaseException)  # again() raises rather than give up
        rtts[peer] = rtt
    return rtts


def probe_peer(
    peer: str,
    *,
    src: NodeLike,
    src_ifname: str,
    dst: NodeLike,
    dst_ifname: str,
    ready: Mapping[str, ReadyEvent],
) -> float:
    """One attempt at ``dst``'s ``peer`` (as announced in ``ready``) from ``src``: its RTT.

    IPv4 and (where ``dst`` has it) IPv6 at once; the first failure is raised.
    """
    results = exchange_all(
        _jobs([peer], src=src, src_ifname=src_ifname, dst=dst, dst_ifname=dst_ifname, ready=ready)
    )
    for outcome in results.values():
        if isinstance(outcome, BaseException):
            raise outcome
    rtt = results[peer, 4]
    assert not isinstance(rtt, BaseException)
    return rtt
