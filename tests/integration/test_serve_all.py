"""``rawstack serve-all``: four servers, one process, one ready line each, clean stops."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from typing import Any

import pytest
from rawstack_harness import Node
from rawstack_harness.clients import rawstack, rawstack_argv
from rawstack_harness.supervise import read_ready

pytestmark = pytest.mark.netns
READY_TIMEOUT = 20.0


@pytest.fixture
def net(net: Any) -> Any:
    """The shared pair (conftest) with kernel echo off on b: each test starts its own
    serve-all (the harness's netns_pair would hold the ports)."""
    net["b"].sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    return net


def serve_all(node: Node, *extra: str) -> subprocess.Popen[str]:
    return node.popen(
        rawstack_argv("serve-all", "--iface", "eth0", *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM serve-all; its exit status."""
    proc.terminate()
    proc.communicate(timeout=10)
    return proc.returncode


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_four_ready_lines_then_clean_exit(net: Any, sig: signal.Signals) -> None:
    a, b = net["a"], net["b"]
    mac_b = b.mac("eth0")
    proc = serve_all(b, "--http-port", "8081", "--udp-port", "8082")
    ready = {r["peer"]: r for r in read_ready(proc, 4, READY_TIMEOUT)}
    assert set(ready) == {"http", "udp", "chao", "icmp"}
    assert ready["http"]["addr"] == "[::]:8081"  # dual-stack by default
    assert ready["udp"]["addr"] == "[::]:8082"
    assert ready["chao"]["mac"] == mac_b
    assert ready["icmp"]["iface"] == "eth0"

    chao = rawstack(a, "chao", "send", "--iface", "eth0", "--to", mac_b, "--json")
    assert chao.returncode == 0, chao.stderr
    assert json.loads(chao.stdout)["received"] == 1
    ping = rawstack(a, "ping", b.addr(), "-c", "2", "-i", "0.1", "--json")
    assert ping.returncode == 0, ping.stderr
    result = json.loads(ping.stdout)
    assert (result["received"], result["duplicates"]) == (2, 0)

    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""  # nothing after the ready lines
    assert "Traceback" not in err
    assert sorted(line.split()[0] for line in err.splitlines() if " stopped " in line) == [
        "[chao]", "[http]", "[icmp]", "[udp]",
    ]  # fmt: skip


def test_peers_subset(net: Any) -> None:
    proc = serve_all(net["b"], "--peers", "icmp,chao")
    ready = read_ready(proc, 2, READY_TIMEOUT)
    assert [r["peer"] for r in ready] == ["chao", "icmp"]
    assert stop(proc) == 0


def test_one_failing_peer_closes_the_others(net: Any) -> None:
    b = net["b"]
    first = serve_all(b, "--http-port", "8083", "--udp-port", "8084")
    read_ready(first, 4, READY_TIMEOUT)
    # Same ports again: HTTP cannot bind, so nothing may be announced and nothing kept.
    second = rawstack(
        b, "serve-all", "--iface", "eth0", "--http-port", "8083", "--udp-port", "8085"
    )
    assert second.returncode == 2
    assert second.stdout == ""
    assert second.stderr.strip().splitlines() == [
        "rawstack: error: tcp listen on [::]:8083: address already in use"
    ]
    # The UDP port the failed run never reached, and chao/icmp it never opened: all free.
    third = serve_all(b, "--http-port", "8086", "--udp-port", "8085", "--peers", "udp")
    read_ready(third, 1, READY_TIMEOUT)
    assert stop(third) == 0
    assert first.poll() is None
    assert stop(first) == 0


def test_unknown_interface_is_exit_2(net: Any) -> None:
    b = net["b"]
    out = rawstack(b, "serve-all", "--iface", "rsd-none", "--http-port", "8087")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.strip() == "rawstack: error: no such interface: rsd-none"
    bad = rawstack(b, "serve-all", "--iface", "eth0", "--peers", "chao,gopher")
    assert bad.returncode == 2
    assert "bad --peers" in bad.stderr


def test_http_and_udp_listen_dual_stack_by_default(net: Any) -> None:
    a, b = net["a"], net["b"]
    proc = serve_all(b, "--http-port", "8087", "--udp-port", "8088", "--peers", "http,udp")
    read_ready(proc, 2, READY_TIMEOUT)
    for addr in (b.addr(), b.addr(6)):
        udp = rawstack(a, "udp", "send", addr, "8088", "--json")
        assert udp.returncode == 0, (addr, udp.stderr)
        if shutil.which("curl") is not None:
            host = f"[{addr}]" if ":" in addr else addr
            curl = a.run(
                ["curl", "-sS", "-g", "-o", "/dev/null", "-w", "%{http_code}",
                 f"http://{host}:8087/"],
                capture_output=True,
                text=True,
                timeout=30,
            )  # fmt: skip
            assert curl.stdout == "200", (addr, curl.stderr)
    assert stop(proc) == 0
    only4 = serve_all(b, "--udp-port", "8089", "--peers", "udp", "--bind", "0.0.0.0")
    read_ready(only4, 1, READY_TIMEOUT)
    refused = rawstack(a, "udp", "send", b.addr(6), "8089", "-W", "0.3")
    assert refused.returncode != 0  # --bind 0.0.0.0 is IPv4 only
    assert stop(only4) == 0
