"""Rate-limited log lines: a flood of identical complaints becomes a few lines and a count.

Theory of operation: a server that logs one line per dropped frame or packet lets any peer
on the link fill the disk (a fuzz run produced 104,648 lines). :class:`RateLimiter` is a
token bucket in the style of the kernel's ``net_ratelimit()`` (``lib/ratelimit.c``: a
burst, then at most ``rate`` events a second), with the clock supplied by the caller so it
is a pure state machine. :meth:`RateLimiter.allow` says whether an event may be logged and,
when it may, how many events were suppressed since the last one that got through, so the
next line carries the count ("... (37 similar lines suppressed)"). :class:`LimitedLog`
wraps it around a line sink (by default :func:`rawstack.peers.base.log`) and reports what is
still suppressed when the server closes (:meth:`LimitedLog.flush`).

One limiter per kind of line (drops, send errors) keeps a flood of one kind from hiding
the first line of another.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_RATE = 10.0  # lines per second once the burst is used up
DEFAULT_BURST = 20  # lines let through at once before limiting starts


@dataclass
class RateLimiter:
    """A token bucket of ``burst`` tokens refilled at ``rate`` tokens a second."""

    rate: float = DEFAULT_RATE
    burst: int = DEFAULT_BURST
    suppressed: int = 0  # events refused since the last one allowed
    total_suppressed: int = 0
    _tokens: float = field(default=-1.0, repr=False)
    _last: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"rate must be a positive number of events a second, not {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, not {self.burst}")
        self._tokens = float(self.burst)

    def allow(self, now: float) -> int | None:
        """One event at monotonic time ``now``: None if it must be suppressed, else the
        number of events suppressed before it (0 when none were)."""
        if self._last is not None and now > self._last:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now
        if self._tokens < 1.0:
            self.suppressed += 1
            self.total_suppressed += 1
            return None
        self._tokens -= 1.0
        before, self.suppressed = self.suppressed, 0
        return before

    def take_suppressed(self) -> int:
        """The events suppressed since the last allowed one, and forget them."""
        count, self.suppressed = self.suppressed, 0
        return count


def suppressed_note(count: int) -> str:
    """`` (N similar lines suppressed)`` for ``count`` > 0, else the empty string."""
    if count <= 0:
        return ""
    return f" ({count} similar line{'s' if count != 1 else ''} suppressed)"


def _default_sink(peer: str, message: str) -> None:
    from rawstack.peers.base import log

    log(peer, message)


@dataclass
class LimitedLog:
    """Log lines for ``peer`` through a :class:`RateLimiter`; suppressed lines are counted."""

    peer: str
    limiter: RateLimiter = field(default_factory=RateLimiter)
    sink: Callable[[str, str], None] = _default_sink
    clock: Callable[[], float] = time.monotonic

    def __call__(self, message: str) -> bool:
        """Log ``message`` unless over the rate; True when it was written."""
        before = self.limiter.allow(self.clock())
        if before is None:
            return False
        self.sink(self.peer, message + suppressed_note(before))
        return True

    def flush(self) -> None:
        """Say how many lines are still suppressed (call when the server closes)."""
        count = self.limiter.take_suppressed()
        if count:
            self.sink(self.peer, f"{count} similar line{'s' if count != 1 else ''} suppressed")
