"""The batched netlink build: odd link orders work, a refused request leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness.backends.linux.runs import NS_PREFIX
from rawstack_harness.backends.linux.runs import LinuxRun as Run
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology import from_dict, pair

pytestmark = pytest.mark.netns


def _ep(node: str, ifname: str, addr: str) -> dict[str, Any]:
    return {"node": node, "ifname": ifname, "addresses": [addr]}


def test_triangle_and_a_link_inside_one_node(netns_topology: Callable[..., Any]) -> None:
    # c-a is declared with c first although a is built first: a must create it anyway.
    spec = {
        "nodes": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "links": [
            {"a": _ep("a", "ab", "10.1.0.1/24"), "b": _ep("b", "ba", "10.1.0.2/24")},
            {"a": _ep("b", "bc", "10.2.0.1/24"), "b": _ep("c", "cb", "10.2.0.2/24")},
            {"a": _ep("c", "ca", "10.3.0.1/24"), "b": _ep("a", "ac", "10.3.0.2/24")},
            {"a": _ep("c", "loop0", "10.4.0.1/24"), "b": _ep("c", "loop1", "10.4.0.2/24")},
        ],
    }
    net = netns_topology(spec)
    for src, dst in (("a", "10.1.0.2"), ("b", "10.2.0.2"), ("c", "10.3.0.2"), ("a", "10.3.0.1")):
        out = net[src].run(["ping", "-c1", "-W2", dst], capture_output=True, text=True)
        assert out.returncode == 0, f"{src} -> {dst}: {out.stdout}{out.stderr}"
    links = json.loads(
        net["c"].run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    )
    names = {link["ifname"]: link for link in links}
    assert {"lo", "cb", "ca", "loop0", "loop1"} <= set(names)
    assert all("UP" in names[n]["flags"] for n in ("lo", "cb", "ca", "loop0", "loop1"))
    assert net["c"].ifindex("cb") == names["cb"]["ifindex"]
    assert net["c"].mac("ca") == names["ca"]["address"]
    with pytest.raises(LookupError, match="node c has no interface 'nope'"):
        net["c"].ifindex("nope")


def test_refused_request_is_named_and_nothing_is_left(netns_run: Run) -> None:
    from rawstack_harness.backends.linux.nodes import build

    # A valid spec the kernel refuses: the gateway is on none of a's subnets. (The same
    # address twice is refused by the spec's validation already, before anything exists.)
    spec = from_dict(
        {
            "nodes": [{"name": "a", "routes": [{"dst": "10.9.0.0/24", "via": "192.168.99.1"}]}],
            "links": [
                {
                    "a": {"node": "a", "addresses": ["10.0.0.1/24"]},
                    "b": {"node": "a", "ifname": "eth1", "addresses": ["10.0.0.2/24"]},
                }
            ],
        }
    )
    # Only this run's names: other runs (xdist workers, other jobs) share /run/netns.
    mine = f"{NS_PREFIX}{netns_run.id}"
    before = {n for n in os.listdir("/run/netns") if n.startswith(mine)}
    with pytest.raises(HarnessError) as info:
        build(spec, netns_run)
    # Newer kernels add their extended-ack text in parentheses.
    assert str(info.value).startswith(
        "netlink: add route 10.9.0.0/24 via 192.168.99.1 in node a: Network is unreachable"
    ), info.value
    assert {n for n in os.listdir("/run/netns") if n.startswith(mine)} - before == set()
    assert [e for e in netns_run.manifest.live() if e["kind"] == "netns"] == []


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2's `ip`")
def test_destroy_kills_a_process_the_harness_did_not_start(netns_run: Run) -> None:
    from rawstack_harness.backends.linux.nodes import build

    net = build(pair(), netns_run)
    try:
        ns_link = f"net:[{os.fstat(net['b'].fd).st_ino}]"
        # Its own session, not spawned by the harness: only the /proc scan can find it.
        stray = subprocess.Popen(
            ["ip", "netns", "exec", net["b"].netns, "sleep", "60"], start_new_session=True
        )
        deadline = time.monotonic() + 10
        while _netns_of(stray.pid) != ns_link:  # ip execs sleep once it has entered
            assert stray.poll() is None, "ip netns exec failed"
            assert time.monotonic() < deadline, "never entered b"
            time.sleep(0.01)
    except BaseException:
        net.destroy()
        raise
    try:
        net.destroy()
        assert stray.wait(timeout=5) == -9
    finally:
        if stray.poll() is None:
            stray.kill()
            stray.wait()


def _netns_of(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _read(path: str) -> str:
    with open(path, encoding="ascii") as fh:
        return fh.read()


def test_a_fresh_pair_answers_its_first_packets_at_once() -> None:
    # A link is usable once the kernel has handled its carrier; build() waits for that, so
    # the first ARP request / neighbour solicitation is sent, not dropped (which costs the
    # first packet a 1 s retransmission), and until each IPv6 address's solicited-node group
    # is joined (else a solicitation for it goes unanswered until its retransmission).
    # Before build() waited, ~3% of fresh pairs (of 200)
    # missed their first IPv4 echo and ~3% their first IPv6 one: over 100 pairs, this fails
    # then with a probability above 99%. The kernel answers the echoes (no peers here).
    from rawstack_harness import probes
    from rawstack_harness.backends.linux import nsutil, rtnl
    from rawstack_harness.backends.linux.nodes import build

    run = Run(label="first-packet")
    slow: list[str] = []
    try:
        for k in range(100):
            net = build(pair(f"first{k}"), run)
            try:
                a, b = net["a"], net["b"]
                for node, mine in ((a, "01"), (b, "02")):
                    assert "eth0" in rtnl.links_up(node.netlink()), f"pair {k}: {node.name}"
                    # fd00::1 / fd00::2: their solicited-node groups, where solicitations go.
                    igmp6 = nsutil.in_netns(node.fd, lambda: _read("/proc/thread-self/net/igmp6"))
                    group = f"ff0200000000000000000001ff0000{mine}"
                    assert f"eth0 {group}" in " ".join(igmp6.split()), f"pair {k}: {node.name}"
                for host, echo in (("10.0.0.2", probes.icmp_echo), ("fd00::2", probes.icmp6_echo)):
                    try:
                        echo(a, host, timeout=0.5)  # under the 1 s retransmission
                    except probes.ProbeFailed as exc:
                        slow.append(f"pair {k} {host}: {exc}")
            finally:
                net.destroy()
    finally:
        run.close()
    assert slow == []


def test_etc_netns_made_by_the_first_of_two_overlapping_runs_goes_with_the_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run A creates the hosts-file folder; run B, started while A lives, puts its files in
    # it too, so when A ends the folder is not empty yet; the last run out removes it. A
    # folder and a state root of this test's own: other runs (xdist workers) share the
    # real ones.
    from rawstack_harness.backends.linux import names
    from rawstack_harness.backends.linux.nodes import build

    etc = tmp_path / "etc-netns"
    monkeypatch.setattr(names, "ETC_NETNS", str(etc))
    root = str(tmp_path / "state")
    run_a = Run(root=root, label="first")
    net_a = build(pair("first"), run_a)
    assert not etc.exists()  # written on first use, not at build
    assert net_a["a"].hosts is not None
    assert etc.is_dir()
    run_b = Run(root=root, label="second")
    net_b = build(pair("second"), run_b)
    assert net_b["b"].hosts is not None
    net_a.destroy()
    run_a.close()
    assert sorted(p.name for p in etc.iterdir()) == [net_b["a"].netns, net_b["b"].netns]
    net_b.destroy()
    run_b.close()
    assert not etc.exists()
    assert not os.path.exists(root)


def _my_netns() -> int:
    return os.stat("/proc/thread-self/ns/net").st_ino


def test_a_build_leaves_the_calling_thread_in_its_own_namespace(
    netns_topology: Callable[..., Any],
) -> None:
    # Namespaces are created and sysctls written from the calling thread (no helper
    # thread): it must be back home after, and the nodes must have what was asked.
    before = _my_netns()
    spec = {
        "nodes": [{"name": "a", "sysctls": {"net.ipv4.ip_forward": "1"}}, {"name": "b"}],
        "links": [{"a": _ep("a", "eth0", "10.0.0.1/24"), "b": _ep("b", "eth0", "10.0.0.2/24")}],
    }
    net = netns_topology(spec)
    assert _my_netns() == before
    assert net["a"].sysctl("net.ipv4.ip_forward") == "1"
    assert net["b"].sysctl("net.ipv4.ip_forward") == "0"
    assert net["a"].sysctl("net.ipv6.conf.all.accept_dad") == "0"
    assert {os.stat(net[n].path).st_ino for n in ("a", "b")}.isdisjoint({before})


def test_briefly_returns_home_when_the_work_inside_fails() -> None:
    from rawstack_harness.backends.linux import nsutil

    before = _my_netns()
    inside: list[int] = []

    def fail() -> None:
        inside.append(_my_netns())
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        nsutil.briefly(nsutil.unshare_net, fail)
    assert len(inside) == 1
    assert inside[0] != before
    assert _my_netns() == before
