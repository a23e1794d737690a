"""``rawstack icmp respond`` across the harness's veth pair, against iputils ping and our own."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from _loopback import TCPDUMP_ROOTLESS, skip_if_rootless
from _peer_logs import assert_drops_rate_limited
from rawstack_harness import Node
from rawstack_harness.clients import rawstack, rawstack_argv
from rawstack_harness.supervise import read_ready

pytestmark = pytest.mark.netns
PYTHON = sys.executable


def start_responder(node: Node, *extra: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``rawstack icmp respond`` in ``node``, returned once its ready line is out."""
    proc = node.popen(
        rawstack_argv("icmp", "respond", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (ready,) = read_ready(proc, 1, 20)
    assert ready["peer"] == "icmp"
    return proc, ready


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM the responder; its exit status and stderr."""
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err


# How long ping waits past its last request when nothing answered: where silence is the
# expected outcome, that whole wait is spent, and a reply across the veth takes well under a
# millisecond; so half a second is ample to see one that should not be there.
SILENCE_WAIT = "0.5"


def silent_ping(net: Any, version: int = 4) -> str:
    """One iputils ping to b that nobody should answer; returns once its request has left.

    A request waits in a's neighbour queue until ARP/ND resolves b (a lost solicitation is
    retried a second later): ping may end first, and the request would then reach a
    responder started after it. So this waits until a knows b's link-layer address.
    """
    if version == 4:
        out = iputils_ping(net, count=1, wait=SILENCE_WAIT)
    else:
        out = iputils_ping6(net, count=1, wait=SILENCE_WAIT)
    show = ["ip", f"-{version}", "neigh", "show", "to", net["b"].addr(version), "dev", "eth0"]
    deadline = time.monotonic() + 20
    while "lladdr" not in net["a"].run(show, capture_output=True, text=True).stdout:
        assert time.monotonic() < deadline, f"a never resolved b over IPv{version}"
        time.sleep(0.01)
    return out


def iputils_ping(net: Any, count: int = 3, wait: str = "2", interval: str = "0.05") -> str:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    argv = ["ping", "-n", "-c", str(count), "-i", interval, "-W", wait, net["b"].addr()]
    out: str = net["a"].run(argv, capture_output=True, text=True).stdout
    return out


def test_iputils_ping_gets_exactly_our_replies(net: Any) -> None:
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    # Kernel echo off: without our responder nobody answers.
    assert " 0 received" in silent_ping(net)
    server, _ = start_responder(net["b"])
    out = iputils_ping(net)
    assert "3 packets transmitted, 3 received, 0% packet loss" in out, out
    assert "DUP!" not in out
    assert re.search(rf"64 bytes from {re.escape(net['b'].addr())}: icmp_seq=1 ttl=64 time=", out)
    code, err = stop(server)
    assert code == 0
    assert "icmp_echo_ignore_all" not in err  # no warning when the kernel is quiet
    assert '"answered": 3' in err


def test_kernel_echo_on_warns_and_duplicates(net: Any) -> None:
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "0")
    server, _ = start_responder(net["b"])
    out = iputils_ping(net, count=3, interval="0.2")  # time for our duplicate before the next
    # The warning is true: the kernel and we both answer each request (iputils stops at
    # the last first reply, so the final duplicate may not be counted).
    dups = re.search(r"\+(\d+) duplicates", out)
    assert dups is not None, out
    assert int(dups.group(1)) >= 2
    code, err = stop(server)
    assert code == 0
    assert "icmp_echo_ignore_all is 0" in err


def test_iface_limits_answers_to_that_interface(net: Any) -> None:
    b = net["b"]
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, ready = start_responder(b, "--iface", "lo")
    assert ready["iface"] == "lo"
    assert " 0 received" in silent_ping(net)  # arrives on eth0, not lo
    local = b.run(["ping", "-n", "-c", "1", "-W", "2", "127.0.0.1"], capture_output=True, text=True)
    assert " 1 received" in local.stdout
    stop(server)
    bad = rawstack(b, "icmp", "respond", "--iface", "rsd-none")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "rawstack: error: no such interface: rsd-none"


def test_our_ping_against_our_responder(net: Any) -> None:
    b = net["b"].addr()
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(net["b"], "--iface", "eth0")
    out = rawstack(net["a"], "ping", b, "-c", "3", "-i", "0.1", "-s", "100", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["transmitted"], result["received"], result["duplicates"]) == (3, 3, 0)
    assert [r["seq"] for r in result["replies"]] == [1, 2, 3]
    assert all(r["from"] == b and r["bytes"] == 108 for r in result["replies"])
    assert all(r["ttl"] == 64 for r in result["replies"])
    code, _ = stop(server)
    assert code == 0


def test_random_packets_never_stop_the_responder(net: Any) -> None:
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(net["b"])
    # Echo requests with random payloads and bad checksums, via scapy-free raw bytes.
    script = r"""
import random, socket, struct, sys
rng = random.Random(7)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for i in range(200):
    body = rng.randbytes(rng.randrange(0, 64))
    head = bytes([8, rng.randrange(0, 3)]) + rng.randbytes(2) + rng.randbytes(4)
    s.sendto(head + body, (sys.argv[1], 0))
"""
    sent = net["a"].run([PYTHON, "-c", script, net["b"].addr()], capture_output=True, text=True)
    assert sent.returncode == 0, sent.stderr
    out = iputils_ping(net, count=1)
    assert " 1 received" in out, out
    assert server.poll() is None
    code, err = stop(server)
    assert code == 0
    assert "Traceback" not in err


def test_a_flood_of_bad_packets_is_logged_rate_limited_with_counts(net: Any) -> None:
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(net["b"])
    # 300 echo requests with a wrong ICMP checksum: each one is a "dropped" line.
    script = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for i in range(300):
    s.sendto(bytes([8, 0, 0x12, 0x34, 0, 1]) + i.to_bytes(2, "big") + b"flood", (sys.argv[1], 0))
"""
    sent = net["a"].run([PYTHON, "-c", script, net["b"].addr()], capture_output=True, text=True)
    assert sent.returncode == 0, sent.stderr
    assert " 1 received" in iputils_ping(net, count=1)  # the queue has drained: all were read
    code, err = stop(server)
    assert code == 0
    assert_drops_rate_limited(err, "[icmp] dropped")


def ping_argv(*args: str, wait: str = "2") -> list[str]:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    return ["ping", "-n", "-W", wait, *args]


@pytest.mark.parametrize(("size", "count"), [(1473, 3), (65000, 2), (65507, 1)])
def test_requests_larger_than_the_mtu_get_fragmented_replies(
    net: Any, size: int, count: int
) -> None:
    b = net["b"]
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(b)
    argv = ping_argv("-c", str(count), "-i", "0.05", "-s", str(size), b.addr())
    out = net["a"].run(argv, capture_output=True, text=True).stdout
    assert f"{count} packets transmitted, {count} received, 0% packet loss" in out, out
    assert f"{size + 8} bytes from {b.addr()}: icmp_seq=1 ttl=64" in out
    assert "DUP!" not in out
    code, err = stop(server)
    assert code == 0
    assert "not sent" not in err
    assert f'"answered": {count}' in err


def test_directed_broadcast_follows_icmp_echo_ignore_broadcasts(net: Any) -> None:
    a, b = net["a"], net["b"]
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(b)
    argv = ping_argv("-b", "-c", "2", "-i", "0.05", "10.0.0.255")
    b.sysctl("net.ipv4.icmp_echo_ignore_broadcasts", "1")
    silent = ping_argv("-b", "-c", "2", "-i", "0.05", "10.0.0.255", wait=SILENCE_WAIT)
    quiet = a.run(silent, capture_output=True, text=True).stdout
    assert "2 packets transmitted, 0 received" in quiet, quiet  # as the kernel: silent
    b.sysctl("net.ipv4.icmp_echo_ignore_broadcasts", "0")
    loud = a.run(argv, capture_output=True, text=True).stdout
    assert "2 packets transmitted, 2 received" in loud, loud
    # From b's own address, never from the broadcast address (RFC 1122 3.2.1.3).
    assert f"64 bytes from {b.addr()}: icmp_seq=1" in loud
    assert "from 10.0.0.255" not in loud
    code, err = stop(server)
    assert code == 0
    assert "icmp_echo_ignore_broadcasts is 1" in err
    assert '"answered": 2' in err


# Runs in node a: one echo request with the source address given, through IP_HDRINCL.
SPOOF = r"""
import socket, sys
from rawstack.codec import ECHO_REQUEST, PROTO_ICMP, IcmpEcho, IPv4
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
echo = IcmpEcho(ECHO_REQUEST, 77, 1, b"from a broadcast address").encode()
s.sendto(IPv4(sys.argv[1], sys.argv[2], PROTO_ICMP, echo, ident=5).encode(), (sys.argv[2], 0))
"""


def test_a_request_from_a_broadcast_source_is_not_answered_and_says_why(net: Any) -> None:
    b = net["b"]
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(b)
    sent = net["a"].run(
        [PYTHON, "-c", SPOOF, "10.0.0.255", b.addr()], capture_output=True, text=True
    )
    assert sent.returncode == 0, sent.stderr
    assert " 1 received" in iputils_ping(net, count=1)  # read after the spoofed one
    code, err = stop(server)
    assert code == 0
    assert "CAP_NET_RAW" not in err, err
    assert "permission denied" not in err
    assert "ignored echo request from 10.0.0.255, a group address: not answered" in err
    assert '"answered": 1' in err


def route_lines(out: str, tag: str) -> list[str]:
    """iputils' option block after the first reply (``RR:`` or ``TS:``), one entry a line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(tag))
    block = [lines[start][len(tag) :].strip()]
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        block.append(line.strip())
    return block


@pytest.mark.parametrize(
    ("flags", "tag"), [(["-R"], "RR:"), (["-T", "tsandaddr"], "TS:"), (["-T", "tsonly"], "TS:")]
)
def test_record_route_and_timestamp_options_are_reflected_like_the_kernel(
    net: Any, flags: list[str], tag: str
) -> None:
    a, b = net["a"], net["b"]
    argv = ping_argv("-c", "1", *flags, b.addr())
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "0")
    kernel = a.run(argv, capture_output=True, text=True).stdout
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(b)
    ours = a.run(argv, capture_output=True, text=True).stdout
    stop(server)
    assert " 1 received" in ours, ours
    theirs, mine = route_lines(kernel, tag), route_lines(ours, tag)
    if tag == "RR:":
        assert mine == theirs, (kernel, ours)  # the same hosts, in the same order
    else:
        # Timestamps differ run to run (ours is taken in user space, a few ms after the
        # kernel's input stamp on a loaded machine); the entries and addresses must not.
        def shape(block: list[str]) -> list[str]:
            return [re.sub(r"-?\d+( absolute| ms)?$", "N", line) for line in block]

        assert shape(mine) == shape(theirs), (kernel, ours)
        deltas = [int(m[1]) for line in mine[1:] if (m := re.search(r"(-?\d+)$", line))]
        assert deltas, ours
        assert all(0 <= d < 1000 for d in deltas), ours  # iputils prints ms between stamps


def test_our_ping_and_responder_fragment_both_ways(net: Any) -> None:
    # Both ends write through IP_HDRINCL, so both must fragment themselves.
    b = net["b"].addr()
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(net["b"])
    out = rawstack(net["a"], "ping", b, "-c", "2", "-i", "0.1", "-s", "4000", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["transmitted"], result["received"]) == (2, 2)
    assert all(r["bytes"] == 4008 for r in result["replies"])
    code, err = stop(server)
    assert code == 0
    assert '"answered": 2' in err


def test_tshark_sees_a_reply_in_two_fragments_it_reassembles(net: Any, tmp_path: Path) -> None:
    if shutil.which("tshark") is None or shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump to capture and tshark to decode the fragments")
    skip_if_rootless(TCPDUMP_ROOTLESS)
    from rawstack_harness.supervise import read_lines

    a, b = net["a"], net["b"]
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(b)
    pcap = tmp_path / "reply.pcap"
    dump = a.popen(
        ["tcpdump", "-i", "eth0", "-nn", "-U", "-c", "2", "-w", str(pcap), f"ip src {b.addr()}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Its readiness signal: "listening on" on stderr.
    while b"listening on" not in read_lines(dump, 1, 10, stream=dump.stderr)[0]:
        pass
    ping = a.run(ping_argv("-c", "1", "-s", "1473", b.addr()), capture_output=True, text=True)
    assert " 1 received" in ping.stdout, ping.stdout
    dump.communicate(timeout=10)
    stop(server)
    fields = ["ip.id", "ip.flags.mf", "ip.frag_offset", "icmp.type", "icmp.seq"]
    decoded = subprocess.run(
        ["tshark", "-n", "-r", str(pcap), "-T", "fields", "-E", "separator=,",
         *(x for f in fields for x in ("-e", f))],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    rows = [line.split(",") for line in decoded.stdout.splitlines() if line]
    assert len(rows) == 2, decoded
    (id1, mf1, off1, type1, _), (id2, mf2, off2, type2, seq2) = rows
    assert id1 == id2  # one datagram
    assert (mf1, off1, mf2, off2) == ("1", "0", "0", "185")  # 185 units of 8: 1480 bytes
    # tshark reassembles: the ICMP echo reply (type 0, seq 1) shows on the last fragment.
    assert (type1, type2, seq2) == ("", "0", "1")


def iputils_ping6(net: Any, count: int = 3, wait: str = "2", interval: str = "0.05") -> str:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    argv = ["ping", "-6", "-n", "-c", str(count), "-i", interval, "-W", wait, net["b"].addr(6)]
    out: str = net["a"].run(argv, capture_output=True, text=True).stdout
    return out


def test_iputils_ping6_gets_exactly_our_replies(net: Any) -> None:
    b = net["b"]
    b.sysctl("net.ipv6.icmp.echo_ignore_all", "1")
    b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    assert " 0 received" in silent_ping(net, 6)  # kernel echo off: nobody answers
    server, _ = start_responder(b)
    out = iputils_ping6(net)
    assert "3 packets transmitted, 3 received, 0% packet loss" in out, out
    assert "DUP!" not in out
    assert re.search(rf"64 bytes from {re.escape(b.addr(6))}: icmp_seq=1 ttl=64 time=", out)
    big = (
        net["a"]
        .run(
            ["ping", "-6", "-n", "-c", "1", "-s", "3000", b.addr(6)], capture_output=True, text=True
        )
        .stdout
    )
    assert "3008 bytes from" in big, big  # answered past the MTU: our reply, fragmented
    code, err = stop(server)
    assert code == 0
    assert "net.ipv6.icmp.echo_ignore_all is 0" not in err
    assert '"answered": 4' in err


def test_kernel_icmpv6_echo_on_warns_and_duplicates(net: Any) -> None:
    net["b"].sysctl("net.ipv6.icmp.echo_ignore_all", "0")
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    # Neighbour discovery first: on a loaded machine a lost solicitation held the requests
    # for a second, and ping (-c) ended on the kernel's three replies before ours arrived.
    warm = ["ping", "-6", "-n", "-c", "1", "-w", "10", net["b"].addr(6)]  # retried until answered
    warmed = net["a"].run(warm, capture_output=True, text=True)
    assert warmed.returncode == 0, warmed.stdout  # a reply came (maybe to a retry)
    server, _ = start_responder(net["b"])
    out = iputils_ping6(net, count=3, interval="0.2")  # time for our duplicate before the next
    dups = re.search(r"\+(\d+) duplicates", out)
    assert dups is not None, out
    assert int(dups.group(1)) >= 2
    code, err = stop(server)
    assert code == 0
    assert "net.ipv6.icmp.echo_ignore_all is 0" in err


def test_iputils_ping6_to_a_link_local_address_gets_our_reply(
    netns_topology: Callable[..., Any],
) -> None:
    """r has a link-local address on each of its two links: a reply finds its way back only
    through the interface the request came in on (its zone, RFC 4007 11)."""
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    from rawstack_harness.topology import line3

    net = netns_topology(line3())
    r = net["r"]
    r.sysctl("net.ipv6.icmp.echo_ignore_all", "1")
    r.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server, _ = start_responder(r)
    for client, ifname in (("a", "eth0"), ("b", "eth1")):
        link = (
            r.run(
                ["ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link"],
                capture_output=True,
                text=True,
            )
            .stdout.split()[3]
            .split("/")[0]
        )
        argv = ["ping", "-6", "-n", "-c", "2", "-i", "0.05", "-W", "2", f"{link}%eth0"]
        out = net[client].run(argv, capture_output=True, text=True).stdout
        assert "2 packets transmitted, 2 received, 0% packet loss" in out, (client, out)
    code, err = stop(server)
    assert code == 0
    assert '"answered": 4' in err
