"""The declarative topology: nodes (network namespaces) joined by links (veth pairs).

Theory of operation: a spec is plain frozen data. :func:`validate` checks all of it and raises
:class:`SpecError` naming the field path (``links[0].a.addresses[1]``) before a backend creates
anything, so a bad spec never leaves half a topology behind.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Union

from rawstack_harness.errors import SpecError
from rawstack_harness.topology.impair import LinkImpairment

from rawstack.peers.registry import ALL_PEERS

__all__ = [
    "Endpoint",
    "Link",
    "Member",
    "Node",
    "Route",
    "Segment",
    "SpecError",
    "Topology",
    "validate",
]

IfAddress = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

IFNAMSIZ = 16  # the kernel's limit includes the NUL, so 15 usable characters
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_NODE_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")  # also a segment's name
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_SYSCTL_RE = re.compile(r"^net(\.[A-Za-z0-9_-]+)+$")
MIN_MTU, MAX_MTU = 68, 65535


@dataclass(frozen=True)
class Route:
    """A static route in a node: ``dst`` (CIDR or ``default``) via ``via`` (a gateway)."""

    dst: str
    via: str


@dataclass(frozen=True)
class Node:
    """A network namespace with its own sysctls (only ``net.*``), routes and peers.

    ``peers`` (names from the peer registry, in its order) are served by ``serve-all`` in the
    node and probed from a neighbour before the test starts; ICMP is rawstack's (kernel echo
    off) exactly when ``icmp`` is among them.
    """

    name: str
    sysctls: tuple[tuple[str, str], ...] = ()
    routes: tuple[Route, ...] = ()
    peers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """One end of a link: ``node:ifname`` with addresses (``10.0.0.1/24``), MAC and MTU."""

    node: str
    ifname: str = "eth0"
    addresses: tuple[str, ...] = ()
    mac: str | None = None
    mtu: int | None = None

    def interfaces(self) -> list[IfAddress]:
        """The addresses as :mod:`ipaddress` interfaces (call after :func:`validate`)."""
        return list(_interfaces(self.addresses))


@dataclass(frozen=True)
class Link:
    """A veth pair between two endpoints; ``impair.a`` is what a's frames suffer, ``.b`` b's."""

    a: Endpoint
    b: Endpoint
    impair: LinkImpairment = field(default_factory=LinkImpairment)


@dataclass(frozen=True)
class Member(Endpoint):
    """A segment member: an interface on the segment; ``impair.a`` is the member's egress."""

    impair: LinkImpairment = field(default_factory=LinkImpairment)


@dataclass(frozen=True)
class Segment:
    """One L2 broadcast domain (a bridge of the harness's own) joining two or more members."""

    name: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Topology:
    """Nodes, the links between them and the L2 segments they share."""

    nodes: tuple[Node, ...]
    links: tuple[Link, ...] = ()
    name: str = "topo"
    segments: tuple[Segment, ...] = ()

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def endpoints(self, node: str) -> list[Endpoint]:
        """Every interface of ``node``: link endpoints in link order, then segment members."""
        found: list[Endpoint] = []
        for link in self.links:
            found.extend(e for e in (link.a, link.b) if e.node == node)
        for seg in self.segments:
            found.extend(m for m in seg.members if m.node == node)
        return found

    def interfaces(self) -> list[tuple[str, Endpoint]]:
        """Every interface the spec declares with its field path, in spec order."""
        out: list[tuple[str, Endpoint]] = []
        for i, link in enumerate(self.links):
            out += [(f"links[{i}].a", link.a), (f"links[{i}].b", link.b)]
        for i, seg in enumerate(self.segments):
            out += [(f"segments[{i}].members[{j}]", m) for j, m in enumerate(seg.members)]
        return out


def _check_address(path: str, text: object) -> IfAddress:
    if not isinstance(text, str) or "/" not in text:
        raise SpecError(path, f"{text!r} is not an IPv4/IPv6 interface address (need a /prefix)")
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise SpecError(path, f"{text!r} is not an IPv4/IPv6 interface address") from None


def _check_endpoint(path: str, ep: Endpoint, nodes: set[str]) -> None:
    if ep.node not in nodes:
        raise SpecError(f"{path}.node", f"{ep.node!r} is not a declared node")
    if not isinstance(ep.ifname, str) or not _IFNAME_RE.match(ep.ifname):
        raise SpecError(
            f"{path}.ifname",
            f"{ep.ifname!r} is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)",
        )
    if ep.ifname == "lo":
        raise SpecError(f"{path}.ifname", "'lo' is the loopback interface")
    for i, addr in enumerate(ep.addresses):
        _check_address(f"{path}.addresses[{i}]", addr)
    if ep.mac is not None:
        mac = ep.mac.lower() if isinstance(ep.mac, str) else ep.mac
        if not isinstance(mac, str) or not _MAC_RE.match(mac):
            raise SpecError(f"{path}.mac", f"{ep.mac!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
        if int(mac[:2], 16) & 1:
            raise SpecError(f"{path}.mac", f"{ep.mac!r} is a multicast MAC address")
    if ep.mtu is not None and (
        not isinstance(ep.mtu, int) or isinstance(ep.mtu, bool) or not MIN_MTU <= ep.mtu <= MAX_MTU
    ):
        raise SpecError(f"{path}.mtu", f"{ep.mtu!r} is not an MTU in {MIN_MTU}..{MAX_MTU}")


def _check_node(path: str, node: Node) -> None:
    if not isinstance(node.name, str) or not _NODE_RE.match(node.name):
        raise SpecError(
            f"{path}.name", f"{node.name!r} is not a node name (a-z then a-z0-9, at most 12)"
        )
    for i, (key, value) in enumerate(node.sysctls):
        if not isinstance(key, str) or not _SYSCTL_RE.match(key) or ".." in key:
            raise SpecError(f"{path}.sysctls[{i}]", f"{key!r} is not a net.* sysctl name")
        if not isinstance(value, str) or "\n" in value:
            raise SpecError(f"{path}.sysctls[{i}]", f"{value!r} is not a one-line value")
    for i, route in enumerate(node.routes):
        rpath = f"{path}.routes[{i}]"
        if route.dst != "default":
            try:
                ipaddress.ip_network(route.dst, strict=True)
            except (ValueError, TypeError):
                raise SpecError(
                    f"{rpath}.dst", f"{route.dst!r} is not a network or 'default'"
                ) from None
        try:
            via = ipaddress.ip_address(route.via)
        except (ValueError, TypeError):
            raise SpecError(f"{rpath}.via", f"{route.via!r} is not an IP address") from None
        if route.dst != "default":
            dst = ipaddress.ip_network(route.dst)
            if dst.version != via.version:
                raise SpecError(
                    f"{rpath}.via",
                    f"gateway {via} is IPv{via.version} but {dst} is IPv{dst.version}",
                )
    seen: set[str] = set()
    for i, peer in enumerate(node.peers):
        if peer not in ALL_PEERS:
            raise SpecError(
                f"{path}.peers[{i}]", f"{peer!r} is not a peer ({', '.join(ALL_PEERS)}, or all)"
            )
        if peer in seen:
            raise SpecError(f"{path}.peers[{i}]", f"{peer!r} is listed twice")
        seen.add(peer)


@functools.lru_cache(maxsize=256)
def _interfaces(addresses: tuple[str, ...]) -> tuple[IfAddress, ...]:
    # Parsed once per distinct tuple: a build asks for them a dozen times, every test.
    return tuple(ipaddress.ip_interface(a) for a in addresses)


def validate(topo: Topology) -> Topology:
    """Check every field; return ``topo`` unchanged or raise :class:`SpecError`.

    A spec equal to one already found valid is not checked again (the fixtures validate
    the same preset every test); one that cannot be hashed (a list where a tuple belongs)
    is checked every time.
    """
    try:
        hash(topo)
    except TypeError:
        return _validate(topo)
    _validated(topo)
    return topo


@functools.lru_cache(maxsize=256)
def _validated(topo: Topology) -> bool:
    _validate(topo)
    return True


def _validate(topo: Topology) -> Topology:
    if not topo.nodes:
        raise SpecError("nodes", "a topology needs at least one node")
    seen: set[str] = set()
    for i, node in enumerate(topo.nodes):
        _check_node(f"nodes[{i}]", node)
        if node.name in seen:
            raise SpecError(f"nodes[{i}].name", f"duplicate node name {node.name!r}")
        seen.add(node.name)
    for i, link in enumerate(topo.links):
        for side in ("a", "b"):
            _check_endpoint(f"links[{i}].{side}", getattr(link, side), seen)
    names: set[str] = set()
    for i, seg in enumerate(topo.segments):
        if not isinstance(seg.name, str) or not _NODE_RE.match(seg.name):
            raise SpecError(
                f"segments[{i}].name",
                f"{seg.name!r} is not a segment name (a-z then a-z0-9, at most 12)",
            )
        if seg.name in names:
            raise SpecError(f"segments[{i}].name", f"duplicate segment name {seg.name!r}")
        names.add(seg.name)
        if len(seg.members) < 2:
            raise SpecError(f"segments[{i}].members", "a segment needs two or more members")
        for j, member in enumerate(seg.members):
            _check_endpoint(f"segments[{i}].members[{j}]", member, seen)
    _check_unique(topo)
    return topo


def _check_unique(topo: Topology) -> None:
    """No interface, IP address or MAC address twice (each error names the first use)."""
    used: dict[tuple[str, str], str] = {}
    addrs: dict[object, str] = {}
    macs: dict[str, str] = {}
    for path, ep in topo.interfaces():
        where = f"{path} ({ep.node}:{ep.ifname})"
        if (ep.node, ep.ifname) in used:
            raise SpecError(
                f"{path}.ifname",
                f"{ep.node}:{ep.ifname} is used twice (also {used[ep.node, ep.ifname]})",
            )
        used[ep.node, ep.ifname] = path
        for k, iface in enumerate(ep.interfaces()):
            if iface.ip in addrs:
                raise SpecError(
                    f"{path}.addresses[{k}]", f"{iface.ip} is already on {addrs[iface.ip]}"
                )
            addrs[iface.ip] = where
        if ep.mac is not None:
            mac = ep.mac.lower()
            if mac in macs:
                raise SpecError(f"{path}.mac", f"{ep.mac} is already on {macs[mac]}")
            macs[mac] = where
