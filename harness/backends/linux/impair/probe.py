"""Which impairment mechanisms this kernel has, found by trying each in a scratch namespace.

Theory of operation: module lists and config files say little (qdiscs load on demand, a
container may hide ``/proc/config.gz``), so :func:`probe` asks the kernel itself: in a helper
thread with a fresh network namespace (gone when the thread ends, nothing to clean up) it
creates a veth pair and adds a netem, a tbf and an htb qdisc, a clsact hook with the
impairment BPF program, and opens an ``AF_PACKET`` socket. The answer is cached for the
process. ``RAWSTACK_HARNESS_IMPAIR_WITHOUT=netem,clsact_bpf`` pretends features are missing,
so the fallbacks can be exercised on a kernel that has netem (CI does this).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Callable
from dataclasses import fields, replace

from rawstack_harness.backends.linux import nsutil, rtnl
from rawstack_harness.backends.linux.impair.plan import Features, Plan
from rawstack_harness.backends.linux.impair.tc import apply_in_netns
from rawstack_harness.topology.impair import Impairment

WITHOUT_ENV = "RAWSTACK_HARNESS_IMPAIR_WITHOUT"


def _try(fn: Callable[[], object]) -> bool:
    try:
        fn()
    except Exception:  # any refusal means "not here"; the reason does not matter
        return False
    return True


def _probe_here() -> Features:
    from pyroute2 import IPRoute

    nsutil.unshare_net()
    nl = rtnl.open_socket()
    try:
        batch = rtnl.Batch("probe namespace")
        for index, name, peer in ((10, "p0", "p1"), (12, "q0", "q1")):
            batch.veth(index, name, index + 1, peer)
        rtnl.collect([rtnl.send(nl, batch)])
    finally:
        nl.close()
    trials = {
        "netem": ("p0", Impairment(delay_us=1), Plan(netem=True)),
        "tbf": ("p1", Impairment(rate_bps=10**6), Plan(rate="tbf")),
        "htb": ("q0", Impairment(rate_bps=10**6), Plan(rate="htb")),
        "clsact_bpf": ("q1", Impairment(loss=0.5, duplicate=0.5), Plan(bpf=True)),
    }
    found: dict[str, bool] = {}
    with IPRoute() as ipr:
        for name, (ifname, imp, how) in trials.items():
            found[name] = _try(lambda: apply_in_netns(ipr, ifname, imp, how))  # noqa: B023

    def packet() -> None:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0).close()

    found["packet"] = _try(packet)
    return Features(**found)


@functools.cache
def _probed() -> Features:
    return nsutil.in_thread(_probe_here, "impair-probe")


def probe() -> Features:
    """This kernel's :class:`Features`, minus any named in ``RAWSTACK_HARNESS_IMPAIR_WITHOUT``."""
    feats = _probed()
    names = {f.name for f in fields(Features)}
    without = {w.strip() for w in os.environ.get(WITHOUT_ENV, "").split(",") if w.strip()}
    unknown = without - names
    if unknown:
        known = ", ".join(sorted(names))
        raise ValueError(f"{WITHOUT_ENV}: unknown feature(s) {sorted(unknown)} (known: {known})")
    return replace(feats, **{w: False for w in without})
