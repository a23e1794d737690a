"""Delay, jitter and reorder without netem: a frame relay on packet sockets.

Theory of operation: an impaired link ``a - b`` is built as ``a - [relay] - b``: two veth
pairs whose middle ends (``a`` and ``b``) live in a namespace of their own, which has no
addresses, no IPv6 and nothing else; this process is the only thing holding it. It reads
every frame arriving on one middle end from an ``AF_PACKET`` socket and sends it out of the
other one when its time comes. When the process exits, for whatever reason, the kernel
deletes the namespace, the middle ends and so both veth pairs: nothing is left to clean up.
It also exits when its owner (the pytest process, ``--owner PID``, watched through a pidfd)
does, so a SIGKILLed run leaves no relay behind.

The sockets use ``PACKET_VNET_HDR``: each frame comes with its ``virtio_net_hdr`` (GSO and
checksum-offload state) and goes out with it, so a 64 KiB TSO super-frame or a frame whose
checksum the sender left to "hardware" crosses the relay as it would have crossed the
veth, with no offload switched off on the nodes.

:class:`DelayLine` is the rule (sans-IO: the caller passes the clock and the random source):
a frame is due at ``now + delay ± jitter`` (uniform, as netem without a distribution table),
or at once with probability ``reorder``; due frames leave in order of their due time, so
jittered frames can overtake each other as with netem. Loss and duplication happen here too
when the kernel has no clsact BPF (see :func:`~rawstack_harness.backends.linux.impair.plan.plan`).

Control: the parameters come as one JSON object on argv; each line on stdin replaces them
(``{"ab": {...}, "ba": {...}}``, :meth:`Impairment.to_dict` form), and so does each datagram
on the ``control`` Unix socket, if one is named (``netns-harness impair`` on a kept
topology, whose relays belong to its keeper: the reply datagram is ``{"relay": "set"}``);
the process prints
``{"event": "ready", "relay": "ready"}`` once its sockets are bound and
``{"event": "ready", "relay": "set"}`` after each change.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import json
import os
import random
import select
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
FRAME_MAX = 65536 + 10 + 64  # a GSO super-frame, its vnet header and slack


@dataclass
class Direction:
    """One direction's parameters (microseconds and fractions, as Impairment)."""

    delay_us: int = 0
    jitter_us: int = 0
    reorder: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0

    @classmethod
    def from_dict(cls, raw: dict[str, object], with_loss: bool) -> Direction:
        def num(key: str) -> float:
            value = raw.get(key, 0)
            return float(value) if isinstance(value, (int, float)) else 0.0

        return cls(
            delay_us=int(num("delay_us")),
            jitter_us=int(num("jitter_us")),
            reorder=num("reorder"),
            loss=num("loss") if with_loss else 0.0,
            duplicate=num("duplicate") if with_loss else 0.0,
        )


@dataclass
class DelayLine:
    """Frames in flight in one direction, ordered by when each is due (seconds)."""

    params: Direction = field(default_factory=Direction)
    rng: random.Random = field(default_factory=random.Random)
    _heap: list[tuple[float, int, bytes]] = field(default_factory=list)
    _seq: int = 0

    def push(self, now: float, frame: bytes) -> int:
        """Queue a frame received at ``now``; return how many copies were queued (0 = lost)."""
        p = self.params
        if p.loss and self.rng.random() < p.loss:
            return 0
        copies = 2 if p.duplicate and self.rng.random() < p.duplicate else 1
        for _ in range(copies):
            if p.reorder and self.rng.random() < p.reorder:
                due = now
            else:
                delay = float(p.delay_us)
                if p.jitter_us:
                    delay += self.rng.uniform(-p.jitter_us, p.jitter_us)
                due = now + max(0.0, delay) / 1e6
            self._seq += 1
            heapq.heappush(self._heap, (due, self._seq, frame))
        return copies

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> list[bytes]:
        """The frames due at ``now``, earliest first."""
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def __len__(self) -> int:
        return len(self._heap)


def open_port(ifname: str) -> socket.socket:
    """A packet socket on one middle end: every incoming frame, with its vnet header."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    with contextlib.suppress(OSError):  # before Linux 4.20: filtered by pkttype in serve()
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((ifname, ETH_P_ALL))
    sock.setblocking(False)
    return sock


def _control_socket(path: str) -> socket.socket | None:
    if not path:
        return None
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    sock.bind(path)
    os.chmod(path, 0o600)
    return sock


def _control(sock: socket.socket, lines: dict[str, DelayLine], with_loss: bool) -> None:
    data, addr = sock.recvfrom(65536)
    try:
        _configure(lines, json.loads(data), with_loss)
        reply = b'{"relay": "set"}'
    except (ValueError, TypeError) as exc:
        reply = json.dumps({"relay": "error", "error": str(exc)}).encode()
    if addr:
        with contextlib.suppress(OSError):
            sock.sendto(reply, addr)


def send_control(path: str, cfg: dict[str, object], timeout: float = 5.0) -> None:
    """Send new parameters to a relay's control socket and wait for its answer."""
    # A path, not an abstract address: abstract Unix addresses belong to a network
    # namespace, and the relay lives in its own.
    mine = f"{path}.{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(mine)
        sock.bind(mine)
        try:
            sock.settimeout(timeout)
            sock.sendto(json.dumps(cfg).encode(), path)
            answer = json.loads(sock.recv(65536))
        finally:
            os.unlink(mine)
    if answer.get("relay") != "set":
        raise ValueError(f"relay at {path}: {answer.get('error', answer)}")


def _gone(ifname: str) -> bool:
    try:
        socket.if_nametoindex(ifname)
    except OSError:
        return True
    return False


def _warn(text: str) -> None:
    sys.stderr.write(f"relay: {text}\n")
    sys.stderr.flush()


def _wait(poller: select.poll, seconds: float | None) -> list[tuple[int, int]]:
    """Poll until input or ``seconds``; poll(2) counts whole milliseconds, so the last
    millisecond before a frame is due is slept with nanosleep instead (a rounded-up poll
    would add half a millisecond to every frame on average)."""
    if seconds is None:
        return poller.poll(None)
    if seconds >= 0.001:
        return poller.poll(int(seconds * 1000))  # wakes up to 1 ms early: the rest below
    events = poller.poll(0)
    if not events and seconds > 0:
        time.sleep(seconds)
    return events


def _emit(obj: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _configure(lines: dict[str, DelayLine], raw: dict[str, object], with_loss: bool) -> None:
    for key in ("ab", "ba"):
        spec = raw.get(key)
        if isinstance(spec, dict):
            lines[key].params = Direction.from_dict(spec, with_loss)


def serve(
    cfg: dict[str, object], clock: Callable[[], float], rng: random.Random
) -> int:  # pragma: no cover - exercised by the integration tests
    a, b = open_port(str(cfg["a"])), open_port(str(cfg["b"]))
    with_loss = bool(cfg.get("loss", False))
    lines = {"ab": DelayLine(rng=rng), "ba": DelayLine(rng=rng)}
    _configure(lines, cfg, with_loss)
    route = {a.fileno(): (lines["ab"], a), b.fileno(): (lines["ba"], b)}
    ports = {a.fileno(): str(cfg["a"]), b.fileno(): str(cfg["b"])}
    names = {"ab": str(cfg["b"]), "ba": str(cfg["a"])}
    out = {"ab": b, "ba": a}
    poller = select.poll()
    for sock in (a, b):
        poller.register(sock, select.POLLIN)
    stdin = sys.stdin.fileno()
    poller.register(stdin, select.POLLIN)
    owner = int(str(cfg.get("owner", 0)))
    owner_fd = -1
    if owner:
        try:
            owner_fd = os.pidfd_open(owner)
        except ProcessLookupError:
            return 0
        poller.register(owner_fd, select.POLLIN)
    control = _control_socket(str(cfg.get("control") or ""))
    if control is not None:
        poller.register(control, select.POLLIN)
    _emit({"event": "ready", "relay": "ready"})
    buf = bytearray(FRAME_MAX)
    pending = b""
    while True:
        dues = [d for d in (lines["ab"].next_due(), lines["ba"].next_due()) if d is not None]
        events = _wait(poller, None if not dues else min(dues) - clock())
        for fd, _ev in events:
            if fd == owner_fd:
                return 0  # the owner exited (SIGKILL included): so does the link
            if control is not None and fd == control.fileno():
                _control(control, lines, with_loss)
                continue
            if fd == stdin:
                chunk = os.read(stdin, 65536)
                if not chunk:
                    return 0  # the harness closed our control pipe: the link is going
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    _configure(lines, json.loads(line), with_loss)
                    _emit({"event": "ready", "relay": "set"})
                continue
            line_, sock = route[fd]
            while True:
                try:
                    n, addr = sock.recvfrom_into(buf)
                except BlockingIOError:
                    break
                except OSError as exc:
                    # ENETDOWN is reported once when an end goes down or away: only an end
                    # that no longer exists (a node namespace was removed) ends the relay.
                    if _gone(ports[fd]):
                        return 0
                    _warn(f"recv on {ports[fd]}: {exc}")
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                line_.push(clock(), bytes(buf[:n]))
        now = clock()
        for key, line_ in lines.items():
            for frame in line_.pop_due(now):
                try:
                    out[key].send(frame)
                except OSError as exc:
                    # A full queue or an end that is down drops the frame, as a wire would.
                    if exc.errno in (errno.ENXIO, errno.ENODEV) and _gone(names[key]):
                        return 0


def main(argv: list[str]) -> int:  # pragma: no cover - a separate process
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    cfg = json.loads(argv[0])
    return serve(cfg, time.monotonic, random.Random())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
