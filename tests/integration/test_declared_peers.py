"""Peers declared per node in a user's own topology: started, probed, ICMP as declared."""

from __future__ import annotations

from typing import Any

import pytest
from rawstack_harness import clients

pytestmark = pytest.mark.netns

ROUTER = {
    "name": "lab",
    "nodes": [
        {"name": "a", "peers": "all", "routes": [{"dst": "default", "via": "10.0.1.1"}]},
        {"name": "r", "sysctls": {"net.ipv4.ip_forward": "1"}},
        {"name": "b", "peers": ["udp", "chao"], "routes": [{"dst": "default", "via": "10.0.2.1"}]},
    ],
    "links": [
        {
            "a": {"node": "a", "addresses": ["10.0.1.2/24"]},
            "b": {"node": "r", "addresses": ["10.0.1.1/24"]},
        },
        {
            "a": {"node": "r", "ifname": "eth1", "addresses": ["10.0.2.1/24"]},
            "b": {"node": "b", "addresses": ["10.0.2.2/24"]},
        },
    ],
}


def ping_ok(net: Any, src: str, dst: str, wait: str = "2") -> bool:
    out = net[src].run(["ping", "-c", "1", "-W", wait, net[dst].addr()], capture_output=True)
    return bool(out.returncode == 0)


def test_declared_peers_are_started_probed_and_answer(netns_topology: Any) -> None:
    net = netns_topology(ROUTER)
    assert sorted(net.peers) == ["a", "b"]  # r declares none: nothing runs there
    assert set(net.peers["a"].rtts) == {"http", "udp", "chao", "icmp"}  # probed from r
    assert set(net.peers["b"].rtts) == {"udp", "chao"}
    assert net["a"].peers == {p: "rawstack" for p in ("http", "udp", "chao", "icmp")}
    assert net["b"].peers == {"udp": "rawstack", "chao": "rawstack", "icmp": "kernel"}
    # Across the router, from a: b's UDP echo is rawstack's.
    assert clients.run_client("udp", net["a"], net["b"], ready=net.peers["b"].ready) > 0


def test_kernel_echo_is_off_exactly_where_icmp_is_declared(netns_topology: Any) -> None:
    net = netns_topology(ROUTER)
    assert net["a"].sysctl("net.ipv4.icmp_echo_ignore_all") == "1"
    assert net["b"].sysctl("net.ipv4.icmp_echo_ignore_all") == "0"
    assert ping_ok(net, "r", "a")
    assert ping_ok(net, "r", "b")
    # With a's serve-all gone, nothing answers a's pings: they were rawstack's. b's kernel
    # still answers its own.
    net.peers["a"].stop()
    assert not ping_ok(net, "r", "a", wait="0.5")  # a reply takes well under a millisecond
    assert ping_ok(net, "r", "b")
