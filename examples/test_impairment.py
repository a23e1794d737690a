"""Link impairment from a user's side: 20 ms each way, changed at run time, on any Linux.

Netem is used where the kernel has it; elsewhere tc BPF (loss), tbf (rate) and a packet relay
(delay) give the same behaviour. ``net.mechanisms()`` says which one serves each link.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import pytest

pytestmark = pytest.mark.netns

SLOW = """
name: slow
nodes: [{name: a}, {name: b}]
links:
  - a: {node: a, addresses: [10.0.0.1/24]}
    b: {node: b, addresses: [10.0.0.2/24]}
    impair: {delay: 20ms}          # each way; {a: {...}, b: {...}} splits the directions
"""


def rtts(net: Any) -> list[float]:
    out = net["a"].run(["ping", "-c", "10", "-i", "0.05", "10.0.0.2"], capture_output=True)
    return [float(t) for t in re.findall(rb"time=([\d.]+) ms", out.stdout)]


def test_twenty_ms_each_way(netns_topology: Any, tmp_path: Any) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(SLOW)
    net = netns_topology(str(spec))
    assert 36 <= statistics.median(rtts(net)) <= 44, net.mechanisms()
    net.impair("a", "b", {"delay": "0ms", "loss": "0%"})  # change it at run time
    assert statistics.median(rtts(net)) < 10
    net.set_link("a", "b", up=False)  # and take it down (up=True brings it back)
