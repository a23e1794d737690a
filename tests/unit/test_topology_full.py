"""The fully populated spec: the issue's example loads; each new check names its field."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from rawstack_harness.topology import Impairment, SpecError, Topology, from_dict, load, to_dict

from rawstack.peers.registry import ALL_PEERS as PEERS

LAB = """
name: lab
nodes:
  - name: a
    peers: [http, udp, chao, icmp]
  - name: r
    sysctls: {net.ipv4.ip_forward: "1"}
  - name: b
    peers: all
  - name: c
links:
  - a: {node: a, addresses: [10.0.1.2/24, fd00:1::2/64]}
    b: {node: r, addresses: [10.0.1.1/24, fd00:1::1/64]}
    impair: {delay: 20ms, jitter: 2ms, loss: 1%, duplicate: 0.5%, reorder: 5%, rate: 10mbit}
  - a: {node: r, ifname: eth1, addresses: [10.0.2.1/24]}
    b: {node: b, addresses: [10.0.2.2/24]}
    impair: {a: {delay: 5ms}, b: {loss: 10%}}
segments:
  - name: lan
    members:
      - {node: a, ifname: eth1, addresses: [10.9.0.1/24]}
      - {node: b, ifname: eth1, addresses: [10.9.0.2/24]}
      - {node: c, ifname: eth0, addresses: [10.9.0.3/24], impair: {loss: 1%}}
"""


def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(LAB)
    return copy.deepcopy(loaded)


def test_the_example_loads() -> None:
    topo = from_dict(raw())
    assert topo.node("a").peers == PEERS
    assert topo.node("b").peers == PEERS
    assert topo.node("r").peers == ()
    first, second = topo.links
    assert first.impair.a == first.impair.b
    assert first.impair.a.rate_bps == 10_000_000
    assert second.impair.a == Impairment(delay_us=5000, delay_line=True)
    assert second.impair.b == Impairment(loss=0.1)
    (lan,) = topo.segments
    assert [m.node for m in lan.members] == ["a", "b", "c"]
    assert lan.members[2].impair.a.loss == 0.01
    assert topo.node("r").sysctls == (("net.ipv4.ip_forward", "1"),)
    # A node's interfaces include its segment members (addresses, ifnames).
    assert [e.ifname for e in topo.endpoints("a")] == ["eth0", "eth1"]


def test_to_dict_round_trips_peers_impairment_and_segments() -> None:
    topo = from_dict(raw())
    assert from_dict(to_dict(topo)) == topo
    assert isinstance(load(to_dict(topo)), Topology)
    assert to_dict(topo)["links"][1]["impair"] == {"a": {"delay": "5ms"}, "b": {"loss": "10%"}}


def test_peers_keep_registry_order() -> None:
    r = raw()
    r["nodes"][0]["peers"] = ["icmp", "udp"]
    assert from_dict(r).node("a").peers == ("udp", "icmp")


def _set(r: dict[str, Any], path: list[Any], value: Any) -> None:
    for key in path[:-1]:
        r = r[key]
    r[path[-1]] = value


@pytest.mark.parametrize(
    ("where", "value", "path", "words"),
    [
        (["nodes", 0, "peers"], ["ssh"], "nodes[0].peers[0]", "not a peer"),
        (["nodes", 0, "peers"], ["udp", "udp"], "nodes[0].peers[1]", "listed twice"),
        (["nodes", 2, "peers"], "some", "nodes[2].peers", "expected 'all' or a list"),
        (["links", 0, "impair", "delay"], "20", "links[0].impair.delay", "not a time"),
        (["segments", 0, "name"], "LAN", "segments[0].name", "not a segment name"),
        (
            ["segments", 0, "members", 0, "node"],
            "z",
            "segments[0].members[0].node",
            "not a declared",
        ),
        (
            ["segments", 0, "members", 2, "impair"],
            {"loss": "x"},
            "segments[0].members[2].impair.loss",
            "not a percentage",
        ),
        (["segments", 0, "members", 0, "vlan"], 5, "segments[0].members[0]", "unknown key"),
    ],
)
def test_bad_fields_are_named(where: list[Any], value: Any, path: str, words: str) -> None:
    r = raw()
    _set(r, where, value)
    with pytest.raises(SpecError, match=words) as err:
        from_dict(r)
    assert err.value.path == path


def test_a_segment_needs_two_members() -> None:
    r = raw()
    r["segments"][0]["members"] = r["segments"][0]["members"][:1]
    with pytest.raises(SpecError, match="two or more members") as err:
        from_dict(r)
    assert err.value.path == "segments[0].members"


def test_the_same_interface_on_a_link_and_a_segment() -> None:
    r = raw()
    r["segments"][0]["members"][0]["ifname"] = "eth0"  # a:eth0 is links[0].a
    with pytest.raises(SpecError, match=r"a:eth0 is used twice \(also links\[0\]\.a\)") as err:
        from_dict(r)
    assert err.value.path == "segments[0].members[0].ifname"


def test_the_same_address_on_two_interfaces() -> None:
    r = raw()
    r["segments"][0]["members"][1]["addresses"] = ["10.9.0.9/24", "10.0.1.1/24"]
    with pytest.raises(SpecError, match=r"10\.0\.1\.1 is already on links\[0\]\.b \(r:eth0\)") as e:
        from_dict(r)
    assert e.value.path == "segments[0].members[1].addresses[1]"


def test_the_same_ipv6_address_in_another_spelling() -> None:
    r = raw()
    r["links"][1]["b"]["addresses"] = ["fd00:1:0::2/64"]
    with pytest.raises(SpecError, match="fd00:1::2 is already on links") as err:
        from_dict(r)
    assert err.value.path == "links[1].b.addresses[0]"


def test_the_same_mac_on_two_interfaces() -> None:
    r = raw()
    r["links"][0]["a"]["mac"] = "02:00:00:00:00:01"
    r["segments"][0]["members"][2]["mac"] = "02:00:00:00:00:01"
    with pytest.raises(SpecError, match=r"already on links\[0\]\.a \(a:eth0\)") as err:
        from_dict(r)
    assert err.value.path == "segments[0].members[2].mac"


def test_a_route_via_a_gateway_of_the_other_family() -> None:
    r = raw()
    r["nodes"][3]["routes"] = [
        {"dst": "default", "via": "10.9.0.1"},
        {"dst": "fd00:2::/64", "via": "10.9.0.1"},
    ]
    with pytest.raises(
        SpecError, match=r"gateway 10\.9\.0\.1 is IPv4 but fd00:2::/64 is IPv6"
    ) as e:
        from_dict(r)
    assert e.value.path == "nodes[3].routes[1].via"


def test_same_family_routes_pass() -> None:
    r = raw()
    r["nodes"][3]["routes"] = [{"dst": "fd00:2::/64", "via": "fd00:1::1"}]
    assert from_dict(r).node("c").routes[0].via == "fd00:1::1"
