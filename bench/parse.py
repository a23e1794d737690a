"""Parsers for what the measured tools print: wrk, iputils ping, /proc smaps, pytest.

Pure functions over text so they are unit-tested without running anything.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def duration_ms(text: str) -> float:
    """wrk's ``812.00us`` / ``1.23ms`` / ``2.00s`` as milliseconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reports."""

    requests: int
    rps: float
    p50_ms: float | None
    p99_ms: float | None
    socket_errors: int
    non_2xx: int


def parse_wrk(text: str) -> WrkResult:
    """``wrk --latency`` output; raises ValueError when it has no Requests/sec line."""
    rps = re.search(r"^Requests/sec:\s*([0-9.]+)", text, re.MULTILINE)
    if not rps:
        raise ValueError("wrk printed no Requests/sec line")
    total = re.search(r"^\s*(\d+) requests in", text, re.MULTILINE)
    lat = dict(re.findall(r"^\s*(50|99)%\s+([0-9.]+(?:us|ms|s|m))\s*$", text, re.MULTILINE))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    return WrkResult(
        requests=int(total.group(1)) if total else 0,
        rps=float(rps.group(1)),
        p50_ms=duration_ms(lat["50"]) if "50" in lat else None,
        p99_ms=duration_ms(lat["99"]) if "99" in lat else None,
        socket_errors=sum(int(x) for x in errors.groups()) if errors else 0,
        non_2xx=int(non2xx.group(1)) if non2xx else 0,
    )


def parse_ping_times(text: str) -> list[float]:
    """Every ``time=0.045 ms`` of an iputils ping run, in milliseconds."""
    return [float(x) for x in re.findall(r"\btime[=<]([0-9.]+) ?ms\b", text)]


def parse_smaps_rollup(text: str) -> dict[str, int]:
    """/proc/PID/smaps_rollup as {field: kibibytes} (Rss, Pss, ...)."""
    out: dict[str, int] = {}
    for match in re.finditer(r"^(\w+):\s+(\d+) kB$", text, re.MULTILINE):
        out[match.group(1)] = int(match.group(2))
    return out


MAPPING_KINDS = ("anonymous", "[heap]", "libpython", "other")


def private_dirty_by_mapping(smaps_text: str) -> dict[str, int]:
    """``Private_Dirty`` KiB of a /proc/PID/smaps text, summed by kind of mapping.

    For a forked process these are the pages it has written since the fork (copies of its
    parent's pages, or new ones): what it costs on its own. The kinds: ``anonymous`` (no
    name: pymalloc's arenas, large buffers), ``[heap]`` (malloc's brk heap), ``libpython``
    (the interpreter's static data: type objects, small ints) and ``other``.
    """
    out = dict.fromkeys(MAPPING_KINDS, 0)
    kind = "other"
    for line in smaps_text.splitlines():
        head = line.split(None, 5)
        if head and "-" in head[0] and len(head) >= 5 and ":" in head[3]:  # a mapping's line
            name = head[5] if len(head) > 5 else ""
            if not name:
                kind = "anonymous"
            elif name == "[heap]":
                kind = "[heap]"
            elif "/libpython" in name:
                kind = "libpython"
            else:
                kind = "other"
            continue
        if head and head[0] == "Private_Dirty:":
            out[kind] += int(head[1])
    return out


def phase_seconds(jsonl_text: str) -> dict[str, float]:
    """Seconds summed by phase (``setup``, ``call``, ``teardown``) from the lines
    :mod:`bench.suite_durations` wrote: ``[nodeid, phase, seconds]`` each."""
    out = {"setup": 0.0, "call": 0.0, "teardown": 0.0}
    for line in jsonl_text.splitlines():
        if line.strip():
            _, when, seconds = json.loads(line)
            out[str(when)] = out.get(str(when), 0.0) + float(seconds)
    return out


def parse_pytest_summary(text: str) -> dict[str, int]:
    """Counts from pytest's last line, e.g. ``3 failed, 40 passed, 2 skipped in 9.1s``."""
    lines = [x for x in text.strip().splitlines() if re.search(r"\bin [0-9.]+s", x)]
    if not lines:
        return {}
    counts: dict[str, int] = {}
    for number, word in re.findall(r"(\d+) (\w+)", lines[-1]):
        key = {"error": "errors", "warning": "warnings"}.get(word, word)
        counts[key] = counts.get(key, 0) + int(number)
    return counts


def failed_tests(text: str) -> list[str]:
    """The node ids pytest's short summary lists as ``FAILED`` or ``ERROR`` (``-ra``)."""
    found = []
    for line in text.splitlines():
        m = re.match(r"(?:FAILED|ERROR) (\S+)", line)
        if m and "::" in m.group(1):
            found.append(m.group(1))
    return found
