"""Building a :class:`Topology` from a dict (JSON, YAML) with exact field paths in errors.

Shape::

    name: demo                       # optional
    nodes:
      - name: a
        sysctls: {net.ipv4.ip_forward: "1"}
        routes: [{dst: default, via: 10.0.1.1}]
      - name: b
    links:
      - a: {node: a, ifname: eth0, addresses: [10.0.0.1/24], mac: "02:00:00:00:00:01", mtu: 1500}
        b: {node: b, ifname: eth0, addresses: [10.0.0.2/24]}

Unknown keys are errors (a typo must not silently drop a setting).

:func:`load` takes whatever a user may hand the harness: a :class:`Topology`, a dict, the
name of a built-in preset (``"pair"``, ``"line3"``: reachable from any project, with no path
into this repository), or the path of a YAML/JSON file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Union

from rawstack_harness.topology.impair import LinkImpairment, parse_link_impair
from rawstack_harness.topology.presets import line3, pair
from rawstack_harness.topology.spec import (
    Endpoint,
    Link,
    Member,
    Node,
    Route,
    Segment,
    SpecError,
    Topology,
    validate,
)

from rawstack.peers.registry import ALL_PEERS

SpecLike = Union[Topology, Mapping[str, object], str, Path]
PRESETS: Mapping[str, Callable[[], Topology]] = {"pair": pair, "line3": line3}

_TOP_KEYS = {"name", "nodes", "links", "segments"}
_NODE_KEYS = {"name", "sysctls", "routes", "peers"}
_ROUTE_KEYS = {"dst", "via"}
_LINK_KEYS = {"a", "b", "impair"}
_EP_KEYS = {"node", "ifname", "addresses", "mac", "mtu"}
_SEGMENT_KEYS = {"name", "members"}
_MEMBER_KEYS = _EP_KEYS | {"impair"}


def _mapping(path: str, value: object, allowed: set[str], required: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise SpecError(
            path or "<top level>",
            f"unknown key(s) {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(sorted(allowed))}",
        )
    missing = sorted(required - set(value))
    if missing:
        raise SpecError(f"{path}.{missing[0]}" if path else missing[0], "is required")
    return value


def _list(path: str, value: object) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise SpecError(path, f"expected a list, got {type(value).__name__}")
    return list(value)


def _str(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise SpecError(path, f"expected a string, got {value!r}")
    return value


def _sysctls(path: str, value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"expected a mapping of sysctl names to values, got {value!r}")
    out = []
    for key, val in value.items():
        if isinstance(val, bool) or not isinstance(val, (str, int)):
            raise SpecError(f"{path}.{key}", f"expected a string or integer, got {val!r}")
        out.append((_str(path, key), str(val)))
    return tuple(out)


def _node(path: str, raw: object) -> Node:
    m = _mapping(path, raw, _NODE_KEYS, {"name"})
    routes = []
    for i, r in enumerate(_list(f"{path}.routes", m.get("routes", []))):
        rm = _mapping(f"{path}.routes[{i}]", r, _ROUTE_KEYS, _ROUTE_KEYS)
        routes.append(
            Route(
                _str(f"{path}.routes[{i}].dst", rm["dst"]),
                _str(f"{path}.routes[{i}].via", rm["via"]),
            )
        )
    return Node(
        name=_str(f"{path}.name", m["name"]),
        sysctls=_sysctls(f"{path}.sysctls", m.get("sysctls", {})),
        routes=tuple(routes),
        peers=_peers(f"{path}.peers", m.get("peers", [])),
    )


def _peers(path: str, value: object) -> tuple[str, ...]:
    """``all`` or a list of peer names, in the registry's order (validate checks the names)."""
    if value == "all":
        return ALL_PEERS
    if not isinstance(value, (list, tuple)):
        raise SpecError(path, f"expected 'all' or a list of {', '.join(ALL_PEERS)}, got {value!r}")
    names = [_str(f"{path}[{i}]", v) for i, v in enumerate(_list(path, value))]
    known = [p for p in ALL_PEERS if p in names]
    # Unknown or repeated names stay, in their place, for validate() to name with their path.
    return tuple(known) if sorted(known) == sorted(names) else tuple(names)


def _endpoint(path: str, raw: object, keys: set[str] = _EP_KEYS) -> Endpoint:
    m = _mapping(path, raw, keys, {"node"})
    addrs = tuple(str(a) for a in _list(f"{path}.addresses", m.get("addresses", [])))
    mac = m.get("mac")
    mtu = m.get("mtu")
    if mtu is not None and (isinstance(mtu, bool) or not isinstance(mtu, int)):
        raise SpecError(f"{path}.mtu", f"{mtu!r} is not an integer")
    return Endpoint(
        node=_str(f"{path}.node", m["node"]),
        ifname=_str(f"{path}.ifname", m.get("ifname", "eth0")),
        addresses=addrs,
        mac=None if mac is None else _str(f"{path}.mac", mac),
        mtu=mtu,
    )


def from_dict(raw: object) -> Topology:
    """Build and validate a topology from plain data; raise :class:`SpecError`."""
    m = _mapping("", raw, _TOP_KEYS, {"nodes"})
    nodes = tuple(_node(f"nodes[{i}]", n) for i, n in enumerate(_list("nodes", m["nodes"])))
    links = []
    for i, raw_link in enumerate(_list("links", m.get("links", []))):
        lm = _mapping(f"links[{i}]", raw_link, _LINK_KEYS, {"a", "b"})
        a, b = _endpoint(f"links[{i}].a", lm["a"]), _endpoint(f"links[{i}].b", lm["b"])
        links.append(Link(a, b, _impair(f"links[{i}].impair", lm)))
    segments = []
    for i, raw_seg in enumerate(_list("segments", m.get("segments", []))):
        sm = _mapping(f"segments[{i}]", raw_seg, _SEGMENT_KEYS, _SEGMENT_KEYS)
        members = []
        for j, raw_member in enumerate(_list(f"segments[{i}].members", sm["members"])):
            mpath = f"segments[{i}].members[{j}]"
            ep = _endpoint(mpath, raw_member, _MEMBER_KEYS)
            impair = _impair(f"{mpath}.impair", raw_member)
            members.append(Member(ep.node, ep.ifname, ep.addresses, ep.mac, ep.mtu, impair))
        segments.append(Segment(_str(f"segments[{i}].name", sm["name"]), tuple(members)))
    name = _str("name", m.get("name", "topo"))
    topo = Topology(nodes=nodes, links=tuple(links), name=name, segments=tuple(segments))
    return validate(topo)


def _impair(path: str, parent: Mapping[str, Any]) -> LinkImpairment:
    return parse_link_impair(path, parent["impair"]) if "impair" in parent else LinkImpairment()


def load_yaml(path: str | Path) -> Topology:
    """Read a YAML (or JSON) spec file; a parse failure is a :class:`SpecError` too."""
    import yaml

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError("", f"cannot read {path}: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError("", f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return from_dict(raw)


def load(spec: SpecLike) -> Topology:
    """A validated topology from a Topology, a dict, a preset name or a spec file's path.

    A bare word (no ``/``, no file suffix) names a preset; anything else is a path, so a
    file called ``line3`` in the working directory is reached as ``./line3``.
    """
    if isinstance(spec, Topology):
        return validate(spec)
    if isinstance(spec, Mapping):
        return from_dict(spec)
    if isinstance(spec, str) and "/" not in spec and not Path(spec).suffix:
        if spec not in PRESETS:
            raise SpecError(
                "", f"no preset named {spec!r} (presets: {', '.join(PRESETS)}; a file: ./{spec})"
            )
        return PRESETS[spec]()
    return load_yaml(spec)


def to_dict(topo: Topology) -> dict[str, Any]:
    """The inverse of :func:`from_dict` (for ``status --json`` and keepers)."""

    def ep(e: Endpoint) -> dict[str, Any]:
        d: dict[str, Any] = {"node": e.node, "ifname": e.ifname, "addresses": list(e.addresses)}
        if e.mac is not None:
            d["mac"] = e.mac
        if e.mtu is not None:
            d["mtu"] = e.mtu
        return d

    def node(n: Node) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": n.name,
            "sysctls": dict(n.sysctls),
            "routes": [{"dst": r.dst, "via": r.via} for r in n.routes],
        }
        if n.peers:
            d["peers"] = list(n.peers)
        return d

    def with_impair(d: dict[str, Any], impair: LinkImpairment) -> dict[str, Any]:
        if impair:
            d["impair"] = impair.to_spec()
        return d

    out: dict[str, Any] = {
        "name": topo.name,
        "nodes": [node(n) for n in topo.nodes],
        "links": [with_impair({"a": ep(lk.a), "b": ep(lk.b)}, lk.impair) for lk in topo.links],
    }
    if topo.segments:
        out["segments"] = [
            {"name": s.name, "members": [with_impair(ep(m), m.impair) for m in s.members]}
            for s in topo.segments
        ]
    return out
