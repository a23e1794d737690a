"""``rawstack syn-probe`` across the harness's veth pair: open, closed, filtered, and no
half-open connection left behind."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from typing import Any

import pytest
from _loopback import TCPDUMP_ROOTLESS, skip_if_rootless
from rawstack_harness.clients import rawstack
from rawstack_harness.supervise import read_lines, read_ready

pytestmark = pytest.mark.netns
PYTHON = sys.executable
PORT = 8090
SILENT = "10.0.0.99"  # on pair()'s 10.0.0.0/24, nobody answers ARP: a silent host
LISTEN = (
    "import json, socket, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    f"s.bind(('0.0.0.0', {PORT})); s.listen(8)\n"
    "print(json.dumps({'event': 'ready', 'peer': 'listener'}), flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def net(net: Any) -> Any:
    """The shared pair (conftest) plus a TCP listener (never accepting) on b; the harness
    stops it with the topology."""
    listener = net["b"].popen(
        [PYTHON, "-c", LISTEN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    read_ready(listener, 1, 10)
    return net


def test_open_port_reports_handshake_and_leaves_nothing_half_open(net: Any) -> None:
    b = net["b"].addr()
    out = rawstack(net["a"], "syn-probe", b, str(PORT), "-c", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(
            rf"{re.escape(b)}:{PORT} open \(SYN-ACK in \d+\.\d{{3}} ms, MSS 1460\)", line
        ), line
    # Our RST (and the kernel's) removed the server's SYN-RECV entries.
    ss = net["b"].run(["ss", "-Htn", "state", "syn-recv"], capture_output=True, text=True)
    assert ss.returncode == 0, ss.stderr
    assert ss.stdout.strip() == ""


def test_our_rst_follows_the_syn_ack(net: Any) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump to watch the RSTs on the wire")
    skip_if_rootless(TCPDUMP_ROOTLESS)
    dump = net["b"].popen(
        ["tcpdump", "-i", "eth0", "-nn", "-l", "-c", "2",
         f"tcp[tcpflags] & tcp-rst != 0 and src host {net['a'].addr()}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Its readiness signal: "listening on" on stderr (after a "verbose output" notice).
    while b"listening on" not in read_lines(dump, 1, 10, stream=dump.stderr)[0]:
        pass
    out = rawstack(net["a"], "syn-probe", net["b"].addr(), str(PORT), "--json")
    assert json.loads(out.stdout)["state"] == "open"
    text, _ = dump.communicate(timeout=10)
    resets = [line for line in text.splitlines() if "Flags [R]" in line]
    # Two RSTs with the same sequence number: the kernel's and ours (see syn_probe.py).
    assert len(resets) == 2, text
    seqs = {re.search(r"seq (\d+)", line).group(1) for line in resets}  # type: ignore[union-attr]
    assert len(seqs) == 1


def test_closed_port_is_rst(net: Any) -> None:
    a, b = net["a"], net["b"].addr()
    out = rawstack(a, "syn-probe", b, str(PORT + 1), "--json")
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["state"] == "closed"
    assert result["probes"][0]["rtt_ms"] > 0
    text = rawstack(a, "syn-probe", b, str(PORT + 1))
    assert re.fullmatch(rf"\S+:{PORT + 1} closed \(RST in \d+\.\d{{3}} ms\)\n", text.stdout)


def test_silent_address_is_filtered(net: Any) -> None:
    start = time.monotonic()
    out = rawstack(net["a"], "syn-probe", SILENT, str(PORT), "-W", "0.5")
    assert out.returncode == 1
    assert out.stdout == f"{SILENT}:{PORT} filtered (no answer in 0.5 s)\n"
    assert time.monotonic() - start >= 0.5


@pytest.mark.parametrize("argv", [["10.0.0.2", "0"], ["10.0.0.2", "70000"], ["nohost.", "80"]])
def test_bad_arguments_exit_2(net: Any, argv: list[str]) -> None:
    out = rawstack(net["a"], "syn-probe", *argv)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("route_type", "reason"), [("prohibit", "admin-prohibited"), ("unreachable", "host-unreach")]
)
def test_icmp_unreachable_is_filtered_at_once_with_its_reason(
    net: Any, route_type: str, reason: str
) -> None:
    # b routes 10.9.9.0/24 to a "prohibit" (or "unreachable") route and forwards: the kernel
    # answers a forwarded SYN with ICMP type 3 code 13 (or 1), no firewall needed.
    a, b = net["a"], net["b"]
    b.sysctl("net.ipv4.ip_forward", "1")
    for node, argv in (
        (b, ["ip", "route", "add", route_type, "10.9.9.0/24"]),
        (a, ["ip", "route", "add", "10.9.9.0/24", "via", b.addr()]),
    ):
        added = node.run(argv, capture_output=True, text=True)
        assert added.returncode == 0, added.stderr
    start = time.monotonic()
    out = rawstack(a, "syn-probe", "10.9.9.9", str(PORT), "-W", "5", "--json")
    took = time.monotonic() - start
    assert out.returncode == 1
    (probe,) = json.loads(out.stdout)["probes"]
    assert (probe["state"], probe["reason"], probe["icmp_from"]) == ("filtered", reason, b.addr())
    assert took < 4, took  # at once, not after the 5 s timeout
    text = rawstack(a, "syn-probe", "10.9.9.9", str(PORT), "-W", "5")
    assert re.fullmatch(
        rf"10\.9\.9\.9:{PORT} filtered \(ICMP {reason} from {re.escape(b.addr())} "
        r"in \d+\.\d{3} ms\)\n",
        text.stdout,
    ), text.stdout
