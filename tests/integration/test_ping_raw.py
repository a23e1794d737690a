"""``rawstack ping`` across the harness's veth pair: against the kernel's responder, iputils'
numbers, the unprivileged socket, silence, and missing privilege for every raw command."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from typing import Any

import pytest
from _loopback import skip_if_rootless
from rawstack_harness.clients import rawstack, rawstack_argv

from rawstack.engines.ping import rtt_summary_us

pytestmark = pytest.mark.netns
SILENT = "10.0.0.99"  # on pair()'s 10.0.0.0/24, nobody answers ARP: a silent host
REPLY_LINE = re.compile(
    r"^64 bytes from (?P<src>[\d.]+): icmp_seq=(?P<seq>\d+) ttl=(?P<ttl>\d+) "
    r"time=(?P<ms>\d+(?:\.\d+)?) ms$"  # fewer decimals from 1 ms on, as iputils prints
)


def test_our_ping_against_the_kernel(net: Any) -> None:
    b = net["b"].addr()
    out = rawstack(net["a"], "ping", b, "-c", "3", "-i", "0.1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"PING {b} ({b}) 56(84) bytes of data."
    replies = [m for m in map(REPLY_LINE.match, lines[1:4]) if m]
    assert [int(m["seq"]) for m in replies] == [1, 2, 3]
    assert {(m["src"], m["ttl"]) for m in replies} == {(b, "64")}
    assert lines[4:6] == ["", f"--- {b} ping statistics ---"]
    assert re.fullmatch(r"3 packets transmitted, 3 received, 0% packet loss, time \d+ms", lines[6])
    assert re.fullmatch(r"rtt min/avg/max/mdev = (\d+\.\d{3}/){3}\d+\.\d{3} ms", lines[7])


def test_summary_arithmetic_matches_iputils(net: Any) -> None:
    """Feed iputils' own per-reply times to our statistics; its rtt line must come out.

    Deterministic: under 1 ms iputils prints each time in exact microseconds, and our
    arithmetic is iputils' own (tests/unit/test_ping_iputils_arithmetic.py compares the two
    on thousands of sets against iputils' compiled C).
    """
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    argv = ["ping", "-n", "-c", "10", "-i", "0.02", net["b"].addr()]
    out = net["a"].run(argv, capture_output=True, text=True).stdout
    times = [m["ms"] for m in map(REPLY_LINE.match, out.splitlines()) if m]
    if len(times) != 10 or not all(re.fullmatch(r"0\.\d{3}", t) for t in times):
        pytest.skip(f"a reply took >= 1 ms, so iputils printed it rounded: {out}")
    rtts = [int(t.replace(".", "")) for t in times]  # 3 decimals of ms = exact microseconds
    expected = re.search(r"rtt min/avg/max/mdev = (\S+) ms", out)
    assert expected is not None, out
    ours = "/".join(f"{v // 1000}.{v % 1000:03d}" for v in rtt_summary_us(rtts))
    assert ours == expected.group(1)


def test_rtt_is_timed_like_iputils(net: Any) -> None:
    """Kernel arrival stamps: our RTTs sit near iputils', not ~0.3 ms above (wake-up time)."""
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    b = net["b"].addr()
    theirs = net["a"].run(
        ["ping", "-n", "-q", "-c", "20", "-i", "0.01", b], capture_output=True, text=True
    )
    ours = rawstack(net["a"], "ping", b, "-c", "20", "-i", "0.01", "--json")
    assert ours.returncode == 0, ours.stderr
    floor = re.search(r"rtt min/avg/max/mdev = ([\d.]+)/", theirs.stdout)
    assert floor is not None, theirs.stdout
    best = min(r["rtt_ms"] for r in json.loads(ours.stdout)["replies"])
    # Minima, since other jobs load this machine: a best case still paying for a Python
    # wake-up would be hundreds of microseconds above iputils' best.
    assert best < float(floor.group(1)) + 0.1, (best, theirs.stdout)


def test_silent_host_exits_1_with_full_loss(net: Any) -> None:
    out = rawstack(net["a"], "ping", SILENT, "-c", "2", "-i", "0.05", "-W", "0.3", "--json")
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert (result["transmitted"], result["received"], result["loss_percent"]) == (2, 0, 100.0)
    assert "100% packet loss" in result["summary"][1]
    assert not any(line.startswith("rtt") for line in result["summary"])


def test_unprivileged_socket(net: Any) -> None:
    a, b = net["a"], net["b"].addr()
    # Our own gid only: in a rootless run's user namespace no other gid is mapped, and a
    # range naming an unmapped gid is EINVAL (net/ipv4/sysctl_net_ipv4.c).
    a.sysctl("net.ipv4.ping_group_range", f"{os.getgid()} {os.getgid()}")
    out = rawstack(a, "ping", b, "-c", "2", "-i", "0.1", "--unprivileged", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["received"] == 2
    assert {r["from"] for r in result["replies"]} == {b}
    assert {r["ttl"] for r in result["replies"]} == {64}


def test_unprivileged_socket_outside_the_group_range(net: Any) -> None:
    skip_if_rootless("the empty range is written as '1 0', and gid 1 is not mapped (EINVAL)")
    a, b = net["a"], net["b"].addr()
    a.sysctl("net.ipv4.ping_group_range", "1 0")  # nobody, root included
    denied = rawstack(a, "ping", b, "-c", "1", "--unprivileged")
    assert denied.returncode == 77
    assert len(denied.stderr.strip().splitlines()) == 1
    assert "net.ipv4.ping_group_range" in denied.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["ping", "{b}", "-c", "1"],
        ["syn-probe", "{b}", "80"],
        ["icmp", "respond"],
        ["chao", "serve", "--iface", "eth0"],
        ["chao", "send", "--iface", "eth0"],
        ["serve-all", "--iface", "eth0", "--http-port", "18080", "--udp-port", "18080"],
    ],
)
def test_missing_cap_net_raw_is_exit_77_one_line(net: Any, argv: list[str]) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop privileges")
    # Still root, but with CAP_NET_RAW gone from the bounding set (so from the process's
    # capabilities after exec): exactly "missing CAP_NET_RAW", and unlike another uid it can
    # still read the checkout wherever it lives (a 0700 temp dir in CI).
    no_net_raw = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"]
    args = [arg.format(b=net["b"].addr()) for arg in argv]
    out = net["a"].run(
        [*no_net_raw, *rawstack_argv(*args)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 77, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "CAP_NET_RAW" in lines[0]
    assert "sudo" in lines[0]
    assert out.stdout == ""


def iputils(net: Any, *args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    out: subprocess.CompletedProcess[str] = net["a"].run(
        ["ping", "-n", *args], capture_output=True, text=True
    )
    return out


@pytest.mark.parametrize("size", [1473, 65507])
def test_sizes_past_the_mtu_are_fragmented_and_answered(net: Any, size: int) -> None:
    b = net["b"].addr()
    theirs = iputils(net, "-c", "1", "-s", str(size), b)
    assert " 1 received" in theirs.stdout, theirs.stdout  # the kernel answers this size
    out = rawstack(net["a"], "ping", b, "-c", "2", "-i", "0.1", "-s", str(size))
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert out.stdout.splitlines()[0] == f"PING {b} ({b}) {size}({size + 28}) bytes of data."
    assert f"{size + 8} bytes from {b}: icmp_seq=2 ttl=64 time=" in out.stdout
    assert "2 packets transmitted, 2 received, 0% packet loss" in out.stdout


def test_size_above_one_datagram_is_refused(net: Any) -> None:
    out = rawstack(net["a"], "ping", net["b"].addr(), "-c", "1", "-s", "65508")
    assert out.returncode == 2
    assert "0..65507" in out.stderr


def test_data_too_short_for_a_timestamp_is_untimed_like_iputils(net: Any) -> None:
    b = net["b"].addr()
    theirs = iputils(net, "-c", "2", "-i", "0.1", "-s", "8", b).stdout
    out = rawstack(net["a"], "ping", b, "-c", "2", "-i", "0.1", "-s", "8")
    assert out.returncode == 0, out.stderr

    def replies(text: str) -> list[str]:
        return [line for line in text.splitlines() if " bytes from " in line]

    assert (
        replies(out.stdout)
        == replies(theirs)
        == [f"16 bytes from {b}: icmp_seq={seq} ttl=64" for seq in (1, 2)]
    )
    assert "rtt" not in out.stdout
    assert "rtt" not in theirs


def test_summary_time_leaves_out_the_final_wait(net: Any) -> None:
    # Three requests 0.1 s apart to a silent host, then -W 1.2: iputils counts from the first
    # request to the last (~200 ms), never the wait for replies that do not come (>= 1400).
    out = rawstack(net["a"], "ping", SILENT, "-c", "3", "-i", "0.1", "-W", "1.2", "--json")
    assert out.returncode == 1
    elapsed = json.loads(out.stdout)["time_ms"]
    assert 190 <= elapsed < 900, elapsed


def test_network_unreachable_exits_2_as_iputils(net: Any) -> None:
    nowhere = "192.0.2.1"  # TEST-NET-1: no route in the pair's namespaces
    theirs = iputils(net, "-c", "1", nowhere)
    assert theirs.returncode == 2, theirs
    out = rawstack(net["a"], "ping", nowhere, "-c", "1")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"rawstack: error: finding a route to {nowhere}: Network is unreachable"
    )


def test_broadcast_destination_is_said_for_what_it_is(net: Any) -> None:
    theirs = iputils(net, "-c", "1", "10.0.0.255")
    assert theirs.returncode == 2  # "Do you want to ping broadcast? Then -b."
    out = rawstack(net["a"], "ping", "10.0.0.255", "-c", "1")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "10.0.0.255 is a broadcast address" in lines[0]
    assert "CAP_NET_RAW" not in lines[0]


# Runs in node a: one raw IPv4 write to the subnet's broadcast address, without SO_BROADCAST.
RAW_TO_BROADCAST = r"""
from rawstack.codec import ECHO_REQUEST, PROTO_ICMP, IcmpEcho, IPv4
from rawstack.errors import RawstackError
from rawstack.quirks import host_quirks
from rawstack.sockets.raw import open_raw_ip_sender
sender = open_raw_ip_sender(host_quirks())
packet = IPv4("10.0.0.1", "10.0.0.255", PROTO_ICMP, IcmpEcho(ECHO_REQUEST, 1, 1).encode())
try:
    sender.send(packet.encode(), "10.0.0.255")
except RawstackError as exc:
    print(type(exc).__name__, exc.exit_code, exc)
"""


def test_a_raw_send_to_a_broadcast_address_says_so_not_missing_privilege(net: Any) -> None:
    import sys

    out = net["a"].run([sys.executable, "-c", RAW_TO_BROADCAST], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("UsageError 2 sending a raw IPv4 packet to 10.0.0.255: "), out
    assert "10.0.0.255 is a broadcast address (EACCES" in out.stdout
    assert "CAP_NET_RAW" not in out.stdout
