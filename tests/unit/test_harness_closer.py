"""close_soon and Closer: sockets are closed in the background, side by side, not leaked."""

from __future__ import annotations

import os
import socket
import threading
import time

from rawstack_harness.probes import Closer, close_soon


def _closed(fd: int, ino: int) -> bool:
    try:
        return os.fstat(fd).st_ino != ino  # the number may have been reused since
    except OSError:
        return True


def test_close_soon_lets_go_at_once_and_closes_every_socket() -> None:
    opened = [s for _ in range(5) for s in socket.socketpair()]
    identities = [(s.fileno(), os.fstat(s.fileno()).st_ino) for s in opened]
    for i in range(0, len(opened), 2):
        close_soon(opened[i], opened[i + 1])
    assert all(s.fileno() == -1 for s in opened)  # the objects let go at once
    deadline = time.monotonic() + 5
    while not all(_closed(fd, ino) for fd, ino in identities) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_closed(fd, ino) for fd, ino in identities)


class _Gate:
    """A close that waits until ``width`` closes wait at once, as packet sockets' closes share
    one RCU grace period: closes made one after another never get through it."""

    def __init__(self, width: int) -> None:
        self.barrier = threading.Barrier(width, timeout=5)
        self.closed: list[int] = []
        self.broken = 0
        self.lock = threading.Lock()

    def __call__(self, fd: int) -> None:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            with self.lock:
                self.broken += 1
        with self.lock:
            self.closed.append(fd)


def _wait_closed(gate: _Gate, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(gate.closed) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_backlog_is_closed_side_by_side() -> None:
    gate = _Gate(8)
    closer = Closer(most=8, close=gate)
    closer.put(list(range(1000, 1004)))
    closer.put(list(range(1004, 1008)))  # a second call finds every thread busy: more start
    _wait_closed(gate, 8)
    assert sorted(gate.closed) == list(range(1000, 1008))
    assert gate.broken == 0  # all eight waited at once


def test_the_pool_stops_growing_at_its_limit_and_still_closes_everything() -> None:
    gate = _Gate(3)
    closer = Closer(most=3, close=gate)
    before = threading.active_count()
    for first in (2000, 2003, 2006):  # three calls, each finding every thread busy
        closer.put(list(range(first, first + 3)))
    _wait_closed(gate, 9)
    assert sorted(gate.closed) == list(range(2000, 2009))
    assert gate.broken == 0
    assert threading.active_count() - before <= 3
