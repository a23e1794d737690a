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

from rawstack_harness.topology.presets import line3, pair
from rawstack_harness.topology.spec import (
    Endpoint,
    Link,
    Node,
    Route,
    SpecError,
    Topology,
    validate,
)

SpecLike = Union[Topology, Mapping[str, object], str, Path]
PRESETS: Mapping[str, Callable[[], Topology]] = {"pair": pair, "line3": line3}

_TOP_KEYS = {"name", "nodes", "links"}
_NODE_KEYS = {"name", "sysctls", "routes"}
_ROUTE_KEYS = {"dst", "via"}
_LINK_KEYS = {"a", "b"}
_EP_KEYS = {"node", "ifname", "addresses", "mac", "mtu"}


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
    )


def _endpoint(path: str, raw: object) -> Endpoint:
    m = _mapping(path, raw, _EP_KEYS, {"node"})
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
        lm = _mapping(f"links[{i}]", raw_link, _LINK_KEYS, _LINK_KEYS)
        links.append(Link(_endpoint(f"links[{i}].a", lm["a"]), _endpoint(f"links[{i}].b", lm["b"])))
    name = _str("name", m.get("name", "topo"))
    return validate(Topology(nodes=nodes, links=tuple(links), name=name))


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

    return {
        "name": topo.name,
        "nodes": [
            {
                "name": n.name,
                "sysctls": dict(n.sysctls),
                "routes": [{"dst": r.dst, "via": r.via} for r in n.routes],
            }
            for n in topo.nodes
        ],
        "links": [{"a": ep(lk.a), "b": ep(lk.b)} for lk in topo.links],
    }
