"""Ready-made topologies: ``pair()`` (a <-> b) and ``line3()`` (a - r - b, r forwards)."""

from __future__ import annotations

from collections.abc import Sequence

from rawstack_harness.topology.spec import Endpoint, Link, Node, Route, Topology, validate


def pair(name: str = "pair", peers: Sequence[str] = ()) -> Topology:
    """a:eth0 10.0.0.1/24 fd00::1/64 <-> b:eth0 10.0.0.2/24 fd00::2/64; ``peers`` on both.

    ``netns_pair`` is ``pair(peers=ALL_PEERS)``; a plain ``pair()`` starts no peer.
    """
    declared = tuple(peers)
    return validate(
        Topology(
            name=name,
            nodes=(Node("a", peers=declared), Node("b", peers=declared)),
            links=(
                Link(
                    Endpoint("a", "eth0", ("10.0.0.1/24", "fd00::1/64")),
                    Endpoint("b", "eth0", ("10.0.0.2/24", "fd00::2/64")),
                ),
            ),
        )
    )


def line3(name: str = "line3", peers: Sequence[str] = ()) -> Topology:
    """a (10.0.1.2) - r (10.0.1.1 | 10.0.2.1) - b (10.0.2.2); r forwards; ``peers`` on a, b."""
    declared = tuple(peers)
    forward = (("net.ipv4.ip_forward", "1"), ("net.ipv6.conf.all.forwarding", "1"))
    return validate(
        Topology(
            name=name,
            nodes=(
                Node(
                    "a",
                    routes=(Route("default", "10.0.1.1"), Route("default", "fd00:1::1")),
                    peers=declared,
                ),
                Node("r", sysctls=forward),
                Node(
                    "b",
                    routes=(Route("default", "10.0.2.1"), Route("default", "fd00:2::1")),
                    peers=declared,
                ),
            ),
            links=(
                Link(
                    Endpoint("a", "eth0", ("10.0.1.2/24", "fd00:1::2/64")),
                    Endpoint("r", "eth0", ("10.0.1.1/24", "fd00:1::1/64")),
                ),
                Link(
                    Endpoint("r", "eth1", ("10.0.2.1/24", "fd00:2::1/64")),
                    Endpoint("b", "eth0", ("10.0.2.2/24", "fd00:2::2/64")),
                ),
            ),
        )
    )
