"""Traffic-control pieces of an impairment on one interface: netem, tbf/htb, clsact + BPF.

Theory of operation: everything here acts on the *egress* of one interface inside one node,
through a pyroute2 ``IPRoute`` opened in a helper thread that joined the node's namespace
(:func:`rawstack_harness.backends.nsutil.in_netns`). :func:`apply` first removes what an earlier
call put there (the root qdisc and the clsact hook, both ours: the harness owns the node),
so applying is also changing, and applying an empty plan is clearing. The kwargs given to
pyroute2 are pure functions (:func:`netem_options`, :func:`tbf_options`), unit-tested.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from rawstack_harness.backends.linux import nsutil
from rawstack_harness.backends.linux.impair import ebpf
from rawstack_harness.backends.linux.impair.plan import Plan
from rawstack_harness.topology.impair import Impairment

TC_H_CLSACT_EGRESS = "ffff:fff3"
NETEM_LIMIT = 10000  # packets; netem's 1000 default tail-drops a fast flow at 20 ms
TBF_LATENCY = "100ms"  # how long a frame may wait for tokens before tbf drops it


def netem_options(imp: Impairment) -> dict[str, Any]:
    """pyroute2's ``tc("add", "netem", ...)`` arguments for one direction."""
    opts: dict[str, Any] = {"delay": imp.delay_us, "jitter": imp.jitter_us, "limit": NETEM_LIMIT}
    if imp.loss:
        opts["loss"] = imp.loss * 100
    if imp.duplicate:
        opts["duplicate"] = imp.duplicate * 100
    if imp.reorder:
        opts["prob_reorder"] = imp.reorder * 100
    if imp.rate_bps:
        opts["rate"] = f"{imp.rate_bps}bit"
    return opts


def tbf_options(imp: Impairment) -> dict[str, Any]:
    """``tc("add", "tbf", ...)`` arguments: ``rate``, a burst of 4 ms or 3 full frames."""
    burst = max(imp.rate_bps // 8 // 250, 3 * 1514)
    return {"rate": f"{imp.rate_bps}bit", "burst": burst, "latency": TBF_LATENCY}


def _ifindex(ipr: Any, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LookupError(f"no interface {ifname!r}")
    return int(found[0])


def _clear(ipr: Any, index: int) -> None:
    # ENOENT/EINVAL when nothing of ours is there: the interface's default qdisc stays.
    for kind in ("root", "clsact"):
        with contextlib.suppress(Exception):
            if kind == "root":
                ipr.tc("del", index=index, root=True)
            else:
                ipr.tc("del", "clsact", index=index)


def apply_in_netns(ipr: Any, ifname: str, imp: Impairment, how: Plan) -> None:
    """Put ``how`` for ``imp`` on ``ifname``'s egress (``ipr`` is inside the node)."""
    index = _ifindex(ipr, ifname)
    _clear(ipr, index)
    if how.netem:
        ipr.tc("add", "netem", index=index, handle="1:", **netem_options(imp))
        return
    if how.rate == "tbf":
        ipr.tc("add", "tbf", index=index, handle="1:", **tbf_options(imp))
    elif how.rate == "htb":
        rate = f"{imp.rate_bps}bit"
        ipr.tc("add", "htb", index=index, handle="1:", default=0x10)
        ipr.tc("add-class", "htb", index=index, handle="1:10", parent="1:", rate=rate, ceil=rate)
    if how.bpf:
        fd = ebpf.load(ebpf.impair_program(imp.loss, imp.duplicate))
        try:
            ipr.tc("add", "clsact", index=index)
            ipr.tc(
                "add-filter",
                "bpf",
                index=index,
                handle=":1",
                fd=fd,
                name="rsh_impair",
                parent=TC_H_CLSACT_EGRESS,
                classid=1,
                direct_action=True,
            )
        finally:
            os.close(fd)  # the filter holds the program now


def apply(nsfd: int, ifname: str, imp: Impairment, how: Plan) -> None:
    """:func:`apply_in_netns` from a helper thread inside namespace ``nsfd``."""

    def inside() -> None:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            apply_in_netns(ipr, ifname, imp, how)

    nsutil.in_netns(nsfd, inside)
