"""Declared peers: who probes whom (pure, from the spec) and who answers ICMP."""

from __future__ import annotations

from pathlib import Path

import pytest
from rawstack_harness.backends import select_backend
from rawstack_harness.errors import HarnessError
from rawstack_harness.supervise import PeerProcess, peer_plan
from rawstack_harness.topology import from_dict, line3, pair

from rawstack.peers.registry import ALL_PEERS


def test_pair_and_line3_declare_peers_only_when_asked() -> None:
    assert peer_plan(pair()) == []
    assert peer_plan(pair(peers=ALL_PEERS)) == [
        ("a", "eth0", "b", "eth0"),
        ("b", "eth0", "a", "eth0"),
    ]
    assert peer_plan(line3(peers=ALL_PEERS)) == [
        ("a", "eth0", "r", "eth0"),
        ("b", "eth0", "r", "eth1"),
    ]


def test_a_segment_member_is_probed_from_another_member() -> None:
    topo = from_dict(
        {
            "nodes": [{"name": "a", "peers": ["chao"]}, {"name": "b"}],
            "segments": [
                {
                    "name": "lan",
                    "members": [{"node": "a", "ifname": "lan0"}, {"node": "b", "ifname": "x"}],
                }
            ],
        }
    )
    assert peer_plan(topo) == [("a", "lan0", "b", "x")]


def test_peers_without_a_neighbour() -> None:
    topo = from_dict({"nodes": [{"name": "a", "peers": "all"}]})
    with pytest.raises(HarnessError, match="no neighbour"):
        peer_plan(topo)


class FakeNode:
    name = "b"
    netns = "rshx-b"


@pytest.mark.parametrize(
    ("served", "rawstack_icmp"), [(None, True), (("udp", "icmp"), True), (("udp", "chao"), False)]
)
def test_kernel_echo_is_off_exactly_when_icmp_is_served(
    tmp_path: Path, served: tuple[str, ...] | None, rawstack_icmp: bool
) -> None:
    backend = select_backend("linux")
    pp = PeerProcess(FakeNode(), "eth0", ALL_PEERS, tmp_path, backend, served=served)  # type: ignore[arg-type]
    assert pp.answers_icmp is rawstack_icmp


def test_node_peers_say_who_answers_what() -> None:
    from rawstack_harness.backends.common import SpecNode

    topo = from_dict(
        {
            "nodes": [{"name": "a", "peers": "all"}, {"name": "b", "peers": ["udp", "chao"]}],
            "links": [{"a": {"node": "a"}, "b": {"node": "b"}}],
        }
    )

    class Node(SpecNode):
        def __init__(self, name: str) -> None:
            self.name = name

        def _topology(self) -> object:  # type: ignore[override]
            return topo

    assert Node("a").peers == {p: "rawstack" for p in ALL_PEERS}
    assert Node("b").peers == {"udp": "rawstack", "chao": "rawstack", "icmp": "kernel"}
