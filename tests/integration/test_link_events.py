"""Impairment from the spec and link events at run time, through the network's own API."""

from __future__ import annotations

import re
import statistics
from typing import Any

import pytest
from _loopback import rootless

pytestmark = pytest.mark.netns


def two(impair: dict[str, Any] | None = None) -> dict[str, Any]:
    link: dict[str, Any] = {
        "a": {"node": "a", "addresses": ["10.0.0.1/24"]},
        "b": {"node": "b", "addresses": ["10.0.0.2/24"]},
    }
    if impair is not None:
        link["impair"] = impair
    return {"name": "ev", "nodes": [{"name": "a"}, {"name": "b"}], "links": [link]}


def rtt_p50(net: Any, count: int = 10) -> float:
    out = (
        net["a"]
        .run(
            ["ping", "-n", "-c", str(count), "-i", "0.02", "-W", "2", "10.0.0.2"],
            capture_output=True,
            text=True,
        )
        .stdout
    )
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]
    assert times, out
    return statistics.median(times)


def reachable(net: Any, wait: str = "1") -> bool:
    argv = ["ping", "-c", "2", "-i", "0.05", "-W", wait, "10.0.0.2"]
    return bool(net["a"].run(argv, capture_output=True).returncode == 0)


def unreachable(net: Any) -> bool:
    # Where silence is expected its whole wait is spent; a reply takes well under a ms.
    return not reachable(net, wait="0.3")


def test_spec_delay_then_changed_and_cleared_at_run_time(netns_topology: Any) -> None:
    net = netns_topology(two({"delay": "10ms"}))
    (line,) = net.mechanisms()
    assert "a->b delay 10ms by" in line
    assert rtt_p50(net) >= 19
    assert "delay 25ms" in net.impair("a", "b", {"delay": "25ms"})
    assert rtt_p50(net) >= 49
    net.impair("b", "a", None)  # either order names the link; None clears
    assert rtt_p50(net) < 5


def test_a_link_down_and_up(netns_topology: Any) -> None:
    net = netns_topology(two())
    assert reachable(net)
    net.set_link("a", "b", up=False)
    assert unreachable(net)
    net.set_link("a:eth0", "b:eth0", up=True)
    assert reachable(net)


def test_a_plain_link_gets_tc_impairment_at_run_time(netns_topology: Any) -> None:
    from rawstack_harness.backends.linux.impair.probe import probe

    if rootless() and not probe().netem:
        pytest.skip(
            "needs the host's root, not a rootless run: sch_netem is not loaded, and a user "
            "namespace cannot load a module (`modprobe sch_netem` as root first)"
        )
    net = netns_topology(two())
    assert net.mechanisms() == []
    # Neighbours made permanent first: ARP requests lost to the impairment would leave b's
    # entry INCOMPLETE, and the check after clearing would wait for ARP's next try.
    for node, peer in (("a", "b"), ("b", "a")):
        argv = ["ip", "neigh", "replace", net[peer].addr(), "lladdr", net[peer].mac("eth0"),
                "dev", "eth0", "nud", "permanent"]  # fmt: skip
        assert net[node].run(argv).returncode == 0
    net.impair("a", "b", {"a": {"loss": "100%"}})
    assert unreachable(net)
    net.impair("a", "b", None)
    assert reachable(net)


def test_an_unknown_link_is_named(netns_topology: Any) -> None:
    net = netns_topology(two())
    with pytest.raises(LookupError, match="no link a-c in topology ev"):
        net.set_link("a", "c", up=False)
