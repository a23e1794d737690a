"""One ``selectors`` loop (epoll on Linux, kqueue on the BSDs) shared by every peer.

Theory of operation: peers register a file object with a callback for readability and/or
writability; timers are a heap of deadlines on the monotonic clock. Signals (SIGTERM,
SIGINT) are delivered through ``signal.set_wakeup_fd`` on a socketpair so a blocked
``select`` wakes at once and the loop stops cleanly, closing what the peers registered.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import signal
import socket
import time
from collections.abc import Callable
from typing import Any, Protocol

Callback = Callable[[], object]  # return values are ignored


class Timer:
    """A handle returned by :meth:`Loop.call_later`; ``cancel()`` is idempotent."""

    __slots__ = ("callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Callback) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor(Protocol):
    """What a server registers with: a :class:`Loop`, or a :class:`LoopView` of one."""

    def add_reader(self, fileobj: Any, callback: Callback) -> None: ...

    def remove_reader(self, fileobj: Any) -> None: ...

    def add_writer(self, fileobj: Any, callback: Callback) -> None: ...

    def remove_writer(self, fileobj: Any) -> None: ...

    def call_later(self, delay: float, callback: Callback) -> Timer: ...

    def time(self) -> float: ...


class Loop:
    """A minimal single-threaded reactor."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._running = False
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._old_wakeup_fd: int | None = None
        self.stop_signal: int | None = None

    # -- file descriptors -------------------------------------------------------------
    def _update(self, fd: int, fileobj: Any) -> None:
        events = (selectors.EVENT_READ if fd in self._readers else 0) | (
            selectors.EVENT_WRITE if fd in self._writers else 0
        )
        try:
            key = self._sel.get_key(fd)
        except KeyError:
            key = None
        if key is None:
            if events:
                self._sel.register(fileobj, events)
        elif events:
            self._sel.modify(fileobj, events)
        else:
            self._sel.unregister(fd)

    def add_reader(self, fileobj: Any, callback: Callback) -> None:
        fd = _fd(fileobj)
        self._readers[fd] = callback
        self._update(fd, fileobj)

    def remove_reader(self, fileobj: Any) -> None:
        fd = _fd(fileobj)
        if self._readers.pop(fd, None) is not None:
            self._update(fd, fileobj)

    def add_writer(self, fileobj: Any, callback: Callback) -> None:
        fd = _fd(fileobj)
        self._writers[fd] = callback
        self._update(fd, fileobj)

    def remove_writer(self, fileobj: Any) -> None:
        fd = _fd(fileobj)
        if self._writers.pop(fd, None) is not None:
            self._update(fd, fileobj)

    # -- timers -----------------------------------------------------------------------
    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(time.monotonic() + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.deadline, next(self._seq), timer))
        return timer

    def time(self) -> float:
        return time.monotonic()

    # -- running ----------------------------------------------------------------------
    def stop(self) -> None:
        self._running = False

    def install_signal_handlers(
        self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT)
    ) -> None:
        """Stop the loop on these signals (main thread only)."""
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno())

        def handler(signum: int, _frame: object) -> None:
            self.stop_signal = signum
            self._running = False

        for sig in signals:
            signal.signal(sig, handler)
        wake_r = self._wake_r

        def drain() -> None:
            try:
                while wake_r.recv(64):
                    pass
            except BlockingIOError:
                pass

        self.add_reader(self._wake_r, drain)

    def run(self, until: float | None = None) -> None:
        """Run until :meth:`stop`, a handled signal, or the monotonic time ``until``."""
        if self.stop_signal is not None:
            return  # a signal arrived before we started: honour it rather than lose it
        self._running = True
        while self._running:
            now = time.monotonic()
            while self._timers and (self._timers[0][2].cancelled or self._timers[0][0] <= now):
                _, _, timer = heapq.heappop(self._timers)
                if not timer.cancelled:
                    timer.callback()
                    if not self._running:
                        return
            if not self._readers and not self._writers and not self._timers:
                return  # nothing could ever wake us
            timeout: float | None = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - now)
            if until is not None:
                left = max(0.0, until - now)
                timeout = left if timeout is None else min(timeout, left)
                if left == 0.0:
                    return
            for key, mask in self._sel.select(timeout):
                fd = key.fd
                if mask & selectors.EVENT_READ:
                    cb = self._readers.get(fd)
                    if cb is not None:
                        cb()
                if mask & selectors.EVENT_WRITE:
                    cb = self._writers.get(fd)
                    if cb is not None:
                        cb()
                if not self._running:
                    return

    def close(self) -> None:
        if self._wake_r is not None:
            self.remove_reader(self._wake_r)
            if self._old_wakeup_fd is not None:
                signal.set_wakeup_fd(self._old_wakeup_fd)
            self._wake_r.close()
            if self._wake_w is not None:
                self._wake_w.close()
            self._wake_r = self._wake_w = None
        self._sel.close()


def _fd(fileobj: Any) -> int:
    return fileobj if isinstance(fileobj, int) else int(fileobj.fileno())


class LoopView:
    """One tenant's share of a :class:`Loop` that serves several (``netns-harness``'s shared
    peers: every node's servers on one loop).

    Every callback registered through the view runs inside ``scope()`` (the tenant's
    stdout/stderr, say); one that raises is handed to ``on_error`` instead of ending the
    loop, so one tenant's failure is that tenant's alone. :meth:`close` drops whatever the
    tenant left registered, timers included. The wrapping is done once per registration,
    so the loop's dispatch is the same as without a view.
    """

    def __init__(
        self,
        loop: Loop,
        scope: Callable[[], contextlib.AbstractContextManager[object]],
        on_error: Callable[[Exception], None],
    ) -> None:
        self.loop = loop
        self._scope = scope
        self._on_error = on_error
        # What the view registered, by fd: the loop holds these very wrappers while they
        # are ours (a closed socket's number may be another tenant's by now).
        self._readers: dict[int, Callback] = {}
        self._writers: dict[int, Callback] = {}
        self._timers: list[Timer] = []
        self.closed = False

    def _wrap(self, callback: Callback) -> Callback:
        if self.closed:
            raise RuntimeError("registering with a closed LoopView")
        scope, on_error = self._scope, self._on_error

        def run() -> None:
            with scope():
                try:
                    callback()
                except Exception as exc:  # the tenant's failure, not the loop's
                    on_error(exc)

        return run

    def add_reader(self, fileobj: Any, callback: Callback) -> None:
        wrapped = self._wrap(callback)
        self._readers[_fd(fileobj)] = wrapped
        self.loop.add_reader(fileobj, wrapped)

    def remove_reader(self, fileobj: Any) -> None:
        self._readers.pop(_fd(fileobj), None)
        self.loop.remove_reader(fileobj)

    def add_writer(self, fileobj: Any, callback: Callback) -> None:
        wrapped = self._wrap(callback)
        self._writers[_fd(fileobj)] = wrapped
        self.loop.add_writer(fileobj, wrapped)

    def remove_writer(self, fileobj: Any) -> None:
        self._writers.pop(_fd(fileobj), None)
        self.loop.remove_writer(fileobj)

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = self.loop.call_later(delay, self._wrap(callback))
        now = self.time()
        self._timers = [t for t in self._timers if not t.cancelled and t.deadline > now]
        self._timers.append(timer)
        return timer

    def time(self) -> float:
        return self.loop.time()

    def fds(self) -> list[int]:
        """The descriptors registered through the view that the loop still holds from it."""
        mine = {fd for fd, cb in self._readers.items() if self.loop._readers.get(fd) is cb}
        mine |= {fd for fd, cb in self._writers.items() if self.loop._writers.get(fd) is cb}
        return sorted(mine)

    def close(self) -> None:
        """Unregister what the tenant left (its servers' ``close`` should have) and its timers."""
        self.closed = True
        for fd, wrapped in self._readers.items():
            if self.loop._readers.get(fd) is wrapped:
                self.loop.remove_reader(fd)
        for fd, wrapped in self._writers.items():
            if self.loop._writers.get(fd) is wrapped:
                self.loop.remove_writer(fd)
        self._readers.clear()
        self._writers.clear()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
