"""The declarative topology: nodes (network namespaces) joined by links (veth pairs).

Theory of operation: a spec is plain frozen data. :func:`validate` checks all of it and raises
:class:`SpecError` naming the field path (``links[0].a.addresses[1]``) before a backend creates
anything, so a bad spec never leaves half a topology behind.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Union

from rawstack_harness.errors import SpecError

__all__ = ["Endpoint", "Link", "Node", "Route", "SpecError", "Topology", "validate"]

IfAddress = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

IFNAMSIZ = 16  # the kernel's limit includes the NUL, so 15 usable characters
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_NODE_RE = re.compile(r"^[a-z][a-z0-9]{0,11}$")
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
    """A network namespace with its own sysctls (only ``net.*``) and routes."""

    name: str
    sysctls: tuple[tuple[str, str], ...] = ()
    routes: tuple[Route, ...] = ()


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
        return [ipaddress.ip_interface(a) for a in self.addresses]


@dataclass(frozen=True)
class Link:
    """A veth pair between two endpoints."""

    a: Endpoint
    b: Endpoint


@dataclass(frozen=True)
class Topology:
    """Nodes and the links between them."""

    nodes: tuple[Node, ...]
    links: tuple[Link, ...] = ()
    name: str = "topo"

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def endpoints(self, node: str) -> list[Endpoint]:
        """Every link endpoint that lives in ``node``, in link order."""
        found: list[Endpoint] = []
        for link in self.links:
            found.extend(e for e in (link.a, link.b) if e.node == node)
        return found


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
            ipaddress.ip_address(route.via)
        except (ValueError, TypeError):
            raise SpecError(f"{rpath}.via", f"{route.via!r} is not an IP address") from None


def validate(topo: Topology) -> Topology:
    """Check every field; return ``topo`` unchanged or raise :class:`SpecError`."""
    if not topo.nodes:
        raise SpecError("nodes", "a topology needs at least one node")
    seen: set[str] = set()
    for i, node in enumerate(topo.nodes):
        _check_node(f"nodes[{i}]", node)
        if node.name in seen:
            raise SpecError(f"nodes[{i}].name", f"duplicate node name {node.name!r}")
        seen.add(node.name)
    ifnames: set[tuple[str, str]] = set()
    for i, link in enumerate(topo.links):
        for side in ("a", "b"):
            ep: Endpoint = getattr(link, side)
            path = f"links[{i}].{side}"
            _check_endpoint(path, ep, seen)
            if (ep.node, ep.ifname) in ifnames:
                raise SpecError(f"{path}.ifname", f"{ep.node}:{ep.ifname} is used twice")
            ifnames.add((ep.node, ep.ifname))
    return topo
