"""Link impairment from a user's side: 20 ms each way, then 10% loss, on any Linux kernel.

Netem is used where the kernel has it; elsewhere tc BPF (loss), tbf (rate) and a packet relay
(delay) give the same behaviour. ``link.describe()`` says which mechanism served the link.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import pytest
from rawstack_harness.backends.linux.impair.links import ImpairedLink, Side
from rawstack_harness.topology.impair import parse_link_impair
from rawstack_harness.topology.spec import Endpoint

pytestmark = pytest.mark.netns


def link_ab(net: Any, impair: dict[str, Any]) -> ImpairedLink:
    """Nodes a (10.0.0.1) and b (10.0.0.2) joined by one impaired link."""
    return ImpairedLink(
        Side(net["a"].fd, Endpoint("a", "eth0", ("10.0.0.1/24",))),
        Side(net["b"].fd, Endpoint("b", "eth0", ("10.0.0.2/24",))),
        parse_link_impair("impair", impair),
        manifest=net.run.manifest,
    ).build()


def test_twenty_ms_each_way(netns_topology: Any) -> None:
    net = netns_topology({"name": "slow", "nodes": [{"name": "a"}, {"name": "b"}]})
    link = link_ab(net, {"delay": "20ms"})
    try:
        out = net["a"].run(["ping", "-c", "10", "-i", "0.05", "10.0.0.2"], capture_output=True)
        rtts = [float(t) for t in re.findall(rb"time=([\d.]+) ms", out.stdout)]
        assert 36 <= statistics.median(rtts) <= 44, link.describe()
        link.set(parse_link_impair("impair", {"delay": "0ms"}))  # change it at run time
        out = net["a"].run(["ping", "-c", "3", "-i", "0.05", "10.0.0.2"], capture_output=True)
        rtts = [float(t) for t in re.findall(rb"time=([\d.]+) ms", out.stdout)]
        assert max(rtts) < 10
    finally:
        link.close()  # also done by the run's reaper if the test process dies
