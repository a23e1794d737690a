"""The fully populated spec: peers per node, impaired links, L2 segments, stricter checks.

Theory of operation: a :class:`Lab` is a :class:`~rawstack_harness.topology.spec.Topology`
plus what this spec adds to it, kept beside it until the topology dataclasses take the new
fields (``Node.peers``, ``Link.impair``, ``Topology.segments``): the dict/YAML form is the
final one, so :func:`lab_from_dict` reads a file written for it today and the move changes
no spec. :func:`validate_lab` runs every check before anything exists and raises
:class:`SpecError` with the field path, like the topology's own validation:

* ``peers``: names from :data:`PEERS` or ``all`` (the four);
* ``segments``: a name, two or more members on declared nodes, no interface used twice
  (links and segments together);
* the same IP address on two interfaces, the same MAC on two interfaces, and a route whose
  gateway is of the other family than its destination are errors (each names the first
  use too).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rawstack_harness._next.topo.impair import LinkImpairment, parse_link_impair
from rawstack_harness.topology.load import _endpoint, _list, _mapping, from_dict
from rawstack_harness.topology.spec import Endpoint, SpecError, Topology

PEERS = ("http", "udp", "chao", "icmp")  # what serve-all runs; "all" is these four
_SEGMENT_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
_MEMBER_KEYS = {"node", "ifname", "addresses", "mac", "mtu", "impair"}


@dataclass(frozen=True)
class Member(Endpoint):
    """A segment member: an endpoint on the segment's bridge; ``impair.a`` is its egress."""

    impair: LinkImpairment = field(default_factory=LinkImpairment)


@dataclass(frozen=True)
class Segment:
    """One L2 broadcast domain (a bridge) joining two or more members."""

    name: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Lab:
    """A topology with its peers (node -> names), per-link impairment and segments."""

    topology: Topology
    peers: tuple[tuple[str, tuple[str, ...]], ...] = ()
    impair: tuple[LinkImpairment, ...] = ()  # one per link, in link order (or empty)
    segments: tuple[Segment, ...] = ()

    def peers_of(self, node: str) -> tuple[str, ...]:
        return dict(self.peers).get(node, ())

    def link_impair(self, index: int) -> LinkImpairment:
        return self.impair[index] if index < len(self.impair) else LinkImpairment()


def parse_peers(path: str, raw: object) -> tuple[str, ...]:
    """``all`` or a list of peer names -> the names, in :data:`PEERS` order."""
    if raw == "all":
        return PEERS
    if not isinstance(raw, (list, tuple)):
        raise SpecError(path, f"expected 'all' or a list of {', '.join(PEERS)}, got {raw!r}")
    seen: set[str] = set()
    for i, name in enumerate(raw):
        if name not in PEERS:
            raise SpecError(f"{path}[{i}]", f"{name!r} is not a peer ({', '.join(PEERS)}, or all)")
        if name in seen:
            raise SpecError(f"{path}[{i}]", f"{name!r} is listed twice")
        seen.add(name)
    return tuple(p for p in PEERS if p in seen)


def _member(path: str, raw: object) -> Member:
    m = _mapping(path, raw, _MEMBER_KEYS, {"node"})
    ep = _endpoint(path, {k: v for k, v in m.items() if k != "impair"})
    impair = parse_link_impair(f"{path}.impair", m["impair"]) if "impair" in m else None
    return Member(ep.node, ep.ifname, ep.addresses, ep.mac, ep.mtu, impair or LinkImpairment())


def lab_from_dict(raw: object) -> Lab:
    """Read the full spec (the topology's keys plus ``peers``, ``impair``, ``segments``)."""
    top = _mapping("", raw, {"name", "nodes", "links", "segments"}, {"nodes"})
    nodes = _list("nodes", top["nodes"])
    links = _list("links", top.get("links", []))
    base: dict[str, Any] = {k: v for k, v in top.items() if k != "segments"}
    base["nodes"] = [_without(n, "peers") for n in nodes]
    base["links"] = [_without(lk, "impair") for lk in links]
    topology = from_dict(base)
    peers = tuple(
        (str(n["name"]), parse_peers(f"nodes[{i}].peers", n["peers"]))
        for i, n in enumerate(nodes)
        if isinstance(n, Mapping) and "peers" in n
    )
    impair = tuple(
        parse_link_impair(f"links[{i}].impair", lk["impair"])
        if isinstance(lk, Mapping) and "impair" in lk
        else LinkImpairment()
        for i, lk in enumerate(links)
    )
    segments = []
    for i, seg in enumerate(_list("segments", top.get("segments", []))):
        sm = _mapping(f"segments[{i}]", seg, {"name", "members"}, {"name", "members"})
        members = tuple(
            _member(f"segments[{i}].members[{j}]", mem)
            for j, mem in enumerate(_list(f"segments[{i}].members", sm["members"]))
        )
        segments.append(Segment(str(sm["name"]), members))
    return validate_lab(Lab(topology, peers, impair, tuple(segments)))


def _without(raw: object, key: str) -> object:
    return {k: v for k, v in raw.items() if k != key} if isinstance(raw, Mapping) else raw


def _interfaces(lab: Lab) -> list[tuple[str, Endpoint]]:
    """Every interface the spec declares, with its field path, in spec order."""
    out: list[tuple[str, Endpoint]] = []
    for i, link in enumerate(lab.topology.links):
        out += [(f"links[{i}].a", link.a), (f"links[{i}].b", link.b)]
    for i, seg in enumerate(lab.segments):
        out += [(f"segments[{i}].members[{j}]", m) for j, m in enumerate(seg.members)]
    return out


def validate_lab(lab: Lab) -> Lab:
    """Every check of the module docstring; return ``lab`` or raise :class:`SpecError`."""
    from rawstack_harness.topology.spec import _check_endpoint, validate

    topo = validate(lab.topology)
    nodes = {n.name for n in topo.nodes}
    order = [n.name for n in topo.nodes]
    for name, names in lab.peers:
        if name not in nodes:
            raise SpecError("peers", f"{name!r} is not a declared node")
        parse_peers(f"nodes[{order.index(name)}].peers", list(names))
    if lab.impair and len(lab.impair) != len(topo.links):
        raise SpecError("links", f"{len(lab.impair)} impairments for {len(topo.links)} links")
    seen_names: set[str] = set()
    for i, seg in enumerate(lab.segments):
        if not isinstance(seg.name, str) or not _SEGMENT_RE.match(seg.name):
            raise SpecError(
                f"segments[{i}].name",
                f"{seg.name!r} is not a segment name (a-z then a-z0-9, at most 12)",
            )
        if seg.name in seen_names:
            raise SpecError(f"segments[{i}].name", f"duplicate segment name {seg.name!r}")
        seen_names.add(seg.name)
        if len(seg.members) < 2:
            raise SpecError(f"segments[{i}].members", "a segment needs two or more members")
        for j, member in enumerate(seg.members):
            _check_endpoint(f"segments[{i}].members[{j}]", member, nodes)
    used: dict[tuple[str, str], str] = {}
    addrs: dict[Any, str] = {}
    macs: dict[str, str] = {}
    for path, ep in _interfaces(lab):
        key = (ep.node, ep.ifname)
        if key in used:
            raise SpecError(f"{path}.ifname", f"{ep.node}:{ep.ifname} is already {used[key]}")
        used[key] = path
        for k, iface in enumerate(ep.interfaces()):
            if iface.ip in addrs:
                raise SpecError(
                    f"{path}.addresses[{k}]", f"{iface.ip} is already on {addrs[iface.ip]}"
                )
            addrs[iface.ip] = f"{path} ({ep.node}:{ep.ifname})"
        if ep.mac is not None:
            mac = ep.mac.lower()
            if mac in macs:
                raise SpecError(f"{path}.mac", f"{ep.mac} is already on {macs[mac]}")
            macs[mac] = f"{path} ({ep.node}:{ep.ifname})"
    for i, node in enumerate(topo.nodes):
        for j, route in enumerate(node.routes):
            if route.dst == "default":
                continue
            dst = ipaddress.ip_network(route.dst)
            via = ipaddress.ip_address(route.via)
            if dst.version != via.version:
                raise SpecError(
                    f"nodes[{i}].routes[{j}].via",
                    f"gateway {via} is IPv{via.version} but {dst} is IPv{dst.version}",
                )
    return lab
