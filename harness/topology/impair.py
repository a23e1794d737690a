"""Link impairment as spec data: what ``impair:`` says, parsed with field paths.

Theory of operation: an :class:`Impairment` is what one direction of a link does to frames
(``delay``, ``jitter``, ``loss``, ``duplicate``, ``reorder``, ``rate``), held in integers and
fractions; :func:`parse_link_impair` reads the spec form (``{delay: 20ms, loss: 1%}`` for both
directions, ``{a: {...}, b: {...}}`` per endpoint: ``a`` is what a's frames suffer on the way
to b) and raises :class:`~rawstack_harness.errors.SpecError` with the field path;
:meth:`LinkImpairment.to_spec` writes the spec form back. Semantics follow netem's
(``net/sched/sch_netem.c``): jitter is uniform in ``delay ± jitter`` (so frames can pass each
other), ``reorder: p`` sends a fraction p of frames at once and delays the others. How a
backend gives them is its own business (Linux: ``backends/linux/impair/``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

from rawstack_harness.errors import SpecError

_TIME_UNITS = {"us": 1, "ms": 1000, "s": 1_000_000}
_RATE_UNITS = {"bit": 1, "kbit": 1000, "mbit": 1_000_000, "gbit": 1_000_000_000}
_NUM = r"(\d+(?:\.\d+)?)"
_TIME_RE = re.compile(rf"^{_NUM}\s*(us|ms|s)$")
_PCT_RE = re.compile(rf"^{_NUM}\s*%$")
_RATE_RE = re.compile(rf"^{_NUM}\s*(bit|kbit|mbit|gbit)$", re.IGNORECASE)
MAX_DELAY_US = 60_000_000  # a minute: more is a typo, not a link


@dataclass(frozen=True)
class Impairment:
    """What one direction of a link does to frames; all zero means nothing."""

    delay_us: int = 0
    jitter_us: int = 0
    loss: float = 0.0  # fractions, 0..1
    duplicate: float = 0.0
    reorder: float = 0.0
    rate_bps: int = 0  # bits per second of Ethernet frames; 0 = unlimited
    # ``delay`` was declared, even as 0ms: without netem the link keeps its relay, so its
    # delay, jitter and reorder can still be changed at run time.
    delay_line: bool = False

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    @property
    def needs_delay_line(self) -> bool:
        return bool(self.delay_line or self.delay_us or self.jitter_us or self.reorder)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_spec(self) -> dict[str, str]:
        """The spec form (``{"delay": "20ms", "loss": "1%"}``): ``parse_impairment`` inverts it."""
        out: dict[str, str] = {}
        if self.delay_us or self.delay_line:
            out["delay"] = _fmt_time(self.delay_us)
        if self.jitter_us:
            out["jitter"] = _fmt_time(self.jitter_us)
        for key in ("loss", "duplicate", "reorder"):
            frac = getattr(self, key)
            if frac:
                out[key] = f"{frac * 100:.12g}%"
        if self.rate_bps:
            out["rate"] = _fmt_rate(self.rate_bps)
        return out

    def describe(self) -> str:
        """The spec form in words (``delay 20ms jitter 2ms loss 1%``); ``none`` when empty."""
        return " ".join(f"{k} {v}" for k, v in self.to_spec().items()) or "none"


@dataclass(frozen=True)
class LinkImpairment:
    """Both directions of a link: ``a`` is a's egress (a -> b), ``b`` is b's egress."""

    a: Impairment = Impairment()
    b: Impairment = Impairment()

    def __bool__(self) -> bool:
        return bool(self.a) or bool(self.b)

    def to_spec(self) -> dict[str, Any]:
        """The spec form: one mapping when both directions agree, else ``{a: ..., b: ...}``."""
        if self.a == self.b:
            return self.a.to_spec()
        return {k: v for k, v in (("a", self.a.to_spec()), ("b", self.b.to_spec())) if v}


def _fmt_time(us: int) -> str:
    if us == 0:
        return "0ms"
    if us % 1_000_000 == 0:
        return f"{us // 1_000_000}s"
    if us % 1000 == 0:
        return f"{us // 1000}ms"
    return f"{us}us"


def _fmt_rate(bps: int) -> str:
    for unit, mult in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bps % mult == 0:
            return f"{bps // mult}{unit}"
    return f"{bps}bit"


def parse_time(path: str, value: object) -> int:
    """``20ms`` -> 20000 (microseconds)."""
    m = _TIME_RE.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise SpecError(path, f"{value!r} is not a time (a number with us, ms or s: 20ms)")
    us = round(float(m.group(1)) * _TIME_UNITS[m.group(2)])
    if us > MAX_DELAY_US:
        raise SpecError(path, f"{value!r} is more than {MAX_DELAY_US // 1_000_000}s")
    return us


def parse_percent(path: str, value: object) -> float:
    """``1.5%`` -> 0.015."""
    m = _PCT_RE.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise SpecError(path, f"{value!r} is not a percentage (a number with %: 1%)")
    pct = float(m.group(1))
    if pct > 100:
        raise SpecError(path, f"{value!r} is more than 100%")
    return pct / 100


def parse_rate(path: str, value: object) -> int:
    """``10mbit`` -> 10_000_000 (bits per second)."""
    m = _RATE_RE.match(value.strip()) if isinstance(value, str) else None
    if not m:
        raise SpecError(path, f"{value!r} is not a rate (a number with kbit, mbit or gbit)")
    bps = round(float(m.group(1)) * _RATE_UNITS[m.group(2).lower()])
    if bps < 8000:
        raise SpecError(path, f"{value!r} is below 8kbit (one frame a second)")
    return bps


_PARSERS = {
    "delay": ("delay_us", parse_time),
    "jitter": ("jitter_us", parse_time),
    "loss": ("loss", parse_percent),
    "duplicate": ("duplicate", parse_percent),
    "reorder": ("reorder", parse_percent),
    "rate": ("rate_bps", parse_rate),
}


def parse_impairment(path: str, raw: object) -> Impairment:
    """One direction from its spec form (a mapping of the six keys)."""
    if isinstance(raw, Impairment):
        return raw
    if not isinstance(raw, dict):
        raise SpecError(path, f"expected a mapping of {', '.join(_PARSERS)}, got {raw!r}")
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _PARSERS:
            raise SpecError(f"{path}.{key}", f"unknown impairment (known: {', '.join(_PARSERS)})")
        name, parse = _PARSERS[key]
        values[name] = parse(f"{path}.{key}", value)
    imp = Impairment(**values, delay_line="delay" in raw)
    if imp.jitter_us and imp.jitter_us > imp.delay_us:
        raise SpecError(f"{path}.jitter", "jitter larger than delay (netem: delay >= jitter)")
    if imp.reorder and not imp.delay_us:
        raise SpecError(f"{path}.reorder", "reorder needs a delay (the frames not sent at once)")
    return imp


def parse_link_impair(path: str, raw: object) -> LinkImpairment:
    """A link's ``impair``: one mapping for both directions or ``{a: {...}, b: {...}}``."""
    if isinstance(raw, LinkImpairment):
        return raw
    if isinstance(raw, Impairment):
        return LinkImpairment(raw, raw)
    if isinstance(raw, dict) and raw and set(raw) <= {"a", "b"}:
        return LinkImpairment(
            parse_impairment(f"{path}.a", raw.get("a", {})),
            parse_impairment(f"{path}.b", raw.get("b", {})),
        )
    if isinstance(raw, dict) and set(raw) & {"a", "b"}:
        raise SpecError(path, "either per-direction keys (a, b) or impairments, not both")
    both = parse_impairment(path, raw)
    return LinkImpairment(both, both)
