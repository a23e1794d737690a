"""close_soon: sockets are closed by one long-lived thread, not waited for, and not leaked."""

from __future__ import annotations

import os
import socket
import threading
import time

from rawstack_harness.probes import close_soon


def _closed(fd: int, ino: int) -> bool:
    try:
        return os.fstat(fd).st_ino != ino  # the number may have been reused since
    except OSError:
        return True


def test_the_sockets_are_closed_by_one_thread_for_every_call() -> None:
    opened = [s for _ in range(5) for s in socket.socketpair()]
    identities = [(s.fileno(), os.fstat(s.fileno()).st_ino) for s in opened]
    for i in range(0, len(opened), 2):
        close_soon(opened[i], opened[i + 1])
    assert all(s.fileno() == -1 for s in opened)  # the objects let go at once
    deadline = time.monotonic() + 5
    while not all(_closed(fd, ino) for fd, ino in identities) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(_closed(fd, ino) for fd, ino in identities)
    closers = [t for t in threading.enumerate() if t.name == "netns-close"]
    assert len(closers) == 1
