"""``rawstack ping -6`` across the harness's veth pair and the line3 router, against the
kernel's ICMPv6 responder, with iputils ``ping -6`` as the oracle for every line printed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any, Callable

import pytest
from _loopback import skip_if_rootless
from rawstack_harness.clients import rawstack
from rawstack_harness.topology import line3

from rawstack.engines.ping import rtt_summary_us

pytestmark = pytest.mark.netns
REPLY6 = re.compile(
    r"^(?P<size>\d+) bytes from (?P<src>[0-9a-f:]+): icmp_seq=(?P<seq>\d+) "
    r"ttl=(?P<ttl>\d+) time=(?P<ms>\d+(?:\.\d+)?) ms$"
)


def iputils6(node: Any, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    out: subprocess.CompletedProcess[str] = node.run(
        ["ping", "-6", "-n", *args], capture_output=True, text=True, timeout=60
    )
    return out


def timeless(text: str) -> str:
    """Output with every measured time replaced, so two runs can be compared line by line."""
    text = re.sub(r"time=\d+(\.\d+)? ms", "time=T ms", text)
    text = re.sub(r"time \d+ms", "time Nms", text)
    text = re.sub(r"= [\d.]+/[\d.]+/[\d.]+/[\d.]+ ms", "= R ms", text)
    # ", pipe N" says replies overlapped in that run (a loaded machine): timing, not format.
    return re.sub(r", pipe \d+", "", text)


def test_output_is_iputils_ping6s(net: Any) -> None:
    b = net["b"].addr(6)
    theirs = iputils6(net["a"], "-c", "3", "-i", "0.1", b)
    ours = rawstack(net["a"], "ping", "-6", b, "-c", "3", "-i", "0.1")
    assert (ours.returncode, theirs.returncode) == (0, 0), ours.stderr
    assert ours.stdout.startswith(f"PING {b}({b}) 56 data bytes\n64 bytes from {b}: icmp_seq=1")
    assert timeless(ours.stdout) == timeless(theirs.stdout)
    replies = [m for m in map(REPLY6.match, ours.stdout.splitlines()) if m]
    assert [(m["seq"], m["src"], m["ttl"]) for m in replies] == [
        ("1", b, "64"),
        ("2", b, "64"),
        ("3", b, "64"),
    ]


def test_statistics_match_iputils_against_the_kernel(net: Any) -> None:
    """iputils' own reply times fed to our statistics give its rtt line; both runs of ten
    against the kernel's responder give the same counts line."""
    b = net["b"].addr(6)
    theirs = iputils6(net["a"], "-c", "10", "-i", "0.02", b)
    times = [m["ms"] for m in map(REPLY6.match, theirs.stdout.splitlines()) if m]
    ours = rawstack(net["a"], "ping", "-6", b, "-c", "10", "-i", "0.02")
    assert ours.returncode == 0, ours.stderr
    counts = [line for line in ours.stdout.splitlines() if "transmitted" in line]
    their_counts = [line for line in theirs.stdout.splitlines() if "transmitted" in line]
    assert timeless(counts[0]) == timeless(their_counts[0])
    assert counts[0].startswith("10 packets transmitted, 10 received, 0% packet loss")
    if len(times) != 10 or not all(re.fullmatch(r"0\.\d{3}", t) for t in times):
        pytest.skip(f"a reply took >= 1 ms, so iputils printed it rounded: {theirs.stdout}")
    rtts = [int(t.replace(".", "")) for t in times]  # 3 decimals of ms: exact microseconds
    expected = re.search(r"rtt min/avg/max/mdev = (\S+) ms", theirs.stdout)
    assert expected is not None, theirs.stdout
    assert "/".join(f"{v // 1000}.{v % 1000:03d}" for v in rtt_summary_us(rtts)) == expected[1]


def test_hop_limit_exceeded_at_the_router(netns_topology: Callable[..., Any]) -> None:
    net = netns_topology(line3())
    a, b = net["a"], net["b"].addr(6)
    theirs = iputils6(a, "-t", "1", "-c", "2", "-i", "0.05", b)
    ours = rawstack(a, "ping", "-6", "--ttl", "1", "-c", "2", "-i", "0.05", b)
    assert (ours.returncode, theirs.returncode) == (1, 1)
    assert f"From {net['r'].addr(6, 'eth0')} icmp_seq=1 Time exceeded: Hop limit" in ours.stdout
    assert timeless(ours.stdout) == timeless(theirs.stdout)
    # Through the router with the default hop limit: replies, hop limit 63.
    routed = rawstack(a, "ping", "-6", "-c", "1", b, "--json")
    assert json.loads(routed.stdout)["replies"][0]["ttl"] == 63


@pytest.mark.parametrize("size", [1500, 65527])
def test_sizes_past_the_mtu_are_fragmented_and_answered(net: Any, size: int) -> None:
    b = net["b"].addr(6)
    theirs = iputils6(net["a"], "-c", "1", "-s", str(size), b)
    assert " 1 received" in theirs.stdout, theirs.stdout
    out = rawstack(net["a"], "ping", "-6", b, "-c", "2", "-i", "0.1", "-s", str(size), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["received"] == 2
    assert {r["bytes"] for r in result["replies"]} == {size + 8}


def test_address_choice_and_errors_exit_2_as_iputils(net: Any) -> None:
    a, b4, b6 = net["a"], net["b"].addr(), net["b"].addr(6)
    assert rawstack(a, "ping", b6, "-c", "1").stdout.startswith(f"PING {b6}({b6})")  # no -6
    wrong = rawstack(a, "ping", "-4", b6, "-c", "1")
    assert wrong.returncode == 2
    assert "IPv4 address" in wrong.stderr
    assert rawstack(a, "ping", "-6", b4, "-c", "1").returncode == 2
    unroutable = "fd00:99::1"
    assert iputils6(a, "-c", "1", unroutable).returncode == 2
    ours = rawstack(a, "ping", "-6", "-c", "1", unroutable)
    assert ours.returncode == 2
    assert ours.stderr.strip().splitlines() == [
        "rawstack: error: no route to fd00:99::1: Network is unreachable"
    ]


def test_unprivileged_icmpv6_socket(net: Any) -> None:
    a, b = net["a"], net["b"].addr(6)
    # Our own gid only (it covers ICMPv6 ping sockets too): a rootless run maps no other
    # gid, and a range naming an unmapped one is EINVAL.
    gid = os.getgid()
    a.sysctl("net.ipv4.ping_group_range", f"{gid} {gid}")
    out = rawstack(a, "ping", "-6", b, "-c", "2", "-i", "0.1", "--unprivileged", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["received"] == 2
    assert {(r["from"], r["ttl"]) for r in result["replies"]} == {(b, 64)}


def test_unprivileged_icmpv6_socket_outside_the_group_range(net: Any) -> None:
    skip_if_rootless("the empty range is written as '1 0', and gid 1 is not mapped (EINVAL)")
    a, b = net["a"], net["b"].addr(6)
    a.sysctl("net.ipv4.ping_group_range", "1 0")
    denied = rawstack(a, "ping", "-6", b, "-c", "1", "--unprivileged")
    assert denied.returncode == 77
    assert "net.ipv4.ping_group_range" in denied.stderr


def _link_local(node: Any) -> str:
    out = node.run(
        ["ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link"],
        capture_output=True,
        text=True,
    ).stdout.split()
    return str(out[3].split("/")[0])


def test_link_local_peers_print_their_zone_as_iputils(net: Any) -> None:
    a, b = net["a"], net["b"]
    target = f"{_link_local(b)}%eth0"
    theirs = iputils6(a, "-c", "2", "-i", "0.1", target)
    ours = rawstack(a, "ping", "-6", target, "-c", "2", "-i", "0.1")
    assert (ours.returncode, theirs.returncode) == (0, 0), ours.stderr
    assert f"64 bytes from {target}: icmp_seq=1 ttl=64" in ours.stdout
    assert timeless(ours.stdout) == timeless(theirs.stdout)
    closed = rawstack(a, "syn-probe", target, "9", "--json")
    assert json.loads(closed.stdout)["state"] == "closed", closed.stderr
