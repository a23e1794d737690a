"""One client exchange driven from a test: ``run_client`` forked by the peer host vs exec'ed.

What a test pays each time it drives a client across the link: ``run_client(protocol, a,
b)`` from just before the call until it returns the checked RTT (the client's whole
process, its one request and reply, and the JSON check). Forked (the default on Linux: the
run's warm peer host forks ``rawstack ...`` into node a) alternates, round by round, with
exec'ed (``python -m rawstack ...``, as ``--netns-peer-start=exec`` and FreeBSD do), on one
pair whose serve-all answers in node b. No goal was set for this in the issue.
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
METRICS = tuple(f"{p} exchange, forked client, p50" for p in PROTOCOLS)


def run(ctx: Context) -> Section:
    why = missing_command("serve-all")
    if why:
        return Section(TITLE, GROUP, [not_measured(m, why) for m in METRICS])
    rounds = 2 if ctx.opts.quick else 10
    per_round = 2 if ctx.opts.quick else 5
    times: dict[tuple[str, bool], list[float]] = {}
    ctx.run.peer_host().wait_warm()  # its one start-up is not an exchange's
    with harness_pair(ctx.run, "clients") as net:
        a, b = net["a"], net["b"]
        peers = start_peers([(b, "eth0", a, "eth0")], log_dir=ctx.tmp)
        try:
            ready = peers[0].ready
            for _ in range(rounds):
                for fork in (True, False):  # alternate: both see the same load
                    ctx.run.fork = fork
                    for protocol in PROTOCOLS:
                        into = times.setdefault((protocol, fork), [])
                        for _ in range(per_round):
                            t0 = time.monotonic()
                            run_client(protocol, a, b, ready=ready)
                            into.append((time.monotonic() - t0) * 1000)
        finally:
            ctx.run.fork = True
            for p in peers:
                p.stop()
    rows = []
    for metric, protocol in zip(METRICS, PROTOCOLS):
        forked, execed = Summary.of(times[protocol, True]), Summary.of(times[protocol, False])
        base = (
            f"exec'ed: {execed.p50:.1f} ms ({execed.p50 / forked.p50:.0f}x); "
            f"p99 forked {forked.p99:.1f} ms, exec'ed {execed.p99:.1f} ms"
        )
        rows.append(Row(metric, forked.p50, "ms", base))
    notes = [
        f"`rawstack_harness.clients.run_client(protocol, a, b, ready=...)` from node a against "
        f"serve-all in node b, {rounds} rounds of {per_round} exchanges per protocol, forked "
        "then exec'ed in each round; each figure is the call's wall time (client process, "
        "request, reply, JSON check).",
        "Forked: a spare of the run's warm peer host enters node a and runs the same command "
        "line in-process; the status comes over its socket before it exits (and, for CHAO, "
        "before its exit closes the packet socket, whose release waits for an RCU grace "
        "period). Exec'ed: a fresh `python -m rawstack` in node a, waited for to its exit.",
    ]
    return Section(TITLE, GROUP, rows, notes)
