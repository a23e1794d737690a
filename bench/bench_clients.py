"""One client exchange driven from a test: ``run_client`` forked by the peer host vs exec'ed.

What a test pays each time it drives a client across the link: ``run_client(protocol, a,
b)`` from just before the call until it returns the checked RTT (the client's whole
process, its one request and reply, and the JSON check). Forked (the default on Linux: the
run's warm peer host forks ``rawstack ...`` into the node) alternates, round by round, with
exec'ed (``python -m rawstack ...``, as ``--netns-peer-start=exec`` and FreeBSD do), on one
pair with serve-all in both nodes. No goal was set for this in the issue.
"""

from __future__ import annotations

import time

from rawstack_harness.clients import PROTOCOLS, run_client
from rawstack_harness.supervise import start_peers

from bench.context import Context
from bench.netns import harness_pair, missing_command
from bench.report import Row, Section, not_measured
from bench.stats import Summary

TITLE = "Client exchanges"
GROUP = "Harness"
METRICS = (
    *(f"{p} exchange, forked client, p50" for p in PROTOCOLS),
    "all four clients both ways (8 exchanges), forked, p50",
)


def run(ctx: Context) -> Section:
    why = missing_command("serve-all")
    if why:
        return Section(TITLE, GROUP, [not_measured(m, why) for m in METRICS])
    rounds = 3 if ctx.opts.quick else 15
    times: dict[tuple[str, bool], list[float]] = {}
    ctx.run.peer_host().wait_warm()  # its one start-up is not an exchange's
    with harness_pair(ctx.run, "clients") as net:
        a, b = net["a"], net["b"]
        peers = start_peers([(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")], log_dir=ctx.tmp)
        ready = {"a": peers[0].ready, "b": peers[1].ready}
        try:
            for _ in range(rounds):
                for fork in (True, False):  # alternate: both see the same load
                    ctx.run.fork = fork
                    t_all = time.monotonic()
                    for src, dst in ((a, b), (b, a)):
                        for protocol in PROTOCOLS:
                            t0 = time.monotonic()
                            run_client(protocol, src, dst, ready=ready[dst.name])
                            ms = (time.monotonic() - t0) * 1000
                            times.setdefault((protocol, fork), []).append(ms)
                    times.setdefault(("all", fork), []).append((time.monotonic() - t_all) * 1000)
        finally:
            ctx.run.fork = True
            for p in peers:
                p.stop()
    rows = []
    for metric, key in zip(METRICS, (*PROTOCOLS, "all")):
        forked, execed = Summary.of(times[key, True]), Summary.of(times[key, False])
        base = (
            f"exec'ed: {execed.p50:.1f} ms ({execed.p50 / forked.p50:.0f}x); "
            f"p99 forked {forked.p99:.1f} ms, exec'ed {execed.p99:.1f} ms"
        )
        rows.append(Row(metric, forked.p50, "ms", base))
    notes = [
        "`rawstack_harness.clients.run_client(protocol, src, dst, ready=...)` on one pair with "
        f"serve-all in both nodes: {rounds} rounds, each the four protocols a->b then b->a "
        "forked, then the same exec'ed; a figure is the call's wall time (client process, "
        "request, reply, JSON check), the last row the eight calls together, as a test that "
        "drives every client both ways makes them.",
        "Forked: a spare of the run's warm peer host enters the node and runs the same command "
        "line in-process; the status comes over its socket before it exits (and, for CHAO, "
        "before its exit closes the packet socket, whose release waits for an RCU grace "
        "period). Exec'ed: a fresh `python -m rawstack` in the node, waited for to its exit.",
    ]
    return Section(TITLE, GROUP, rows, notes)
