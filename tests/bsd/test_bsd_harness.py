"""The plugin's fixtures on FreeBSD: the peer matrix over VNET jails, the kernel as ICMP peer.

The same fixtures (``netns_pair``, ``netns_line3``, ``netns_topology``) and clients as
tests/integration/test_matrix_peers.py; here the ICMP row says who answers: the kernel's
echo, since FreeBSD consumes echo requests before raw sockets see them. Runs in the Vagrant
box (docs/bsd.md); everywhere else it skips with the reason.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from rawstack_harness import clients
from rawstack_harness.backends import KERNEL, RAWSTACK, unavailable_reason
from rawstack_harness.errors import Unsupported

ON_FREEBSD = sys.platform.startswith("freebsd")
REASON = "needs FreeBSD" if not ON_FREEBSD else unavailable_reason()
pytestmark = [pytest.mark.netns, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

ROWS = [
    pytest.param("chao", RAWSTACK, id="chao"),
    pytest.param("icmp", KERNEL, id="icmp (kernel echo)"),
    pytest.param("http", RAWSTACK, id="http"),
    pytest.param("udp", RAWSTACK, id="udp"),
]


def _jails() -> list[str]:
    out = subprocess.run(["jls", "name"], capture_output=True, text=True, check=True)
    return out.stdout.split()


@pytest.mark.parametrize(("proto", "server"), ROWS)
@pytest.mark.parametrize(("src", "dst"), [("a", "b"), ("b", "a")])
def test_pair(netns_pair: Any, proto: str, server: str, src: str, dst: str) -> None:
    peer = netns_pair.peers[dst]
    assert peer.servers[proto] == server
    rtt_ms = clients.run_client(proto, netns_pair[src], netns_pair[dst], ready=peer.ready)
    assert 0 < rtt_ms < clients.REPLY_TIMEOUT * 1000


def test_serve_all_runs_without_its_icmp_responder(netns_pair: Any) -> None:
    peer = netns_pair.peers["b"]
    assert "icmp" not in peer.ready
    assert peer.proc.args[-2:] == ["--peers", "http,udp,chao"]
    assert "icmp" in peer.rtts  # probed all the same: the kernel answered


@pytest.mark.parametrize(("proto", "server"), [ROWS[1], pytest.param("http", RAWSTACK, id="http")])
@pytest.mark.parametrize(("src", "dst"), [("a", "b"), ("b", "a")])
def test_line3_through_router(
    netns_line3: Any, proto: str, server: str, src: str, dst: str
) -> None:
    peer = netns_line3.peers[dst]
    assert peer.servers[proto] == server
    rtt_ms = clients.run_client(proto, netns_line3[src], netns_line3[dst], ready=peer.ready)
    assert 0 < rtt_ms < clients.REPLY_TIMEOUT * 1000


def test_node_surface_and_teardown(netns_topology: Any) -> None:
    from rawstack_harness.topology import pair

    net = netns_topology(pair())
    a, b = net["a"], net["b"]
    assert a.ifnames() == ["eth0"]
    assert b.addr(4) == "10.0.0.2"
    assert a.mac() != b.mac()
    shown = a.run(["ifconfig", "eth0"], capture_output=True, text=True).stdout
    assert a.mac() in shown
    assert a.sysctl("net.ipv4.ip_forward") == "0"  # a Linux name, mapped
    with pytest.raises(Unsupported, match="no setns"):
        a.socket()
    assert a.jail in _jails()
    net.destroy()
    assert a.jail not in _jails()
