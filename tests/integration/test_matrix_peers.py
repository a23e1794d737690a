"""The peer matrix over real namespaces: every protocol both ways, and through a router."""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

from harness import probes

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(
        importlib.util.find_spec("rawstack.cli.serve_all") is None,
        reason="`rawstack serve-all` (rawstack/cli/serve_all.py) is not built yet",
    ),
]


@pytest.mark.parametrize("proto", ["chao", "icmp", "http", "udp"])
@pytest.mark.parametrize(("src", "dst"), [("a", "b"), ("b", "a")])
def test_pair(netns_pair: Any, proto: str, src: str, dst: str) -> None:
    if proto not in netns_pair.peers[dst].peers:
        pytest.skip(f"{proto} not in --netns-peers")
    rtt = probes.probe_peer(
        proto,
        src=netns_pair[src],
        src_ifname="eth0",
        dst=netns_pair[dst],
        dst_ifname="eth0",
        ready=netns_pair.peers[dst].ready,
    )
    assert 0 < rtt < 2


def test_ping_against_the_kernel(netns_topology: Any) -> None:
    from harness.topology import pair

    net = netns_topology(pair())
    assert net["b"].sysctl("net.ipv4.icmp_echo_ignore_all") == "0"  # kernel answers here
    assert probes.icmp_echo(net["a"], "10.0.0.2") > 0


@pytest.mark.parametrize("proto", ["icmp", "http"])
def test_line3_through_router(netns_line3: Any, proto: str) -> None:
    rtt = probes.probe_peer(
        proto,
        src=netns_line3["a"],
        src_ifname="eth0",
        dst=netns_line3["b"],
        dst_ifname="eth0",
        ready=netns_line3.peers["b"].ready,
    )
    assert 0 < rtt < 2
