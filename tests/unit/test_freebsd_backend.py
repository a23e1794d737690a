"""The FreeBSD backend: the pure plan (exact commands), placeholders and dead-run cleanup.

Executing a plan needs FreeBSD with VIMAGE; tests/bsd/ does that in the Vagrant box.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness.backends import freebsd
from rawstack_harness.backends.freebsd import (
    Step,
    freebsd_sysctl,
    host_ifname,
    jail_name,
    placeholders,
    plan,
    reap_dead_runs,
    record_capture,
    substitute,
)
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology import Endpoint, Link, Node, Route, SpecError, Topology, line3, pair

JA, JB = "rshab12cd_a", "rshab12cd_b"


def argvs(steps: tuple[Step, ...]) -> list[list[str]]:
    return [list(s.argv) for s in steps]


def test_pair_setup_is_exact() -> None:
    p = plan(pair(), "ab12cd")
    assert p.jails == (("a", JA), ("b", JB))
    assert argvs(p.setup) == [
        ["jail", "-c", f"name={JA}", "host.hostname=a", "vnet", "persist"],
        ["jexec", JA, "ifconfig", "lo0", "inet", "127.0.0.1/8", "up"],
        ["jexec", JA, "sysctl", "net.inet6.ip6.dad_count=0"],
        ["jail", "-c", f"name={JB}", "host.hostname=b", "vnet", "persist"],
        ["jexec", JB, "ifconfig", "lo0", "inet", "127.0.0.1/8", "up"],
        ["jexec", JB, "sysctl", "net.inet6.ip6.dad_count=0"],
        ["ifconfig", "epair", "create"],
        ["ifconfig", "{link0.a}", "name", "rsab12cdl0a"],
        ["ifconfig", "{link0.b}", "name", "rsab12cdl0b"],
        ["ifconfig", "rsab12cdl0a", "vnet", JA],
        ["jexec", JA, "ifconfig", "rsab12cdl0a", "name", "eth0"],
        ["jexec", JA, "ifconfig", "eth0", "inet6", "-ifdisabled"],
        ["jexec", JA, "ifconfig", "eth0", "inet", "10.0.0.1/24", "alias"],
        ["jexec", JA, "ifconfig", "eth0", "inet6", "fd00::1/64", "alias"],
        ["jexec", JA, "ifconfig", "eth0", "up"],
        ["ifconfig", "rsab12cdl0b", "vnet", JB],
        ["jexec", JB, "ifconfig", "rsab12cdl0b", "name", "eth0"],
        ["jexec", JB, "ifconfig", "eth0", "inet6", "-ifdisabled"],
        ["jexec", JB, "ifconfig", "eth0", "inet", "10.0.0.2/24", "alias"],
        ["jexec", JB, "ifconfig", "eth0", "inet6", "fd00::2/64", "alias"],
        ["jexec", JB, "ifconfig", "eth0", "up"],
    ]
    assert [s.capture for s in p.setup if s.capture] == ["link0"]


def test_pair_teardown_is_exact() -> None:
    p = plan(pair(), "ab12cd")
    assert argvs(p.teardown) == [
        # in the jail first (vnet.subr's vnet_cleanup): both ends go, nothing returns later
        ["jexec", JA, "ifconfig", "eth0", "destroy"],
        ["jexec", JA, "ifconfig", "eth0", "name", "rsab12cdl0a"],
        ["jexec", JB, "ifconfig", "eth0", "name", "rsab12cdl0b"],
        ["jail", "-r", JA],
        ["jail", "-r", JB],
        ["ifconfig", "rsab12cdl0a", "destroy"],
        ["ifconfig", "rsab12cdl0b", "destroy"],
        ["ifconfig", "{link0.a}", "destroy"],
    ]
    # Only the host-side fallbacks are checked: they must succeed or find nothing left.
    assert [s.checked for s in p.teardown] == [False] * 5 + [True] * 3
    assert p.teardown[0].disposes == ("rsab12cdl0a", "rsab12cdl0b")
    assert p.returnable == ((JA, "rsab12cdl0a"), (JB, "rsab12cdl0b"))


def test_line3_teardown_destroys_each_link_in_its_a_jail() -> None:
    p = plan(line3(), "7")
    destroys = [a for a in argvs(p.teardown) if a[-1] == "destroy" and a[0] == "jexec"]
    ja, jr = jail_name("7", "a"), jail_name("7", "r")
    assert destroys == [
        ["jexec", ja, "ifconfig", "eth0", "destroy"],
        ["jexec", jr, "ifconfig", "eth1", "destroy"],
    ]
    order = argvs(p.teardown)
    assert all(order.index(d) < order.index(["jail", "-r", ja]) for d in destroys)


def test_line3_routes_and_forwarding() -> None:
    p = plan(line3(), "7")
    jr = jail_name("7", "r")
    setup = argvs(p.setup)
    assert ["jexec", jr, "sysctl", "net.inet.ip.forwarding=1"] in setup
    assert ["jexec", jr, "sysctl", "net.inet6.ip6.forwarding=1"] in setup
    ja, jb = jail_name("7", "a"), jail_name("7", "b")
    assert setup[-4:] == [
        ["jexec", ja, "route", "-n", "add", "-inet", "default", "10.0.1.1"],
        ["jexec", ja, "route", "-n", "add", "-inet6", "default", "fd00:1::1"],
        ["jexec", jb, "route", "-n", "add", "-inet", "default", "10.0.2.1"],
        ["jexec", jb, "route", "-n", "add", "-inet6", "default", "fd00:2::1"],
    ]
    # r's second link end is eth1, created from the second epair
    assert ["jexec", jr, "ifconfig", "rs7l1a", "name", "eth1"] in setup
    assert ["ifconfig", "{link1.a}", "name", "rs7l1a"] in setup


def test_mac_mtu_and_network_route() -> None:
    topo = Topology(
        nodes=(Node("a", routes=(Route("10.9.0.0/16", "10.0.0.2"),)), Node("b")),
        links=(
            Link(
                Endpoint("a", "veth1", ("10.0.0.1/24",), mac="02:AA:00:00:00:01", mtu=9000),
                Endpoint("b", "eth0"),
            ),
        ),
    )
    setup = argvs(plan(topo, "x1").setup)
    ja, jb = jail_name("x1", "a"), jail_name("x1", "b")
    assert setup[10:15] == [
        ["jexec", ja, "ifconfig", "rsx1l0a", "name", "veth1"],
        ["jexec", ja, "ifconfig", "veth1", "ether", "02:aa:00:00:00:01"],
        ["jexec", ja, "ifconfig", "veth1", "mtu", "9000"],
        ["jexec", ja, "ifconfig", "veth1", "inet", "10.0.0.1/24", "alias"],
        ["jexec", ja, "ifconfig", "veth1", "up"],
    ]
    assert ["jexec", jb, "ifconfig", "eth0", "inet6", "-ifdisabled"] not in setup
    assert setup[-1] == ["jexec", ja, "route", "-n", "add", "-inet", "10.9.0.0/16", "10.0.0.2"]


def test_unique_names_fit_ifnamsiz() -> None:
    assert len(host_ifname("zzzzzzzz", 999, "b")) <= 15


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("net.ipv4.ip_forward", "net.inet.ip.forwarding"),
        ("net.ipv6.conf.all.forwarding", "net.inet6.ip6.forwarding"),
        ("net.inet.icmp.bmcastecho", "net.inet.icmp.bmcastecho"),
    ],
)
def test_sysctl_names(name: str, expected: str) -> None:
    assert freebsd_sysctl(name) == expected


def test_linux_only_sysctl_is_a_spec_error() -> None:
    topo = Topology(nodes=(Node("a", sysctls=(("net.core.somaxconn", "10"),)),))
    with pytest.raises(SpecError, match=r"nodes\[0\]\.sysctls\[0\].*no FreeBSD equivalent"):
        plan(topo, "ab")


@pytest.mark.parametrize("run_id", ["", "ABC", "a_b", "123456789"])
def test_bad_run_id(run_id: str) -> None:
    with pytest.raises(ValueError, match="run id"):
        plan(pair(), run_id)


def test_invalid_spec_is_rejected_before_planning() -> None:
    with pytest.raises(SpecError):
        plan(Topology(nodes=()), "ab")


def test_substitute_and_capture() -> None:
    captured: dict[str, str] = {}
    assert substitute(("ifconfig", "{link0.a}", "destroy"), captured) is None
    record_capture("link0", "epair12a\n", captured)
    assert captured == {"link0.a": "epair12a", "link0.b": "epair12b"}
    assert substitute(("ifconfig", "{link0.b}", "name", "x"), captured) == (
        "ifconfig",
        "epair12b",
        "name",
        "x",
    )
    with pytest.raises(HarnessError, match="not epairNa"):
        record_capture("link1", "ifconfig: SIOCIFCREATE2: File exists", captured)


def test_placeholders_and_partial_capture() -> None:
    argv = ("ifconfig", "{link0.a}", "name", "{link12.b}")
    assert placeholders(argv) == ["link0.a", "link12.b"]
    assert placeholders(("ifconfig", "epair", "create")) == []
    assert substitute(argv, {"link0.a": "epair1a"}) is None


def test_package_reexports_every_public_class_and_function() -> None:
    from rawstack_harness.backends.freebsd import nodes, planning, probes, runs

    for module in (planning, runs, nodes, probes):
        own = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__
        ]
        assert own, module.__name__
        for name in own:
            assert name in freebsd.__all__, f"{module.__name__}.{name} not re-exported"
            assert getattr(freebsd, name) is getattr(module, name)


@pytest.mark.skipif(sys.platform.startswith("freebsd"), reason="checks the non-FreeBSD refusal")
def test_unavailable_off_freebsd() -> None:
    reason = freebsd.missing_requirement()
    assert reason is not None
    assert "needs FreeBSD" in reason


def _fake_run(calls: list[list[str]]) -> Any:
    def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    return run


def _write_run(root: Path, run_id: str, captured: dict[str, str]) -> Path:
    run_dir = root / run_id
    run_dir.mkdir()
    (run_dir / "lock").touch()
    teardown = [list(s.argv) for s in plan(pair(), run_id).teardown]
    state = {"teardown": teardown, "captured": captured}
    (run_dir / "state.json").write_text(json.dumps(state))
    return run_dir


def test_reap_dead_runs_skips_live_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", _fake_run(calls))
    dead = _write_run(tmp_path, "dead01", {"link0.a": "epair3a", "link0.b": "epair3b"})
    live = _write_run(tmp_path, "live01", {})
    (tmp_path / ".new-abc").mkdir()  # being created: never touched
    fd = os.open(live / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        assert reap_dead_runs(str(tmp_path)) == ["dead01"]
    finally:
        os.close(fd)
    assert not dead.exists()
    assert live.exists()
    assert (tmp_path / ".new-abc").exists()
    expected = argvs(plan(pair(), "dead01").teardown)
    assert calls == [*expected[:-1], ["ifconfig", "epair3a", "destroy"]]
    assert all("live01" not in " ".join(c) for c in calls)


def test_clean_dead_run_without_captured_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", _fake_run(calls))
    _write_run(tmp_path, "dead02", {})
    assert reap_dead_runs(str(tmp_path)) == ["dead02"]
    # The kernel's epairN name was never recorded (or already renamed): not destroyed by it.
    assert not any(c[1].startswith("epair") for c in calls if c[0] == "ifconfig")


def test_reap_dead_runs_missing_root(tmp_path: Path) -> None:
    assert reap_dead_runs(str(tmp_path / "nope")) == []
