"""L2 segments: a bridge in a namespace of the harness's own, one port per member.

Theory of operation: a :class:`~rawstack_harness.topology.spec.Segment` becomes one hub
namespace (never the root namespace) holding a Linux bridge, ``br0``, with multicast
snooping off (it floods like a plain switch, so IPv6 neighbour discovery and CHAO broadcasts
reach every member without a querier) and STP off (ports forward at once). Each member is
an :class:`~rawstack_harness.backends.linux.impair.links.ImpairedLink` between the member's
interface and a port ``p<j>`` in the hub, so a member's ``impair`` works exactly as a
link's (``a``: the member's egress; ``b``: what the segment sends to it), relay included.
The hub namespace belongs to the network (created, bind-mounted, kept and removed with its
nodes), so the bridge and its ports go when it does. Taking a member down is taking its
interface down (its port loses carrier and the bridge stops forwarding to it), as
unplugging a cable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rawstack_harness.backends.linux import nsutil
from rawstack_harness.backends.linux.impair.links import ImpairedLink, Side
from rawstack_harness.backends.linux.impair.plan import Features
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology.spec import Endpoint, Segment

BRIDGE = "br0"


def _quiet_hub() -> None:
    for key in ("default", "all"):  # ports carry frames, they never speak themselves
        with open(f"/proc/sys/net/ipv6/conf/{key}/disable_ipv6", "w", encoding="ascii") as fh:
            fh.write("1")


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
        control: str = "",
    ) -> None:
        self.segment = segment
        self.nodes = nodes  # node name -> namespace descriptor
        self.feats = feats
        self.manifest = manifest
        self.owner = owner
        self.hub_fd = -1
        self.links: list[ImpairedLink] = []
        self.control = control  # a relay control socket path prefix ("" for none)

    def build(self, hub_fd: int) -> BuiltSegment:
        """Build in the hub namespace ``hub_fd`` (the caller's: it outlives this object)."""
        self.hub_fd = hub_fd
        try:
            nsutil.in_netns(hub_fd, _quiet_hub)
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
                    control=self.control.replace(".sock", f"-{j}.sock") if self.control else "",
                )
                self.links.append(link)
                link.build()
                _ipr_in(self.hub_fd, lambda ipr, name=port.ifname: _enslave(ipr, name))
            _ipr_in(self.hub_fd, lambda ipr: _set_up(ipr, BRIDGE))
        except BaseException:
            self.close()
            raise
        return self

    def adopt(self, hub_fd: int) -> BuiltSegment:
        """Handles on a segment another process built (for events; nothing is created)."""
        self.hub_fd = hub_fd
        self.links = [
            ImpairedLink(
                Side(self.nodes[m.node], m),
                Side(hub_fd, Endpoint("hub", f"p{j}")),
                m.impair,
                feats=self.feats,
                relay=False,
            )
            for j, m in enumerate(self.segment.members)
        ]
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
        """Stop the members' relays; the bridge and ports go with the hub namespace."""
        for link in self.links:
            link.close()
        self.links = []


def _enslave(ipr: Any, name: str) -> None:
    (bridge,) = ipr.link_lookup(ifname=BRIDGE)
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise HarnessError(f"segment hub: port {name} vanished")
    ipr.link("set", index=found[0], master=bridge)


def _set_up(ipr: Any, name: str) -> None:
    (index,) = ipr.link_lookup(ifname=name)
    ipr.link("set", index=index, state="up")
