"""``rawstack icmp respond`` across the harness's veth pair, against iputils ping and our own."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from typing import Any

import pytest
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


def iputils_ping(net: Any, count: int = 3) -> str:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    argv = ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", net["b"].addr()]
    out: str = net["a"].run(argv, capture_output=True, text=True).stdout
    return out


def test_iputils_ping_gets_exactly_our_replies(net: Any) -> None:
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    # Kernel echo off: without our responder nobody answers.
    assert " 0 received" in iputils_ping(net, count=1)
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
    out = iputils_ping(net, count=3)
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
    assert " 0 received" in iputils_ping(net, count=1)  # arrives on eth0, not lo
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
