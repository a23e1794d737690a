"""Spawn to all four peers ready on both sides of a pair (the harness's per-test cost).

Timed from just before ``rawstack_harness.supervise.start_peers`` spawns ``rawstack serve-all`` in
both nodes until it returns: every ready line printed AND every peer answered a real probe
from the other node. The pair itself is built once, outside the timing.
"""

from __future__ import annotations

import subprocess
import sys
import time

from rawstack_harness.clients import rawstack_argv
from rawstack_harness.supervise import ALL_PEERS, start_peers

from bench.context import Context
from bench.netns import harness_pair, missing_command, start_ready
from bench.report import Row, Section, not_measured
from bench.stats import Summary

TITLE = "Peers ready"
GROUP = "Harness"
METRICS = ("spawn to 4 peers ready on both sides, p50", "spawn to 4 peers ready, p99")
GOAL_MS = 300.0


def run(ctx: Context) -> Section:
    why = missing_command("serve-all")
    if why:
        return Section(
            TITLE,
            GROUP,
            [not_measured(METRICS[0], why, f"<= {GOAL_MS:.0f} ms"), not_measured(METRICS[1], why)],
        )
    n = min(ctx.opts.iterations, 10)
    stop_at = time.monotonic() + (20.0 if ctx.opts.quick else 90.0)
    samples: list[float] = []
    execed: list[float] = []
    lines: list[float] = []
    ctx.run.peer_host().wait_warm()  # its one start-up is not a spawn's
    with harness_pair(ctx.run, "ready") as net:
        a, b = net["a"], net["b"]
        for _ in range(n):
            for fork, into in ((True, samples), (False, execed)):  # alternate: same load
                t0 = time.monotonic()
                procs = start_peers(
                    [(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")], log_dir=ctx.tmp, fork=fork
                )
                into.append((time.monotonic() - t0) * 1000)
                if fork:
                    lines.append(max(p.ready_after for p in procs) * 1000)
                for p in procs:
                    p.stop()
            if time.monotonic() > stop_at:
                break
        # Where the time goes: one side alone until its ready lines, and a bare interpreter.
        lone: list[float] = []
        for _ in range(min(n, 5)):
            t0 = time.monotonic()
            start_ready(
                a,
                rawstack_argv("serve-all", "--iface", "eth0"),
                ALL_PEERS,
                ctx.path("ready-lone.log"),
            )
            lone.append((time.monotonic() - t0) * 1000)
            a.stop_processes()
    bare = []
    for _ in range(min(n, 5)):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "pass"], check=True, timeout=30)
        bare.append((time.monotonic() - t0) * 1000)
    s = Summary.of(samples)
    rows = [
        Row(
            METRICS[0],
            s.p50,
            "ms",
            f"min {s.min:.1f} ms; exec'ed peers p50 {Summary.of(execed).p50:.0f} ms "
            f"({Summary.of(execed).p50 / s.p50:.0f}x)",
            f"<= {GOAL_MS:.0f} ms",
            passed=s.p50 <= GOAL_MS,
        ),
        Row(METRICS[1], s.p99, "ms", f"max {s.max:.0f} ms"),
    ]
    notes = [
        f"{s.n} repetitions on one pair; each starts `rawstack serve-all --iface eth0` in both "
        "nodes at once and waits for 8 ready lines and 8 probes (HTTP GET, UDP echo, CHAO "
        "request, ICMP echo, each side probed from the other). serve-all is forked from the "
        "run's warm peer host; the exec'ed baseline (a fresh interpreter per node, "
        "`start_peers(..., fork=False)`) alternates with it.",
        f"Slowest side's own spawn-to-probed time: p50 {Summary.of(lines).p50:.0f} ms "
        "(the rest is the other side and the harness's bookkeeping).",
        f"Breakdown: one `rawstack serve-all` alone until its 4 ready lines (no probes) "
        f"p50 {Summary.of(lone).p50:.0f} ms; a bare `python -c pass` p50 "
        f"{Summary.of(bare).p50:.0f} ms (interpreter start-up, no imports).",
    ]
    return Section(TITLE, GROUP, rows, notes)
