"""Many pairs alive at once: memory per pair and setup time per pair as the count grows.

Pairs are added one by one (harness backend, then ``rawstack serve-all`` on both sides,
forked from the run's warm peer host and waited for with real probes) until ``--pairs``
exist, the time budget runs out, or the machine's available memory falls under a guard
(then the report says where it stopped). Memory per pair = PSS of the peer host and all
its descendants (their share of pages, so shared libraries are not counted 200 times; the
host and its spares are counted too) + the kernel's growth (Slab, Percpu, KernelStack,
PageTables and VmallocUsed from /proc/meminfo, before vs after) divided by the pairs built.
The kernel part is machine-wide, so other jobs' activity shows up in it: it is an
estimate. Memory is also sampled as pairs are added (the plot of pairs alive against
memory per pair). Each forked peer process's private memory (``Private_Dirty``: what it
wrote since its fork) is read too, by kind of mapping, next to the host's idle spares'.

Once those pairs are torn down (and the kernel's memory has settled), a second run builds
as many pairs again with shared peers (``start_peers(..., shared=True)``, what
``--netns-peer-start=shared`` does): every node's serve-all is a tenant of one process per
run, forked by the peer host on first use. That process is the host's child, so the same
count (PSS of the host and its descendants + kernel growth) covers it. Last, a few pairs
with exec'ed peers (a fresh interpreter per node, as before the peer host) give the
same-run baseline.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from rawstack_harness.backends.linux.nodes import LinuxNetwork, build
from rawstack_harness.errors import HarnessError
from rawstack_harness.supervise import PeerProcess, start_peers
from rawstack_harness.topology import pair

from bench.context import Context
from bench.machine import meminfo
from bench.netns import missing_command
from bench.parse import MAPPING_KINDS, parse_smaps_rollup, private_dirty_by_mapping
from bench.plots import Plot, Series
from bench.report import Row, Section, not_measured
from bench.stats import Summary

TITLE = "Many pairs with peers alive"
GROUP = "Harness"
METRICS = (
    "memory per pair (peers PSS + kernel)",
    "memory per pair, shared peers (one process per run)",
    "setup + peers ready per pair, shared peers, p50",
    "private memory per forked peer process (written since its fork), p50",
)
KERNEL_FIELDS = ("Slab", "Percpu", "KernelStack", "PageTables", "VmallocUsed")
GOAL_MB = 5.0  # issue 14
EXEC_PAIRS = 10  # pairs with exec'ed peers for the baseline (quick: 2)
SAMPLES = 10  # memory samples while pairs are added
MIN_AVAILABLE = 0.15  # stop adding pairs below this share of MemTotal
SHARED_BUDGET = 120.0  # seconds for the shared run (quick: 30), so it adds ~2 min at most
SETTLE_STEP = 0.5  # seconds between kernel memory samples while waiting for it to settle
SETTLE_KIB = 512  # "settled": the kernel fields moved less than this in one step
SETTLE_MAX = 15.0  # give up waiting after this long (the notes say so)


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
    """(PSS, RSS) in KiB of ``pids`` and all their descendants, each process once."""
    pss = rss = 0
    todo = list(pids)
    seen: set[int] = set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo += _children(pid)
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
                fields = parse_smaps_rollup(fh.read())
        except OSError:
            continue
        pss += fields.get("Pss", 0)
        rss += fields.get("Rss", 0)
    return pss, rss


def private_kib(pid: int) -> dict[str, int] | None:
    """Private_Dirty KiB of one process by kind of mapping (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps", encoding="ascii", errors="replace") as fh:
            return private_dirty_by_mapping(fh.read())
    except OSError:
        return None


def kernel_growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """KiB each kernel-side /proc/meminfo field grew by between two snapshots."""
    return {f: after.get(f, 0) - before.get(f, 0) for f in KERNEL_FIELDS}


def window_p50(samples: Sequence[float], k: int, width: int = 5) -> float:
    """Median of the setup times of pairs max(1, k-width+1)..k (1-based)."""
    return Summary.of(samples[max(0, k - width) : k]).p50


@dataclass
class PairsRun:
    """What one run of pairs (one way of starting peers) measured."""

    label: str
    build_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    stopped: str = ""
    pss_kib: int = 0
    rss_kib: int = 0
    alive: int = 0
    kernel: dict[str, int] = field(default_factory=dict)
    down_ms: float = 0.0
    memory: list[tuple[int, float]] = field(default_factory=list)  # (pairs, MB per pair)
    settle_s: float = 0.0  # waited for the kernel's memory to settle before starting
    settled: bool = True
    # Private_Dirty by kind of mapping: each forked peer, each idle spare, the host.
    peer_private: list[dict[str, int]] = field(default_factory=list)
    spare_private: list[dict[str, int]] = field(default_factory=list)
    host_private: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.build_ms)

    @property
    def kernel_kib(self) -> int:
        return sum(self.kernel.values())

    @property
    def per_pair_mb(self) -> float:
        return (self.pss_kib + max(self.kernel_kib, 0)) / self.n / 1024


@dataclass
class ScaleRun:
    """What the scale benchmark measured: forked pairs, shared pairs, exec'ed baseline."""

    target: int
    why_no_peers: str | None
    forked: PairsRun = field(default_factory=lambda: PairsRun("forked"))
    shared: PairsRun | None = None
    why_no_shared: str = ""
    exec_mb: float | None = None  # per pair, exec'ed peers
    exec_pairs: int = 0


def _pids(peers: Sequence[PeerProcess], host_pid: int | None) -> list[int]:
    """The processes to measure: the peer host (and so what it forked), exec'ed peers."""
    pids = [p.proc.pid for p in peers if p.proc is not None and not p.fork]
    return [host_pid, *pids] if host_pid is not None else pids


def _per_pair_mb(pids: Sequence[int], before: dict[str, int], pairs: int) -> float:
    pss, _ = process_memory_kib(pids)
    kernel = sum(kernel_growth(before, _meminfo()).values())
    return (pss + max(kernel, 0)) / pairs / 1024


def _kernel_kib() -> int:
    mem = _meminfo()
    return sum(mem.get(f, 0) for f in KERNEL_FIELDS)


def _settle() -> tuple[float, bool]:
    """Wait until the kernel has freed what the last teardown released; (seconds, settled).

    Namespaces are cleaned up by a kernel worker after they are removed: memory still being
    freed while the next run adds pairs would be subtracted from that run's growth and make
    it look cheaper than it is.
    """
    t0 = time.monotonic()
    last = _kernel_kib()
    while time.monotonic() - t0 < SETTLE_MAX:
        time.sleep(SETTLE_STEP)
        now = _kernel_kib()
        if abs(now - last) < SETTLE_KIB:
            return time.monotonic() - t0, True
        last = now
    return time.monotonic() - t0, False


def _add_pairs(
    ctx: Context,
    res: PairsRun,
    target: int,
    budget: float,
    host_pid: int | None,
    *,
    shared: bool = False,
) -> None:
    """Add pairs one by one up to ``target`` (or a guard), measure them, tear them down."""
    nets: list[LinuxNetwork] = []
    peers: list[PeerProcess] = []
    with_peers = host_pid is not None
    before = _meminfo()
    stop_at = time.monotonic() + budget
    every = max(1, target // SAMPLES)
    tag = "scale-shared" if shared else "scale"
    try:
        for k in range(1, target + 1):
            mem = _meminfo()
            if mem.get("MemAvailable", 0) < MIN_AVAILABLE * mem.get("MemTotal", 0):
                res.stopped = f"stopped at {k - 1}: available memory under {MIN_AVAILABLE:.0%}"
                break
            if time.monotonic() > stop_at:
                res.stopped = f"stopped at {k - 1}: the {budget:.0f} s budget ran out"
                break
            t0 = time.monotonic()
            net = build(pair(f"{tag}{k}"), ctx.run)
            nets.append(net)
            t1 = time.monotonic()
            if with_peers:
                a, b = net["a"], net["b"]
                peers += start_peers(
                    [(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")],
                    log_dir=ctx.tmp,
                    shared=shared,
                )
            res.build_ms.append((t1 - t0) * 1000)
            res.total_ms.append((time.monotonic() - t0) * 1000)
            if k in ctx.opts.pair_checkpoints:
                ctx.log(f"{k} {res.label} pairs up, the last took {res.total_ms[-1]:.0f} ms")
            if with_peers and (k % every == 0 or k == 1):
                res.memory.append((k, _per_pair_mb(_pids(peers, host_pid), before, k)))
        after = _meminfo()
        res.kernel = kernel_growth(before, after)
        res.pss_kib, res.rss_kib = process_memory_kib(_pids(peers, host_pid))
        res.alive = sum(1 for p in peers if p.alive())
        if with_peers and not shared:
            assert host_pid is not None
            _private(res, peers, host_pid)
    finally:
        t_down = time.monotonic()
        for net in reversed(nets):
            net.destroy()
        res.down_ms = (time.monotonic() - t_down) * 1000


def _private(res: PairsRun, peers: Sequence[PeerProcess], host_pid: int) -> None:
    """Read the forked peers', the spares' and the host's private memory (after the PSS)."""
    mine = {p.proc.pid for p in peers if p.fork and p.proc is not None}
    for pid in mine:
        if (found := private_kib(pid)) is not None:
            res.peer_private.append(found)
    for pid in set(_children(host_pid)) - mine:  # what else the host has forked: spares
        if (found := private_kib(pid)) is not None:
            res.spare_private.append(found)
    res.host_private = private_kib(host_pid) or {}


def private_summary(found: Sequence[dict[str, int]]) -> tuple[float, dict[str, float]]:
    """(p50 of the total, p50 of each kind) in KiB over processes' Private_Dirty."""
    total = Summary.of([sum(f.values()) for f in found]).p50
    return total, {k: Summary.of([f.get(k, 0) for f in found]).p50 for k in MAPPING_KINDS}


def run(ctx: Context) -> Section:
    res = ScaleRun(ctx.opts.pairs, missing_command("serve-all"))
    budget = 60.0 if ctx.opts.quick else 420.0
    build(pair("warmup"), ctx.run).destroy()  # first-use imports stay out of pair #1
    host_pid = None
    if res.why_no_peers is None:
        host = ctx.run.peer_host()
        host.wait_warm()  # the host's start-up stays out of pair #1 too
        host_pid = host.pid
    _add_pairs(ctx, res.forked, res.target, budget, host_pid)
    if res.forked.n == 0:
        raise RuntimeError(res.forked.stopped or "no pair was built")
    if res.why_no_peers is None:
        assert host_pid is not None
        _shared_run(ctx, res, host_pid)
        _exec_baseline(ctx, res)
    section = Section(TITLE, GROUP, _rows(res, ctx.opts.pair_checkpoints), _notes(res))
    section.plots = _plots(res)
    return section


def _shared_run(ctx: Context, res: ScaleRun, host_pid: int) -> None:
    """As many pairs as the forked run built, now with shared peers, counted the same way."""
    shared = PairsRun("shared")
    shared.settle_s, shared.settled = _settle()
    budget = 30.0 if ctx.opts.quick else SHARED_BUDGET
    try:
        _add_pairs(ctx, shared, res.forked.n, budget, host_pid, shared=True)
    except (HarnessError, OSError) as exc:
        # One mode failing should not hide the other's figures: the row says why instead.
        res.why_no_shared = f"shared run failed at pair {shared.n + 1}: {exc}"
        return
    if shared.n == 0:
        res.why_no_shared = shared.stopped or "no shared pair was built"
        return
    res.shared = shared


def _exec_baseline(ctx: Context, res: ScaleRun) -> None:
    """Memory per pair with exec'ed peers, a few pairs, in this run."""
    n = 2 if ctx.opts.quick else EXEC_PAIRS
    nets: list[LinuxNetwork] = []
    peers: list[PeerProcess] = []
    _settle()  # the shared run's teardown too stays out of this baseline
    before = _meminfo()
    try:
        for k in range(n):
            net = build(pair(f"scale-exec{k}"), ctx.run)
            nets.append(net)
            a, b = net["a"], net["b"]
            peers += start_peers(
                [(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")], log_dir=ctx.tmp, fork=False
            )
        res.exec_mb = _per_pair_mb(_pids(peers, None), before, n)
        res.exec_pairs = n
    finally:
        for net in reversed(nets):
            net.destroy()


def _plots(res: ScaleRun) -> list[Plot]:
    plots = []
    runs = [("forked peers (peer host)", res.forked)]
    if res.shared is not None:
        runs.append(("shared peers (one process per run)", res.shared))
    memory = tuple(
        Series(label, tuple(k for k, _ in r.memory), tuple(mb for _, mb in r.memory))
        for label, r in runs
        if r.memory
    )
    if memory:
        plots.append(
            Plot(
                "pairs-memory",
                "Memory per pair (peers PSS + kernel) as pairs are added",
                "pairs alive",
                "MB per pair",
                memory,
                goal=GOAL_MB,
                goal_label=f"goal ({GOAL_MB:.0f} MB)",
            )
        )
    forked = res.forked
    ks = tuple(range(1, forked.n + 1))
    what = "setup + peers ready" if not res.why_no_peers else "setup"
    forked_label = what + (", forked peers" if res.shared is not None else "")
    setup = [
        Series(forked_label, ks, tuple(forked.total_ms)),
        Series("namespaces and veth alone", ks, tuple(forked.build_ms)),
    ]
    if res.shared is not None:
        shared_ks = tuple(range(1, res.shared.n + 1))
        setup.append(Series(f"{what}, shared peers", shared_ks, tuple(res.shared.total_ms)))
    plots.append(
        Plot(
            "pairs-setup",
            f"Time to add pair #k ({what}) with k-1 pairs alive",
            "pair #k",
            "ms",
            tuple(setup),
        )
    )
    return plots


def _memory_detail(r: PairsRun) -> str:
    n = r.n
    return (
        f"{n} pairs: peers PSS {r.pss_kib / n / 1024:.1f} MB "
        f"(RSS {r.rss_kib / n / 1024:.1f} MB) "
        f"+ kernel {r.kernel_kib / n / 1024:.1f} MB per pair"
    )


def _rows(res: ScaleRun, checkpoints: Sequence[int]) -> list[Row]:
    goal = f"<= {GOAL_MB:.0f} MB"
    rows: list[Row] = []
    forked = res.forked
    n = forked.n
    if res.why_no_peers:
        why = f"no peers to measure: {res.why_no_peers}"
        rows.append(not_measured(METRICS[0], why, goal))
        rows.append(not_measured(METRICS[1], why, goal))
    else:
        per_pair_mb = forked.per_pair_mb
        rows.append(
            Row(
                METRICS[0],
                per_pair_mb,
                "MB",
                _memory_detail(forked)
                + (
                    f"; exec'ed peers ({res.exec_pairs} pairs): {res.exec_mb:.1f} MB per pair"
                    if res.exec_mb is not None
                    else ""
                ),
                goal,
                passed=per_pair_mb <= GOAL_MB,
            )
        )
        rows += _shared_rows(res, goal)
        rows.append(_private_row(forked))
    what = "setup + peers ready" if not res.why_no_peers else "setup (no peers)"
    first = forked.total_ms[0]
    for k in checkpoints:
        if k > n:
            rows.append(Row(f"{what}, pair #{k}", None, "", why_missing=f"only {n} pairs built"))
            continue
        value = window_p50(forked.total_ms, k)
        rows.append(
            Row(
                f"{what}, pair #{k}",
                value,
                "ms",
                f"pair #1: {first:.0f} ms ({value / first:.2f}x); "
                f"namespaces alone {window_p50(forked.build_ms, k):.0f} ms",
            )
        )
    return rows


def _private_row(r: PairsRun) -> Row:
    if not r.peer_private:
        return not_measured(METRICS[3], "no forked peer process was left to read")
    total, kinds = private_summary(r.peer_private)
    base = "p50 KiB by mapping: " + ", ".join(f"{k} {v:.0f}" for k, v in kinds.items())
    base += f" ({len(r.peer_private)} processes)"
    if r.spare_private:
        spare, _ = private_summary(r.spare_private)
        base += f"; the host's idle spares {spare / 1024:.1f} MB p50 ({len(r.spare_private)})"
    if r.host_private:
        base += f"; the host itself {sum(r.host_private.values()) / 1024:.1f} MB"
    return Row(METRICS[3], total / 1024, "MB", base)


def _shared_rows(res: ScaleRun, goal: str) -> list[Row]:
    shared = res.shared
    if shared is None:
        why = res.why_no_shared or "not run"
        return [not_measured(METRICS[1], why, goal), not_measured(METRICS[2], why)]
    forked = res.forked
    per_pair_mb = shared.per_pair_mb
    ratio = f" ({per_pair_mb / forked.per_pair_mb:.2f}x)" if forked.per_pair_mb > 0 else ""
    setup = Summary.of(shared.total_ms).p50
    forked_setup = Summary.of(forked.total_ms).p50
    return [
        Row(
            METRICS[1],
            per_pair_mb,
            "MB",
            f"{_memory_detail(shared)}; forked peers {forked.per_pair_mb:.1f} MB{ratio}",
            goal,
            passed=per_pair_mb <= GOAL_MB,
        ),
        Row(
            METRICS[2],
            setup,
            "ms",
            f"{shared.n} pairs; forked peers {forked_setup:.1f} ms p50 over {forked.n} pairs; "
            f"namespaces alone {Summary.of(shared.build_ms).p50:.0f} ms",
        ),
    ]


def _notes(res: ScaleRun) -> list[str]:
    forked = res.forked
    n = forked.n
    with_peers = not res.why_no_peers
    peers = f"; {forked.alive} peer processes alive when measured" if with_peers else ""
    notes = [
        f"{n} of {res.target} pairs built"
        + (f" ({forked.stopped})" if forked.stopped else "")
        + peers
        + ".",
        "Kernel growth, KiB: " + _kernel_text(forked) + " (machine-wide, other jobs included).",
        f"Teardown of all {n} pairs took {forked.down_ms:.0f} ms ({forked.down_ms / n:.1f} ms "
        "a pair).",
    ]
    shared = res.shared
    if shared is not None:
        settle = (
            f"after waiting {shared.settle_s:.1f} s for the kernel's memory to settle"
            if shared.settled
            else f"the kernel's memory was still moving after {shared.settle_s:.0f} s "
            "(its growth is less certain)"
        )
        notes += [
            f"Shared peers: a second run once the forked pairs were torn down ({settle}); "
            f"{shared.n} of {n} pairs built"
            + (f" ({shared.stopped})" if shared.stopped else "")
            + f"; {shared.alive} tenants alive in one shared process when measured. Memory is "
            "counted as for the forked run: PSS of the peer host and all its descendants (the "
            "shared process, forked by the host on first use, and the host's spares "
            "included) + kernel growth during this run, divided by its pairs.",
            "Shared run's kernel growth, KiB: "
            + _kernel_text(shared)
            + f". Its teardown took {shared.down_ms:.0f} ms "
            f"({shared.down_ms / shared.n:.1f} ms a pair).",
        ]
    if res.exec_mb is not None:
        notes.append(
            f"The exec'ed baseline ({res.exec_pairs} pairs) runs last, after the shared run: "
            "a fresh interpreter per node, PSS of those processes + kernel growth."
        )
    if forked.peer_private:
        notes.append(
            "Private memory: `Private_Dirty` from /proc/PID/smaps of each forked serve-all, "
            "read once the PSS above was taken: the pages it has written since the host "
            "forked it (its copies of the host's pages and its own allocations), which no "
            "other process shares. A spare is forked from the same host and waits for an "
            "assignment with the pages a rehearsal writes already copied (prefault.py), "
            "having run nothing else."
        )
    notes.append(
        "Setup time at pair #k is the median of pairs k-4..k (fewer at the start), forked "
        "peers. No goal was set for how it grows; the ratio to pair #1 shows it."
    )
    return notes


def _kernel_text(r: PairsRun) -> str:
    return ", ".join(f"{f} {v:+d}" for f, v in r.kernel.items()) + f"; total {r.kernel_kib:+d}"
