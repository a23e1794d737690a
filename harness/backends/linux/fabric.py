"""What a Linux topology has beyond plain veth pairs: impaired links and L2 segments.

Theory of operation: :class:`Fabric` is built by :class:`~.nodes.LinuxNetwork` after its
netlink batch (plain veths, addresses) and before its routes. Links whose impairment needs
the relay (``delay``/``jitter``/``reorder`` on a kernel without netem) are left out of the
batch (:func:`relayed_links`) and built here; the other impaired links only get their tc
pieces (:meth:`ImpairedLink.attach`). Each segment's bridge lives in a hub namespace the
network created with its nodes (bind-mounted, in the manifest, kept with them), so a
segment is removed and kept exactly as a node is. Run-time events (a link or member down
or up, a new impairment) go through :meth:`Fabric.link` and :meth:`Fabric.segment`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rawstack_harness.backends.linux.impair import probe
from rawstack_harness.backends.linux.impair.links import ImpairedLink, Side
from rawstack_harness.backends.linux.impair.plan import plan
from rawstack_harness.backends.linux.segments import BuiltSegment
from rawstack_harness.topology.impair import LinkImpairment
from rawstack_harness.topology.spec import Topology


def needs_fabric(topology: Topology) -> bool:
    return bool(topology.segments) or any(link.impair for link in topology.links)


def relayed_links(topology: Topology) -> set[int]:
    """Indexes of the links the batch must leave out: their veths go through a relay."""
    if not any(link.impair for link in topology.links):
        return set()
    feats = probe.probe()
    return {
        i
        for i, link in enumerate(topology.links)
        if any(plan(d, feats).relay for d in (link.impair.a, link.impair.b))
    }


def hub_netns(prefix: str, segment: str) -> str:
    """A segment's hub namespace name: ``.br`` keeps it apart from any node's name."""
    return f"{prefix}-{segment}.br"


class Fabric:
    """The impaired links (by index) and segments (by name) of one network."""

    def __init__(
        self,
        topology: Topology,
        nsfds: Mapping[str, int],
        hubs: Mapping[str, int],
        manifest: Any,
        control_dir: Path | None = None,
    ) -> None:
        self.topology = topology
        self.nsfds = nsfds  # node name -> namespace descriptor
        self.hubs = hubs  # segment name -> hub namespace descriptor
        self.manifest = manifest
        # Where the relays' control sockets are (the run directory), so that a process that
        # did not build them (the CLI, for a kept topology) reaches them too.
        self.control_dir = control_dir or (Path(manifest.path).parent if manifest else None)
        self.links: dict[int, ImpairedLink] = {}
        self.segments: dict[str, BuiltSegment] = {}
        self._relayed: set[int] | None = None

    def build(self, relayed: set[int]) -> Fabric:
        self._relayed = relayed
        try:
            for i, link in enumerate(self.topology.links):
                if link.impair or i in relayed:
                    il = self._impaired(i)
                    self.links[i] = il
                    il.build() if i in relayed else il.attach()
            for seg in self.topology.segments:
                built = BuiltSegment(
                    seg, self.nsfds, manifest=self.manifest, control=self._control(seg.name)
                )
                self.segments[seg.name] = built
                built.build(self.hubs[seg.name])
        except BaseException:
            self.close()
            raise
        return self

    def _control(self, what: object) -> str:
        return "" if self.control_dir is None else str(self.control_dir / f"relay-{what}.sock")

    def _impaired(self, index: int) -> ImpairedLink:
        link = self.topology.links[index]
        return ImpairedLink(
            Side(self.nsfds[link.a.node], link.a),
            Side(self.nsfds[link.b.node], link.b),
            link.impair,
            manifest=self.manifest,
            control=self._control(index),
        )

    # -- run time ---------------------------------------------------------------------------
    def find_link(self, a: str, b: str | None = None) -> int:
        """The index of the link ``a`` (``node`` or ``node:ifname``) - ``b``; both orders."""
        for i, link in enumerate(self.topology.links):
            ends = [f"{e.node}:{e.ifname}" for e in (link.a, link.b)]
            names = [e.node for e in (link.a, link.b)]

            def hit(spec: str, k: int, ends: list[str] = ends, names: list[str] = names) -> bool:
                return spec in (ends[k], names[k])

            for k in (0, 1):
                if hit(a, k) and (b is None or hit(b, 1 - k)):
                    return i
        raise LookupError(f"no link {a}{'-' + b if b else ''} in topology {self.topology.name}")

    def link(self, index: int) -> ImpairedLink:
        """The handle of link ``index``; a plain link gets one on first use (tc only), a
        relayed one built by another process is reached through its control socket."""
        if index not in self.links:
            if self._relayed is None:
                self._relayed = relayed_links(self.topology)
            handle = self._impaired(index)
            if index in self._relayed:
                handle.has_relay = True  # its relay runs (in the keeper): not ours to start
            else:
                handle.attach()
            self.links[index] = handle
        return self.links[index]

    def segment(self, name: str) -> BuiltSegment:
        """A built segment, or a handle on one another process built (its hub is open)."""
        if name not in self.segments:
            seg = next((s for s in self.topology.segments if s.name == name), None)
            if seg is None or name not in self.hubs:
                raise LookupError(f"no segment {name!r} in topology {self.topology.name}")
            self.segments[name] = BuiltSegment(seg, self.nsfds).adopt(self.hubs[name])
        return self.segments[name]

    def set_impair(self, index: int, impair: LinkImpairment) -> None:
        self.link(index).set(impair)

    def check(self) -> None:
        """Raise if a relay of this network died (its link is gone)."""
        for il in self.links.values():
            il.check()
        for seg in self.segments.values():
            for il in seg.links:
                il.check()

    def describe(self) -> list[str]:
        """One line per impaired link and per segment: which mechanism serves it."""
        lines = [il.describe() for il in self.links.values() if il.impair]
        for seg in self.segments.values():
            lines.append(seg.describe())
            lines += [f"  {il.describe()}" for il in seg.links if il.impair]
        return lines

    def close(self) -> None:
        for il in self.links.values():
            il.close()
        for seg in self.segments.values():
            seg.close()
        self.links, self.segments = {}, {}


__all__ = ["Fabric", "hub_netns", "needs_fabric", "relayed_links"]
