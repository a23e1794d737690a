"""L2 segments: a bridge in a namespace of the harness's own, one port per member.

Theory of operation: a :class:`~rawstack_harness._next.topo.spec.Segment` becomes one hub
namespace (never the root namespace) holding a Linux bridge, ``br0``, with multicast
snooping off (it floods like a plain switch, so IPv6 neighbour discovery and CHAO broadcasts
reach every member without a querier) and STP off (ports forward at once). Each member is
an :class:`~rawstack_harness._next.topo.links.ImpairedLink` between the member's interface
and a port ``p<j>`` in the hub, so a member's ``impair`` works exactly as a link's (``a``:
the member's egress; ``b``: what the segment sends to it), relay included. The hub
namespace is held only by this object's descriptor (and a relay of a member, if any): the
kernel removes it, the bridge and every port when the descriptor closes, also when the
process is SIGKILLed. Taking a member down is taking its interface down (its port loses
carrier and the bridge stops forwarding to it), as unplugging a cable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from rawstack_harness._next.topo.impair import Features
from rawstack_harness._next.topo.links import ImpairedLink, Side
from rawstack_harness._next.topo.spec import Segment
from rawstack_harness.backends import nsutil
from rawstack_harness.runstate import HarnessError
from rawstack_harness.topology.spec import Endpoint

BRIDGE = "br0"


def _hub_ns() -> int:
    def inside() -> int:
        nsutil.unshare_net()
        for key in ("default", "all"):  # ports carry frames, they never speak themselves
            with open(f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6", "w", encoding="ascii") as fh:
                fh.write("1")
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    return nsutil.in_thread(inside, "segment-netns")


def _ipr_in(nsfd: int, fn: Any) -> Any:
    def inside() -> Any:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            return fn(ipr)

    return nsutil.in_netns(nsfd, inside)


class BuiltSegment:
    """A segment's hub and its member links; :meth:`set_member_up`, :meth:`close`."""

    def __init__(
        self,
        segment: Segment,
        nodes: Mapping[str, int],
        *,
        feats: Features | None = None,
        manifest: Any = None,
        owner: int | None = None,
    ) -> None:
        self.segment = segment
        self.nodes = nodes  # node name -> namespace descriptor
        self.feats = feats
        self.manifest = manifest
        self.owner = owner
        self.hub_fd = -1
        self.links: list[ImpairedLink] = []

    def build(self) -> BuiltSegment:
        self.hub_fd = _hub_ns()
        try:
            _ipr_in(
                self.hub_fd,
                lambda ipr: ipr.link(
                    "add", ifname=BRIDGE, kind="bridge", br_mcast_snooping=0, br_stp_state=0
                ),
            )
            for j, member in enumerate(self.segment.members):
                port = Endpoint("hub", f"p{j}")
                link = ImpairedLink(
                    Side(self.nodes[member.node], member),
                    Side(self.hub_fd, port),
                    member.impair,
                    owner=self.owner,
                    feats=self.feats,
                    manifest=self.manifest,
                )
                self.links.append(link)
                link.build()
                _ipr_in(self.hub_fd, lambda ipr, name=port.ifname: _enslave(ipr, name))
            _ipr_in(self.hub_fd, lambda ipr: _set_up(ipr, BRIDGE))
        except BaseException:
            self.close()
            raise
        return self

    def member_index(self, node: str, ifname: str | None = None) -> int:
        for j, m in enumerate(self.segment.members):
            if m.node == node and (ifname is None or m.ifname == ifname):
                return j
        raise LookupError(f"segment {self.segment.name} has no member {node}:{ifname or '*'}")

    def set_member_up(self, node: str, up: bool, ifname: str | None = None) -> None:
        """Take a member's interface down (``up=False``) or up again."""
        self.links[self.member_index(node, ifname)].set_up("a", up)

    def describe(self) -> str:
        names = ", ".join(f"{m.node}:{m.ifname}" for m in self.segment.members)
        return f"segment {self.segment.name}: bridge in its own namespace, members {names}"

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links = []
        if self.hub_fd >= 0:
            os.close(self.hub_fd)  # the last holder: the kernel removes bridge and ports
            self.hub_fd = -1


def _enslave(ipr: Any, name: str) -> None:
    (bridge,) = ipr.link_lookup(ifname=BRIDGE)
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise HarnessError(f"segment hub: port {name} vanished")
    ipr.link("set", index=found[0], master=bridge)


def _set_up(ipr: Any, name: str) -> None:
    (index,) = ipr.link_lookup(ifname=name)
    ipr.link("set", index=index, state="up")
