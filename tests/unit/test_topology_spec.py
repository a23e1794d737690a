"""The topology spec: presets, dict/YAML loading and validation errors naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rawstack_harness.topology import SpecError, from_dict, line3, load_yaml, pair, to_dict
from rawstack_harness.topology.spec import Node, Topology, validate


def _pair_dict() -> dict[str, Any]:
    return to_dict(pair())


def test_pair_defaults() -> None:
    topo = pair()
    assert [n.name for n in topo.nodes] == ["a", "b"]
    (link,) = topo.links
    assert (link.a.node, link.a.ifname, link.a.addresses) == (
        "a",
        "eth0",
        ("10.0.0.1/24", "fd00::1/64"),
    )
    assert (link.b.node, link.b.ifname, link.b.addresses) == (
        "b",
        "eth0",
        ("10.0.0.2/24", "fd00::2/64"),
    )


def test_line3_router_forwards_and_ends_route_through_it() -> None:
    topo = line3()
    assert ("net.ipv4.ip_forward", "1") in topo.node("r").sysctls
    assert {(r.dst, r.via) for r in topo.node("a").routes} >= {("default", "10.0.1.1")}
    assert {(r.dst, r.via) for r in topo.node("b").routes} >= {("default", "10.0.2.1")}
    assert [e.addresses[0] for e in topo.endpoints("r")] == ["10.0.1.1/24", "10.0.2.1/24"]


def test_dict_round_trip() -> None:
    assert from_dict(to_dict(line3())) == line3()


def _with(path: list[Any], value: Any) -> dict[str, Any]:
    raw = _pair_dict()
    target: Any = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw


BAD = [
    (
        ["links", 0, "a", "addresses", 1],
        "10.0.0.300/24",
        "links[0].a.addresses[1]: '10.0.0.300/24' is not an IPv4/IPv6 interface address",
    ),
    (["links", 0, "a", "addresses", 0], "10.0.0.1", "links[0].a.addresses[0]"),
    (["links", 0, "b", "ifname"], "averyveryverylongname", "links[0].b.ifname"),
    (["links", 0, "b", "ifname"], "eth 0", "links[0].b.ifname"),
    (["links", 0, "a", "mac"], "01:00:5e:00:00:01", "links[0].a.mac"),
    (["links", 0, "a", "mac"], "zz:00:00:00:00:01", "links[0].a.mac"),
    (["links", 0, "a", "mtu"], 10, "links[0].a.mtu"),
    (["links", 0, "a", "node"], "c", "links[0].a.node"),
    (["nodes", 1, "name"], "a", "nodes[1].name"),
    (["nodes", 0, "sysctls"], {"kernel.panic": "1"}, "nodes[0].sysctls[0]"),
    (["nodes", 0, "routes"], [{"dst": "default", "via": "nope"}], "nodes[0].routes[0].via"),
    (["nodes", 0, "routes"], [{"dst": "10.1.0.1/24", "via": "10.0.0.2"}], "nodes[0].routes[0].dst"),
]


@pytest.mark.parametrize(("path", "value", "message"), BAD)
def test_bad_field_is_named(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(SpecError) as info:
        from_dict(_with(path, value))
    assert str(info.value).startswith(message)


def test_duplicate_interface_in_one_node() -> None:
    raw = _pair_dict()
    raw["links"].append(raw["links"][0])
    with pytest.raises(SpecError, match=r"^links\[1\]\.a\.ifname: a:eth0 is used twice"):
        from_dict(raw)


@pytest.mark.parametrize(
    ("path", "where"),
    [([], "<top level>"), (["nodes", 0], "nodes[0]"), (["links", 0, "b"], "links[0].b")],
)
def test_unknown_keys_are_named(path: list[Any], where: str) -> None:
    raw = _pair_dict()
    target: Any = raw
    for key in path:
        target = target[key]
    target["adresses"] = []
    with pytest.raises(
        SpecError, match=rf"^{__import__('re').escape(where)}: unknown key\(s\) 'adresses'"
    ):
        from_dict(raw)


def test_missing_required_key() -> None:
    with pytest.raises(SpecError, match=r"^nodes: is required"):
        from_dict({"links": []})


def test_yaml_file(tmp_path: Path) -> None:
    spec = tmp_path / "t.yaml"
    spec.write_text(
        "name: t\nnodes: [{name: x}, {name: y, sysctls: {net.ipv4.ip_forward: 1}}]\n"
        "links:\n  - a: {node: x, addresses: [192.0.2.1/24], mtu: 1400, mac: '02:00:00:00:00:01'}\n"
        "    b: {node: y, ifname: veth-y, addresses: ['2001:db8::2/64']}\n"
    )
    topo = load_yaml(spec)
    assert topo.name == "t"
    assert topo.node("y").sysctls == (("net.ipv4.ip_forward", "1"),)
    assert topo.links[0].a.mtu == 1400
    assert topo.links[0].b.ifname == "veth-y"


def test_yaml_syntax_error_is_a_spec_error(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("nodes: [\n")
    with pytest.raises(SpecError, match="is not valid YAML"):
        load_yaml(spec)


def test_a_spec_found_valid_once_is_not_checked_again_but_a_bad_one_always_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rawstack_harness.topology import spec as spec_mod

    calls: list[object] = []
    real = spec_mod._validate

    def counting(topo: Topology) -> Topology:
        calls.append(topo)
        return real(topo)

    monkeypatch.setattr(spec_mod, "_validate", counting)
    spec_mod._validated.cache_clear()
    good = Topology(nodes=(Node("a"), Node("b")), name="cachetest")
    assert validate(good) is good
    assert validate(Topology(nodes=(Node("a"), Node("b")), name="cachetest")).name == "cachetest"
    assert len(calls) == 1  # equal specs: checked once
    bad = Topology(nodes=(Node("a"), Node("a")), name="cachetest")
    for _ in range(2):
        with pytest.raises(SpecError, match="duplicate node name"):
            validate(bad)
    assert len(calls) == 3
    unhashable = Topology(nodes=[Node("a")], name="cachetest")  # type: ignore[arg-type]
    validate(unhashable)
    validate(unhashable)
    assert len(calls) == 5
