"""The peer matrix over real namespaces: rawstack's clients against its servers, both ways.

Every exchange runs the ``rawstack`` client command inside the source node (see
:mod:`rawstack_harness.clients`); the servers are ``rawstack serve-all`` started by the fixtures.
Runs on every backend (network namespaces on Linux, VNET jails on FreeBSD: the BSD suite
runs this file too); where the kernel is the ICMP peer, the ICMP rows ping its echo.
"""

from __future__ import annotations

from typing import Any

import pytest
from rawstack_harness import clients
from rawstack_harness.backends import KERNEL, select_backend
from rawstack_harness.errors import UnsupportedPlatform

pytestmark = [pytest.mark.netns]


def _kernel_is_the_icmp_peer() -> bool:
    try:
        return select_backend().capabilities.icmp_responder == KERNEL
    except UnsupportedPlatform:
        return False  # the netns marker skips every test here, naming the platform


KERNEL_IS_THE_ICMP_PEER = _kernel_is_the_icmp_peer()


def _exchange_with_serve_all(net: Any, proto: str, src: str, dst: str) -> None:
    """rawstack's ``proto`` client in ``src`` against the fixture's serve-all in ``dst``."""
    peer = net.peers[dst]
    if proto not in peer.peers:
        pytest.skip(f"{proto} not in --netns-peers")
    rtt_ms = clients.run_client(proto, net[src], net[dst], ready=peer.ready)
    assert 0 < rtt_ms < clients.REPLY_TIMEOUT * 1000


@pytest.mark.parametrize("proto", clients.PROTOCOLS)
@pytest.mark.parametrize(("src", "dst"), [("a", "b"), ("b", "a")])
def test_pair(netns_pair: Any, proto: str, src: str, dst: str) -> None:
    _exchange_with_serve_all(netns_pair, proto, src, dst)


@pytest.mark.skipif(
    KERNEL_IS_THE_ICMP_PEER,
    reason="this backend's kernel always answers echo itself (icmp_responder is 'kernel'); "
    "there is no net.ipv4.icmp_echo_ignore_all to read (FreeBSD)",
)
def test_kernel_echo_is_on_until_serve_all_turns_it_off(netns_topology: Any) -> None:
    from rawstack_harness.topology import pair

    net = netns_topology(pair())
    assert [net[n].sysctl("net.ipv4.icmp_echo_ignore_all") for n in ("a", "b")] == ["0", "0"]


@pytest.mark.parametrize(("src", "dst"), [("a", "b"), ("b", "a")])
def test_ping_against_the_kernel(netns_topology: Any, src: str, dst: str) -> None:
    from rawstack_harness.topology import pair

    net = netns_topology(pair())  # no serve-all: only the kernel can answer
    rtt_ms = clients.run_client("icmp", net[src], net[dst])
    assert 0 < rtt_ms < clients.REPLY_TIMEOUT * 1000


@pytest.mark.parametrize("proto", ["icmp", "http"])
@pytest.mark.parametrize(("src", "dst"), [("a", "b"), ("b", "a")])
def test_line3_through_router(netns_line3: Any, proto: str, src: str, dst: str) -> None:
    _exchange_with_serve_all(netns_line3, proto, src, dst)


def test_a_missing_server_is_a_failure_with_the_client_status(netns_topology: Any) -> None:
    from rawstack_harness.topology import pair

    net = netns_topology(pair())
    # Nothing listens there: b's kernel refuses the connection at once (a UDP client would
    # instead wait out its reply timeout; the failure and its report are the same).
    ready = {"http": {"addr": "0.0.0.0:9"}}
    with pytest.raises(
        clients.ClientFailed, match=r"'rawstack http get http://10\.0\.0\.2:9/ .*exit status 1"
    ):
        clients.run_client("http", net["a"], net["b"], ready=ready)
