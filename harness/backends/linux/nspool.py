"""Empty network namespaces made ahead, off the build's path, for the next build to name.

Theory of operation: creating a namespace (``unshare(CLONE_NEWNET)``: the kernel runs every
per-namespace init, the loopback device, the sysctl tables) took ~0.4 ms here, and a bare
pair's build needs two: about a third of it. A :class:`NamespacePool` keeps a few made in a
thread of its own, and refills once a build has finished, while its test runs. A build
takes what the pool has and makes the rest itself (see ``nodes._create_namespaces``).

A pooled namespace is anonymous: only the pool's descriptor holds it, so if the process
dies, however it dies, the kernel deletes it, and no manifest entry is needed until a build
names it (bind-mounts that descriptor on ``/run/netns/<name>``, after the entry is written,
as for any namespace). Its node defaults (:data:`NODE_SYSCTLS`) are written and its
``NETLINK_ROUTE`` socket opened in it when it is made (:func:`make_fresh`, which a build
calls itself for what the pool lacks).

The pool holds as many as the largest build of the run took (at least :data:`FIRST`, at
most :data:`MOST`). It stops making them for good at the first failure (the build's own
creation then reports the error, as without a pool). A forked child (pyroute2's helpers
fork) gets no pool from its run (``LinuxRun.namespace_pool``): the descriptors it inherited
are the parent's to hand out.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from rawstack_harness.backends.linux import nsutil, rtnl

# Tests expect addresses usable at once: without this IPv6 ones stay "tentative" (DAD) ~1s.
NODE_SYSCTLS = (
    ("net/ipv6/conf/default/accept_dad", "0"),
    ("net/ipv6/conf/all/accept_dad", "0"),
)
FIRST = 2  # namespaces held before any build said how many it takes: a pair's
MOST = 8  # never more, however large the builds (each holds a few hundred KB of kernel memory)
CLOSE_TIMEOUT = 1.0  # seconds close() waits for the thread to finish the namespace it makes


@dataclass
class Fresh:
    """A namespace made ahead: its descriptor and a ``NETLINK_ROUTE`` socket in it."""

    fd: int
    nl: socket.socket

    def close(self) -> None:
        self.nl.close()
        os.close(self.fd)


def make_fresh() -> Fresh:
    """A new namespace with the node defaults, made from the calling thread (which returns
    to its own namespace: :func:`~.nsutil.briefly`)."""

    def inside() -> Fresh:
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            nsutil.write_sysctls(NODE_SYSCTLS)
            return Fresh(fd, rtnl.open_socket())
        except BaseException:
            os.close(fd)
            raise

    return nsutil.briefly(nsutil.unshare_net, inside)


class NamespacePool:
    """Namespaces made ahead by one thread (started by the first :meth:`refill`)."""

    def __init__(self, make: Callable[[], Fresh] = make_fresh) -> None:
        self._make = make
        self._cond = threading.Condition()
        self._ready: list[Fresh] = []
        self._target = 0  # nothing is made before the first refill
        self._thread: threading.Thread | None = None
        self.closed = False
        self.failure: Exception | None = None  # what stopped it, for a curious reader

    def take(self, n: int) -> list[Fresh]:
        """Up to ``n`` namespaces made ahead, at once (none if the pool has none)."""
        with self._cond:
            taken, self._ready = self._ready[:n], self._ready[n:]
        return taken

    def refill(self, wanted: int) -> None:
        """Hold ``wanted`` (within :data:`FIRST`..:data:`MOST`) from now on, or as many as
        before if that is more, and have the thread make what is missing."""
        with self._cond:
            if self.closed:
                return
            self._target = min(max(self._target, wanted, FIRST), MOST)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="netns-pool", daemon=True)
                self._thread.start()
            self._cond.notify()

    def held(self) -> int:
        with self._cond:
            return len(self._ready)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self.closed and len(self._ready) >= self._target:
                    self._cond.wait()
                if self.closed:
                    return
            try:
                fresh = self._make()
            except Exception as exc:  # any failure stops the pool, not the run
                # Builds make theirs on the spot again, and report the error themselves.
                with self._cond:
                    self.failure = exc
                    self.closed = True
                    stale, self._ready = self._ready, []
                for item in stale:
                    item.close()
                return
            with self._cond:
                if not self.closed:
                    self._ready.append(fresh)
                    continue
            fresh.close()
            return

    def close(self) -> None:
        """Stop the thread and let go of every namespace held (the kernel deletes them)."""
        with self._cond:
            self.closed = True
            stale, self._ready = self._ready, []
            thread = self._thread
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(CLOSE_TIMEOUT)
        for item in stale:
            with contextlib.suppress(OSError):
                item.close()
