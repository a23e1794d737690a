"""A three-member L2 segment: CHAO broadcasts reach every member; members go down and up."""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
from rawstack_harness.plugin import skip_without_node_sockets
from rawstack_harness.supervise import read_ready

from rawstack.codec.chao import CHAO_REPLY, CHAO_REQUEST, Chao
from rawstack.codec.ethernet import Ethernet, mac_to_bytes, mac_to_str

pytestmark = pytest.mark.netns

ETH_P_CHAO = 0x88B5
BROADCAST = b"\xff" * 6
SETTLE = 0.3  # after the expected replies, how long a reply that should not come may take


def lan(impair_c: dict[str, str] | None = None) -> dict[str, Any]:
    members: list[dict[str, Any]] = [
        {"node": n, "addresses": [f"10.9.0.{i + 1}/24"]} for i, n in enumerate("abc")
    ]
    if impair_c:
        members[2]["impair"] = impair_c
    return {
        "name": "seg",
        "nodes": [{"name": n} for n in "abc"],
        "segments": [{"name": "lan", "members": members}],
    }


@pytest.fixture
def segment(netns_topology: Any) -> Callable[..., tuple[Any, Any]]:
    """Factory: nodes a, b, c on segment ``lan`` (built from the spec), CHAO on b and c."""
    skip_without_node_sockets()

    def make(impair_c: dict[str, str] | None = None) -> tuple[Any, Any]:
        net = netns_topology(lan(impair_c))
        argv = [sys.executable, "-m", "rawstack", "chao", "serve", "--iface", "eth0"]
        servers = [net[n].popen(argv, stdout=-1, stderr=-1) for n in "bc"]  # start together
        for server in servers:
            read_ready(server, 1, 20)
        return net, net

    return make


def broadcast(
    net: Any, seq: int, expect: set[str], wait: float = 10.0, settle: float = 0.0
) -> dict[str, float]:
    """One CHAO request to ff:ff:ff:ff:ff:ff from a; every replier's MAC -> RTT in ms.

    Listens until every MAC in ``expect`` replied, then ``settle`` seconds more for replies
    that should not come (a member's reply takes milliseconds), or until ``wait`` is over.
    """
    with net["a"].socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_CHAO)) as sock:
        sock.bind(("eth0", ETH_P_CHAO))
        src = mac_to_bytes(net["a"].mac("eth0"))
        frame = Ethernet(BROADCAST, src, ETH_P_CHAO, Chao(CHAO_REQUEST, seq, b"seg").encode())
        start = time.monotonic()
        sock.send(frame.encode())
        got: dict[str, float] = {}
        end = start + wait
        while (left := end - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data = sock.recv(2048)
            except socket.timeout:
                break
            eth = Ethernet.decode(data)
            msg = Chao.decode(eth.payload)
            if eth.dst == src and msg.type == CHAO_REPLY and msg.seq == seq:
                got[mac_to_str(eth.src)] = (time.monotonic() - start) * 1000
                if expect <= set(got) and end > time.monotonic() + settle:
                    end = time.monotonic() + settle
        return got


def macs(net: Any, *nodes: str) -> set[str]:
    return {net[n].mac("eth0") for n in nodes}


def test_broadcast_is_answered_by_both_others(segment: Callable[..., Any]) -> None:
    net, _ = segment()
    assert set(broadcast(net, 1, macs(net, "b", "c"))) == macs(net, "b", "c")
    assert any("bridge in its own namespace" in line for line in net.mechanisms())


def test_a_member_down_stops_answering_and_up_answers_again(segment: Callable[..., Any]) -> None:
    net, _ = segment()
    both = macs(net, "b", "c")
    assert set(broadcast(net, 1, both)) == both
    net.set_member("lan", "c", up=False)
    assert set(broadcast(net, 2, macs(net, "b"), settle=SETTLE)) == macs(net, "b")
    net.set_member("lan", "c", up=True)
    deadline = time.monotonic() + 5
    seq = 3
    while set(broadcast(net, seq, both, wait=0.5)) != both:
        assert time.monotonic() < deadline, "c never answered again"
        seq += 1


def test_a_member_impairment_is_its_own(segment: Callable[..., Any]) -> None:
    net, _ = segment({"delay": "15ms"})
    rtt = broadcast(net, 1, macs(net, "b", "c"))
    b, c = (rtt[m] for m in (net["b"].mac("eth0"), net["c"].mac("eth0")))
    assert c >= 29.0, rtt  # 15 ms each way, to c and back
    assert b < c - 15, rtt
