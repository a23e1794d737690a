"""Pair setup + teardown: harness backend vs an ``ip`` script vs plain pyroute2 vs the floor.

The four methods run round-robin (one of each per iteration) so load from other jobs on the
machine hits them alike. A "pair" is rawstack_harness.topology.pair(): two namespaces, one veth,
IPv4 + IPv6 addresses, links and loopback up. The floor is two ``unshare -n true`` (one per
namespace): what the kernel and one fork+exec cost before any configuration.
"""

from __future__ import annotations

import time

from rawstack_harness.backends.linux.nodes import build
from rawstack_harness.topology import pair

from bench.context import Context
from bench.netns import IP_SETUP, ip_script_pair, pyroute2_pair, unshare_floor
from bench.report import Row, Section
from bench.stats import Summary

TITLE = "Pair setup + teardown"
GROUP = "Harness"
METRICS = (
    "harness backend: setup + teardown, p50",
    "harness backend / kernel floor",
    "ip script: setup + teardown, p50",
    "plain pyroute2: setup + teardown, p50",
)


def _harness_pair(ctx: Context) -> tuple[float, float]:
    t0 = time.perf_counter()
    net = build(pair("setup"), ctx.run)
    t1 = time.perf_counter()
    net.destroy()
    return t1 - t0, time.perf_counter() - t1


def run(ctx: Context) -> Section:
    n = ctx.opts.iterations
    budget = 30.0 if ctx.opts.quick else 180.0
    samples: dict[str, list[tuple[float, float]]] = {"harness": [], "ip": [], "pyroute2": []}
    floor: list[float] = []
    # One untimed round first: imports and first-use caches stay out of the samples.
    _harness_pair(ctx), ip_script_pair(ctx.run), pyroute2_pair(ctx.run), unshare_floor()
    stop_at = time.monotonic() + budget
    for _ in range(n):
        if time.monotonic() > stop_at:
            break
        samples["harness"].append(_harness_pair(ctx))
        samples["ip"].append(ip_script_pair(ctx.run))
        samples["pyroute2"].append(pyroute2_pair(ctx.run))
        floor += [unshare_floor(), unshare_floor()]
    total = {k: Summary.of([(s + t) * 1000 for s, t in v]) for k, v in samples.items()}
    setup = {k: Summary.of([s * 1000 for s, _ in v]) for k, v in samples.items()}
    one_ns = Summary.of([x * 1000 for x in floor])
    floor_pair = 2 * one_ns.p50
    h, ip, pr = total["harness"], total["ip"], total["pyroute2"]
    speedup = ip.p50 / h.p50
    over_floor = h.p50 / floor_pair
    rows = [
        Row(
            METRICS[0],
            h.p50,
            "ms",
            baseline=f"ip script {ip.p50:.1f} ms: harness is {speedup:.1f}x faster",
            goal=">= 5x faster than the ip script",
            passed=speedup >= 5,
        ),
        Row(
            METRICS[1],
            over_floor,
            "x",
            baseline=f"floor 2 x `unshare -n true` = {floor_pair:.1f} ms",
            goal="<= 3x the floor",
            passed=over_floor <= 3,
        ),
        Row(METRICS[2], ip.p50, "ms", baseline=f"p99 {ip.p99:.1f} ms"),
        Row(
            METRICS[3],
            pr.p50,
            "ms",
            baseline=f"harness {h.p50:.1f} ms: harness is {pr.p50 / h.p50:.1f}x faster",
        ),
    ]
    notes = [
        f"{h.n} iterations of each method, round-robin; p99 harness {h.p99:.1f} ms, "
        f"ip {ip.p99:.1f} ms, pyroute2 {pr.p99:.1f} ms, one `unshare -n true` "
        f"p50 {one_ns.p50:.2f} ms / p99 {one_ns.p99:.2f} ms.",
        "Setup alone (p50): "
        + ", ".join(f"{k} {v.p50:.1f} ms" for k, v in setup.items())
        + "; the rest of each figure is teardown.",
        "The floor includes fork+exec of `unshare` and `true`, which the in-process harness "
        "does not pay, so a figure under 1x is possible.",
        "The harness backend is `rawstack_harness.backends.linux.nodes.build(pair())` + "
        "`LinuxNetwork.destroy()` inside one already-open harness run (a run is opened once per "
        "pytest session).",
        "The ip script is one `sh -c` per setup and one per teardown (`ip netns del` x2): "
        + "; ".join(line for line in IP_SETUP.splitlines()[1:] if line)
        .replace("{", "")
        .replace("}", ""),
        "Plain pyroute2: `netns.create` x2, `IPRoute(netns=...)`, veth with the peer's "
        "`net_ns_fd`, addresses, links up; `netns.remove` x2.",
    ]
    return Section(TITLE, GROUP, rows, notes)
