"""The whole spec from a user's side: examples/lab.yaml built, its peers, links and segment."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness import clients

pytestmark = pytest.mark.netns

LAB = Path(__file__).with_name("lab.yaml")


def pings(net: Any, src: str, dst: str) -> bool:
    out = net[src].run(["ping", "-c", "3", "-i", "0.2", "-W", "2", dst], capture_output=True)
    return bool(out.returncode == 0)


def udp_echo_answers(net: Any, tries: int) -> bool:
    for _ in range(tries):
        try:
            return clients.run_client("udp", net["a"], net["b"], ready=net.peers["b"].ready) > 0
        except clients.ClientFailed as exc:
            if "probes lost" not in str(exc):
                raise  # anything but a lost datagram is a failure at once
    return False


def test_the_lab(netns_topology: Any) -> None:
    net = netns_topology(str(LAB))
    assert net["b"].peers["icmp"] == "rawstack"  # b declares all: its pings are rawstack's
    assert net["c"].peers == {"icmp": "kernel"}
    # a reaches b's UDP echo through r, over both impaired links: one datagram each way
    # crosses three 1%-loss directions (~3% lost), so a few tries, one of which must answer.
    assert udp_echo_answers(net, tries=5)
    # 5 ms each way on a-r, 5 ms on r->b: a median RTT of 15 ms (reorder sends 5% at once).
    out = net["a"].run(["ping", "-c", "11", "-i", "0.05", "10.0.2.2"], capture_output=True)
    times = sorted(float(t) for t in re.findall(rb"time=([\d.]+) ms", out.stdout))
    assert times[len(times) // 2] >= 13, times
    assert pings(net, "b", "10.9.0.3")  # over the segment; c's kernel answers
    net.set_member("lan", "c", up=False)
    assert not pings(net, "b", "10.9.0.3")
    net.set_member("lan", "c", up=True)
    assert pings(net, "b", "10.9.0.3")
    assert len(net.mechanisms()) >= 3  # two links and the segment
