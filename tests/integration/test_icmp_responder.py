"""``rawstack icmp respond`` across a veth pair, against iputils ping and our own ping."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator

import pytest
from _netns_pair import PYTHON, NetnsPair, netns_pair, stop, wait_ready


@pytest.fixture
def pair() -> Iterator[NetnsPair]:
    """A fresh namespace pair per test."""
    with netns_pair() as p:
        yield p


def start_responder(pair: NetnsPair, *extra: str) -> tuple[object, str]:
    server = pair.b.popen([PYTHON, "-m", "rawstack", "icmp", "respond", *extra])
    (ready,) = wait_ready(server)
    assert ready["peer"] == "icmp"
    return server, ready.get("iface") or ""


def iputils_ping(pair: NetnsPair, count: int = 3) -> str:
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    out = pair.a.run(["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "2", pair.addr_b],
                     check=False)  # fmt: skip
    return out.stdout


def test_iputils_ping_gets_exactly_our_replies(pair: NetnsPair) -> None:
    pair.b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    # Kernel echo off: without our responder nobody answers.
    assert " 0 received" in iputils_ping(pair, count=1)
    server = pair.b.popen([PYTHON, "-m", "rawstack", "icmp", "respond"])
    wait_ready(server)
    out = iputils_ping(pair)
    assert "3 packets transmitted, 3 received, 0% packet loss" in out, out
    assert "DUP!" not in out
    assert re.search(rf"64 bytes from {re.escape(pair.addr_b)}: icmp_seq=1 ttl=64 time=", out)
    code, _, err = stop(server)
    assert code == 0
    assert "icmp_echo_ignore_all" not in err  # no warning when the kernel is quiet
    assert '"answered": 3' in err


def test_kernel_echo_on_warns_and_duplicates(pair: NetnsPair) -> None:
    pair.b.sysctl("net.ipv4.icmp_echo_ignore_all", "0")
    server = pair.b.popen([PYTHON, "-m", "rawstack", "icmp", "respond"])
    wait_ready(server)
    out = iputils_ping(pair, count=3)
    # The warning is true: the kernel and we both answer each request (iputils stops at
    # the last first reply, so the final duplicate may not be counted).
    dups = re.search(r"\+(\d+) duplicates", out)
    assert dups is not None, out
    assert int(dups.group(1)) >= 2
    code, _, err = stop(server)
    assert code == 0
    assert "icmp_echo_ignore_all is 0" in err


def test_iface_limits_answers_to_that_interface(pair: NetnsPair) -> None:
    pair.b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server = pair.b.popen([PYTHON, "-m", "rawstack", "icmp", "respond", "--iface", "lo"])
    (ready,) = wait_ready(server)
    assert ready["iface"] == "lo"
    assert " 0 received" in iputils_ping(pair, count=1)  # arrives on rsd-b, not lo
    local = pair.b.run(["ping", "-n", "-c", "1", "-W", "2", "127.0.0.1"], check=False)
    assert " 1 received" in local.stdout
    stop(server)
    bad = pair.b.rawstack("icmp", "respond", "--iface", "rsd-none")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "rawstack: error: no such interface: rsd-none"


def test_our_ping_against_our_responder(pair: NetnsPair) -> None:
    pair.b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server = pair.b.popen([PYTHON, "-m", "rawstack", "icmp", "respond", "--iface", pair.iface_b])
    wait_ready(server)
    out = pair.a.rawstack("ping", pair.addr_b, "-c", "3", "-i", "0.1", "-s", "100", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["transmitted"], result["received"], result["duplicates"]) == (3, 3, 0)
    assert [r["seq"] for r in result["replies"]] == [1, 2, 3]
    assert all(r["from"] == pair.addr_b and r["bytes"] == 108 for r in result["replies"])
    assert all(r["ttl"] == 64 for r in result["replies"])
    code, _, _ = stop(server)
    assert code == 0


def test_random_packets_never_stop_the_responder(pair: NetnsPair) -> None:
    pair.b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    server = pair.b.popen([PYTHON, "-m", "rawstack", "icmp", "respond"])
    wait_ready(server)
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
    pair.a.run([PYTHON, "-c", script, pair.addr_b])
    out = iputils_ping(pair, count=1)
    assert " 1 received" in out, out
    assert server.poll() is None
    code, _, err = stop(server)
    assert code == 0
    assert "Traceback" not in err
