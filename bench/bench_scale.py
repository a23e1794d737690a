"""Many pairs alive at once: memory per pair and setup time per pair as the count grows.

Pairs are added one by one (harness backend, then ``rawstack serve-all`` on both sides,
waited for with real probes) until ``--pairs`` exist, the time budget runs out, or the
machine's available memory falls under a guard (then the report says where it stopped).
Memory per pair = PSS of the peer processes (their share of pages, so shared libraries
are not counted 200 times) + the kernel's growth (Slab, Percpu, KernelStack, PageTables
and VmallocUsed from /proc/meminfo, before vs after) divided by the pairs built. The kernel
part is machine-wide, so other jobs' activity shows up in it: it is an estimate.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rawstack_harness.backends.linux.nodes import LinuxNetwork, build
from rawstack_harness.supervise import PeerProcess, start_peers
from rawstack_harness.topology import pair

from bench.context import Context
from bench.machine import meminfo
from bench.netns import missing_command
from bench.parse import parse_smaps_rollup
from bench.report import Row, Section
from bench.stats import Summary

TITLE = "Many pairs with peers alive"
GROUP = "Harness"
METRICS = ("memory per pair (peers PSS + kernel)",)
KERNEL_FIELDS = ("Slab", "Percpu", "KernelStack", "PageTables", "VmallocUsed")
GOAL_MB = 60.0
MIN_AVAILABLE = 0.15  # stop adding pairs below this share of MemTotal


def _meminfo() -> dict[str, int]:
    with open("/proc/meminfo", encoding="ascii") as fh:
        return meminfo(fh.read())


def _children(pid: int) -> list[int]:
    found = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as fh:
                found += [int(x) for x in fh.read().split()]
    return found


def process_memory_kib(pids: Sequence[int]) -> tuple[int, int]:
    """(PSS, RSS) in KiB of ``pids`` and all their descendants."""
    pss = rss = 0
    todo = list(pids)
    while todo:
        pid = todo.pop()
        todo += _children(pid)
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
                fields = parse_smaps_rollup(fh.read())
        except OSError:
            continue
        pss += fields.get("Pss", 0)
        rss += fields.get("Rss", 0)
    return pss, rss


def kernel_growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """KiB each kernel-side /proc/meminfo field grew by between two snapshots."""
    return {f: after.get(f, 0) - before.get(f, 0) for f in KERNEL_FIELDS}


def window_p50(samples: Sequence[float], k: int, width: int = 5) -> float:
    """Median of the setup times of pairs max(1, k-width+1)..k (1-based)."""
    return Summary.of(samples[max(0, k - width) : k]).p50


@dataclass
class ScaleRun:
    """What one scale run measured."""

    target: int
    why_no_peers: str | None
    build_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    stopped: str = ""
    pss_kib: int = 0
    rss_kib: int = 0
    alive: int = 0
    kernel: dict[str, int] = field(default_factory=dict)
    down_ms: float = 0.0

    @property
    def n(self) -> int:
        return len(self.build_ms)

    @property
    def kernel_kib(self) -> int:
        return sum(self.kernel.values())


def run(ctx: Context) -> Section:
    res = ScaleRun(ctx.opts.pairs, missing_command("serve-all"))
    budget = 60.0 if ctx.opts.quick else 420.0
    nets: list[LinuxNetwork] = []
    peers: list[PeerProcess] = []
    build(pair("warmup"), ctx.run).destroy()  # first-use imports stay out of pair #1
    before = _meminfo()
    stop_at = time.monotonic() + budget
    try:
        for k in range(1, res.target + 1):
            mem = _meminfo()
            if mem.get("MemAvailable", 0) < MIN_AVAILABLE * mem.get("MemTotal", 0):
                res.stopped = f"stopped at {k - 1}: available memory under {MIN_AVAILABLE:.0%}"
                break
            if time.monotonic() > stop_at:
                res.stopped = f"stopped at {k - 1}: the {budget:.0f} s budget ran out"
                break
            t0 = time.monotonic()
            net = build(pair(f"scale{k}"), ctx.run)
            nets.append(net)
            t1 = time.monotonic()
            if res.why_no_peers is None:
                a, b = net["a"], net["b"]
                peers += start_peers(
                    [(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")], log_dir=ctx.tmp
                )
            res.build_ms.append((t1 - t0) * 1000)
            res.total_ms.append((time.monotonic() - t0) * 1000)
            if k in ctx.opts.pair_checkpoints:
                ctx.log(f"{k} pairs up, the last took {res.total_ms[-1]:.0f} ms")
        after = _meminfo()
        res.kernel = kernel_growth(before, after)
        res.pss_kib, res.rss_kib = process_memory_kib(
            [p.proc.pid for p in peers if p.proc is not None]
        )
        res.alive = sum(1 for p in peers if p.alive())
    finally:
        t_down = time.monotonic()
        for net in reversed(nets):
            net.destroy()
        res.down_ms = (time.monotonic() - t_down) * 1000
    if res.n == 0:
        raise RuntimeError(res.stopped or "no pair was built")
    return Section(TITLE, GROUP, _rows(res, ctx.opts.pair_checkpoints), _notes(res))


def _rows(res: ScaleRun, checkpoints: Sequence[int]) -> list[Row]:
    goal = f"<= {GOAL_MB:.0f} MB"
    rows: list[Row] = []
    n = res.n
    per_pair_mb = (res.pss_kib + max(res.kernel_kib, 0)) / n / 1024
    if res.why_no_peers:
        rows.append(
            Row(
                METRICS[0],
                None,
                "",
                goal=goal,
                why_missing=f"no peers to measure: {res.why_no_peers}",
            )
        )
    else:
        rows.append(
            Row(
                METRICS[0],
                per_pair_mb,
                "MB",
                f"{n} pairs: peers PSS {res.pss_kib / n / 1024:.1f} MB "
                f"(RSS {res.rss_kib / n / 1024:.1f} MB) "
                f"+ kernel {res.kernel_kib / n / 1024:.1f} MB per pair",
                goal,
                passed=per_pair_mb <= GOAL_MB,
            )
        )
    what = "setup + peers ready" if not res.why_no_peers else "setup (no peers)"
    first = res.total_ms[0]
    for k in checkpoints:
        if k > n:
            rows.append(Row(f"{what}, pair #{k}", None, "", why_missing=f"only {n} pairs built"))
            continue
        value = window_p50(res.total_ms, k)
        rows.append(
            Row(
                f"{what}, pair #{k}",
                value,
                "ms",
                f"pair #1: {first:.0f} ms ({value / first:.2f}x); "
                f"namespaces alone {window_p50(res.build_ms, k):.0f} ms",
            )
        )
    return rows


def _notes(res: ScaleRun) -> list[str]:
    n = res.n
    peers = f"; {res.alive} peer processes alive when measured" if not res.why_no_peers else ""
    return [
        f"{n} of {res.target} pairs built"
        + (f" ({res.stopped})" if res.stopped else "")
        + peers
        + ".",
        "Kernel growth, KiB: "
        + ", ".join(f"{f} {v:+d}" for f, v in res.kernel.items())
        + f" (total {res.kernel_kib:+d}; machine-wide, other jobs included).",
        f"Teardown of all {n} pairs took {res.down_ms:.0f} ms ({res.down_ms / n:.1f} ms a pair).",
        "Setup time at pair #k is the median of pairs k-4..k (fewer at the start). No goal "
        "was set for how it grows; the ratio to pair #1 shows it.",
    ]
