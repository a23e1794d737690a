"""``rawstack syn-probe`` over IPv6 across the harness's veth pair: open, closed and
filtered, each agreeing with ``nmap -6 -sS``, and no half-open connection left behind.

Filtered without a firewall: a policy-routing rule on b blackholes what b sends from the
filtered port (``ip -6 rule ... ipproto tcp sport PORT blackhole``), so the SYN arrives and
its RST never leaves, which is what a dropping firewall looks like from a."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from typing import Any, Callable

import pytest
from _loopback import TCPDUMP_ROOTLESS, skip_if_rootless
from rawstack_harness.clients import rawstack
from rawstack_harness.supervise import read_lines, read_ready
from rawstack_harness.topology import line3

pytestmark = pytest.mark.netns
OPEN, CLOSED, FILTERED = 8091, 8092, 8093
LISTEN6 = (
    "import json, socket, time\n"
    "s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\n"
    f"s.bind(('::', {OPEN})); s.listen(8)\n"
    "print(json.dumps({'event': 'ready', 'peer': 'listener'}), flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def net(net: Any) -> Any:
    """The shared pair plus an IPv6 listener (never accepting) on b and the filtered port."""
    b = net["b"]
    listener = b.popen(
        [sys.executable, "-c", LISTEN6], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    read_ready(listener, 1, 10)
    rule = ["ip", "-6", "rule", "add", "ipproto", "tcp", "sport", str(FILTERED), "blackhole"]
    done = b.run(rule, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this iproute2/kernel cannot match rules on ports: {done.stderr.strip()}")
    return net


def nmap_states(a: Any, dst: str, ports: list[int]) -> dict[int, str]:
    if shutil.which("nmap") is None:
        pytest.skip("needs nmap (Debian package nmap)")
    # No retransmission: a second try waits a second longer for the filtered port, and
    # across a veth nothing is lost (a SYN-ACK or RST is back well inside nmap's timeout).
    argv = ["nmap", "-6", "-sS", "-Pn", "-n", "--max-retries", "0", "-p"]
    out = a.run([*argv, ",".join(map(str, ports)), dst], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    found = re.findall(r"^(\d+)/tcp\s+(\S+)", out.stdout, re.MULTILINE)
    return {int(port): state for port, state in found}


def test_agrees_with_nmap_on_open_closed_and_filtered(net: Any) -> None:
    a, b = net["a"], net["b"].addr(6)
    ports = [OPEN, CLOSED, FILTERED]
    theirs = nmap_states(a, b, ports)
    ours = {}
    for port in ports:
        # Silence is the filtered port's answer, waited out whole; a SYN-ACK or RST across
        # the veth comes in well under a millisecond.
        wait = "0.5" if port == FILTERED else "2"
        out = rawstack(a, "syn-probe", "-6", b, str(port), "-W", wait, "--json")
        ours[port] = json.loads(out.stdout)["state"]
        assert out.returncode == (0 if port == OPEN else 1), out.stderr
    assert ours == theirs == {OPEN: "open", CLOSED: "closed", FILTERED: "filtered"}


def test_open_port_line_and_nothing_half_open(net: Any) -> None:
    b = net["b"].addr(6)
    out = rawstack(net["a"], "syn-probe", b, str(OPEN), "-c", "2", "-W", "3")  # margin
    assert out.returncode == 0, (out.stdout, out.stderr)
    for line in out.stdout.splitlines():
        # MSS 1440: the veth's 1500 less the 40-byte IPv6 and 20-byte TCP headers.
        assert re.fullmatch(
            rf"\[{re.escape(b)}\]:{OPEN} open \(SYN-ACK in \d+\.\d{{3}} ms, MSS 1440\)", line
        ), line
    ss = net["b"].run(["ss", "-Htn", "state", "syn-recv"], capture_output=True, text=True)
    assert ss.stdout.strip() == "", (out.stdout, ss.stdout)


def test_ipv4_only_refuses_an_ipv6_literal(net: Any) -> None:
    out = rawstack(net["a"], "syn-probe", "-4", net["b"].addr(6), str(OPEN))
    assert out.returncode == 2
    assert "IPv4 address" in out.stderr


def test_our_rst_follows_the_syn_ack(net: Any) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump to watch the RSTs on the wire")
    skip_if_rootless(TCPDUMP_ROOTLESS)
    dump = net["b"].popen(
        [
            "tcpdump",
            "-i",
            "eth0",
            "-nn",
            "-l",
            "-c",
            "2",
            f"ip6 and src host {net['a'].addr(6)} and tcp and ip6[53] & 4 != 0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip  (ip6[53]: the TCP flags byte behind a 40-byte header, RST = 4)
    while b"listening on" not in read_lines(dump, 1, 10, stream=dump.stderr)[0]:
        pass
    out = rawstack(net["a"], "syn-probe", net["b"].addr(6), str(OPEN), "-W", "3", "--json")
    assert json.loads(out.stdout)["state"] == "open"
    text, _ = dump.communicate(timeout=10)
    resets = [line for line in text.splitlines() if "Flags [R]" in line]
    assert len(resets) == 2, text  # the kernel's and ours, one sequence number
    assert len({re.search(r"seq (\d+)", line).group(1) for line in resets}) == 1  # type: ignore[union-attr]


def test_an_icmpv6_unreachable_is_filtered_at_once_with_its_reason(
    netns_topology: Callable[..., Any],
) -> None:
    net = netns_topology(line3())
    a, r, b = net["a"], net["r"], net["b"].addr(6)
    # r refuses to forward TCP to port 8095: it answers the SYN with ICMPv6 destination
    # unreachable, code 1 (administratively prohibited, RFC 4443 3.1).
    rule = ["ip", "-6", "rule", "add", "ipproto", "tcp", "dport", "8095", "prohibit"]
    done = r.run(rule, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this iproute2/kernel cannot match rules on ports: {done.stderr.strip()}")
    out = rawstack(a, "syn-probe", "-6", b, "8095", "-W", "5", "--json")
    probe = json.loads(out.stdout)["probes"][0]
    assert (probe["state"], probe["reason"]) == ("filtered", "admin-prohibited"), out.stdout
    assert probe["icmp_from"] == r.addr(6, "eth0")
    assert probe["rtt_ms"] < 4000  # at once, not at the timeout
    theirs = nmap_states(a, b, [8095])
    assert theirs == {8095: "filtered"}
