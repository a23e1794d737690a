"""The harness from a user's side: the tests README.md shows, run as part of the suite."""

from __future__ import annotations

from collections.abc import Callable

from rawstack_harness import Network, clients
from rawstack_harness.topology import Topology


def test_udp_both_ways(netns_pair: Network) -> None:
    """netns_pair: nodes a (10.0.0.1) and b (10.0.0.2), serve-all running and probed on both."""
    for src, dst in (("a", "b"), ("b", "a")):
        ready = netns_pair.peers[dst].ready  # the ready lines: ports, MACs
        rtt_ms = clients.run_client("udp", netns_pair[src], netns_pair[dst], ready=ready)
        assert rtt_ms > 0


def test_my_own_topology(netns_topology: Callable[[Topology], Network]) -> None:
    from rawstack_harness.topology import line3

    net = netns_topology(line3())  # a - r - b, r forwarding; no peers started
    out = net["a"].run(["ping", "-c1", "-W1", net["b"].addr()])
    assert out.returncode == 0
