"""The FreeBSD backend's node handles, run bookkeeping, status and in-jail probes, off FreeBSD.

jexec/jail/ifconfig are replaced by a recorder (or by running the command locally), so what
is checked is the exact commands and the bookkeeping; tests/bsd/ runs them for real.
"""

from __future__ import annotations

import fcntl
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness import Node, Peer
from rawstack_harness.backends import freebsd
from rawstack_harness.backends.freebsd import (
    FreeBSDNetwork,
    FreeBSDNode,
    FreeBSDRun,
    describe_runs,
    parse_ether,
    probe_argv,
    probe_peer,
    runs,
)
from rawstack_harness.errors import HarnessError, ProbeFailed, Unsupported
from rawstack_harness.topology import SpecError, pair

EPAIR_IFCONFIG = """eth0: flags=1008843<UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST,LOWER_UP> mtu 1500
\toptions=8<VLAN_MTU>
\tether 02:2f:0a:9b:C1:0a
\thwaddr 02:2f:0a:9b:c1:0a
\tinet 10.0.0.1 netmask 0xffffff00 broadcast 10.0.0.255
\tmedia: Ethernet 10Gbase-T (10Gbase-T <full-duplex>)
"""


def test_parse_ether() -> None:
    assert parse_ether(EPAIR_IFCONFIG) == "02:2f:0a:9b:c1:0a"
    assert parse_ether("lo0: flags=8049<UP,LOOPBACK,RUNNING,MULTICAST>\n\tinet 127.0.0.1\n") is None


class Recorder:
    """Stands in for subprocess.run: records argv, answers from ``outputs`` (by argv[2:])."""

    def __init__(self, outputs: dict[tuple[str, ...], tuple[int, str]] | None = None) -> None:
        self.calls: list[list[str]] = []
        self.outputs = outputs or {}

    def __call__(self, argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(list(argv))
        code, out = self.outputs.get(tuple(argv[2:]), (0, ""))
        if list(argv) == ["ifconfig", "epair", "create"]:
            out = f"epair{len(self.calls)}a\n"
        return subprocess.CompletedProcess(argv, code, out, "" if code == 0 else "boom")


class StubNet:
    """The network a lone node belongs to: only its spec is read."""

    def __init__(self) -> None:
        self.topology = pair()
        self.peers: dict[str, Peer] = {}

    def __getitem__(self, name: str) -> Node:
        raise KeyError(name)

    def describe(self) -> dict[str, object]:
        return {}

    def destroy(self) -> None:
        pass

    def set_link(self, a: str, b: str | None = None, *, up: bool) -> None:
        pass

    def impair(self, a: str, b: str | None = None, impair: object = None) -> str:
        return ""

    def set_member(self, segment: str, node: str, *, up: bool) -> None:
        pass

    def mechanisms(self) -> list[str]:
        return []


@pytest.fixture
def node() -> FreeBSDNode:
    return FreeBSDNode(StubNet(), "a", "rshab12cd_a")


def test_addresses_come_from_the_spec(node: FreeBSDNode) -> None:
    handle: Node = node  # and mypy checks a jail has the whole node surface
    assert handle.ifnames() == ["eth0"]
    assert handle.addresses() == ["10.0.0.1", "fd00::1"]
    assert handle.addr(6) == "fd00::1"
    assert handle.netns == "rshab12cd_a"
    with pytest.raises(LookupError, match="no IPv4 address"):
        handle.addr(4, "eth9")


def test_run_and_mac_go_through_jexec(node: FreeBSDNode, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder({("ifconfig", "eth0"): (0, EPAIR_IFCONFIG), ("ifconfig", "eth1"): (1, "")})
    monkeypatch.setattr(subprocess, "run", rec)
    assert node.mac() == "02:2f:0a:9b:c1:0a"
    assert rec.calls == [["jexec", "rshab12cd_a", "ifconfig", "eth0"]]
    with pytest.raises(LookupError, match="no Ethernet interface 'eth1'"):
        node.mac("eth1")


def test_sysctl_maps_linux_names(node: FreeBSDNode, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder({("sysctl", "-n", "net.inet.ip.forwarding"): (0, "1\n")})
    monkeypatch.setattr(subprocess, "run", rec)
    assert node.sysctl("net.ipv4.ip_forward", "1") == "1"
    assert rec.calls == [
        ["jexec", "rshab12cd_a", "sysctl", "net.inet.ip.forwarding=1"],
        ["jexec", "rshab12cd_a", "sysctl", "-n", "net.inet.ip.forwarding"],
    ]
    with pytest.raises(SpecError, match=r"icmp_echo_ignore_all.*no FreeBSD equivalent"):
        node.sysctl("net.ipv4.icmp_echo_ignore_all", "1")


def test_socket_is_unsupported_and_says_why(node: FreeBSDNode) -> None:
    with pytest.raises(Unsupported, match="a jail has no setns"):
        node.socket()


def test_popen_in_own_group_and_stop(node: FreeBSDNode, monkeypatch: pytest.MonkeyPatch) -> None:
    real_popen = subprocess.Popen
    seen: list[list[str]] = []

    def popen(argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        seen.append(argv)
        assert kwargs["start_new_session"] is True
        return real_popen(argv[2:], **kwargs)  # drop "jexec JAIL": run it here

    monkeypatch.setattr(subprocess, "Popen", popen)
    proc = node.popen([sys.executable, "-c", "import time; time.sleep(60)"])
    assert seen[0][:2] == ["jexec", "rshab12cd_a"]
    assert os.getpgid(proc.pid) == proc.pid
    node.stop_processes(timeout=5)
    assert proc.returncode == -15
    assert node.procs == []


@pytest.fixture
def pretend_freebsd(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """missing_requirement() passes and every command is recorded."""
    rec = Recorder()
    # The one definition, which runs and networks both consult (not the package's re-export).
    monkeypatch.setattr(runs, "missing_requirement", lambda: None)
    monkeypatch.setattr(subprocess, "run", rec)
    return rec


def test_run_owns_its_networks(tmp_path: Path, pretend_freebsd: Recorder) -> None:
    run = FreeBSDRun(str(tmp_path), label="pytest")
    assert json.loads((run.dir / "state.json").read_text())["teardown"] == []
    net = freebsd.build(pair(), run)
    assert net.run is run
    assert run.networks == [net]
    jail_a = net.jail("a")
    assert ["jail", "-c", f"name={jail_a}", "host.hostname=a", "vnet", "persist"] in (
        pretend_freebsd.calls
    )
    assert net["a"].jail == jail_a
    assert net.describe()["nodes"]["b"] == {
        "jail": net.jail("b"),
        "addresses": ["10.0.0.2", "fd00::2"],
    }
    status = {r["run"]: r for r in describe_runs(str(tmp_path))}
    assert status[run.id]["alive"]
    assert status[net.dir.name]["jails"] == [jail_a, net.jail("b")]
    pretend_freebsd.calls.clear()
    run.close()
    assert ["jail", "-r", jail_a] in pretend_freebsd.calls
    assert run.networks == []
    assert not run.dir.exists()
    assert not net.dir.exists()
    assert list(tmp_path.iterdir()) == []


def test_failed_setup_tears_down(tmp_path: Path, pretend_freebsd: Recorder) -> None:
    run = FreeBSDRun(str(tmp_path))
    net = FreeBSDNetwork(pair(), run=run)
    pretend_freebsd.outputs[("ifconfig", "lo0", "inet", "127.0.0.1/8", "up")] = (1, "")
    with pytest.raises(HarnessError, match=r"jexec .* ifconfig lo0 .*: boom"):
        net.build()
    assert ["jail", "-r", net.jail("a")] in pretend_freebsd.calls
    assert run.networks == []
    run.close()


def test_describe_runs_tells_dead_from_alive(tmp_path: Path) -> None:
    for run_id, jails in (("dead01", ["rshdead01_a"]), ("live01", [])):
        (tmp_path / run_id).mkdir()
        (tmp_path / run_id / "lock").touch()
        teardown = [["jail", "-r", j] for j in jails]
        state = {"teardown": teardown, "label": "pytest", "pid": 1}
        (tmp_path / run_id / "state.json").write_text(json.dumps(state))
    fd = os.open(tmp_path / "live01" / "lock", os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        runs = describe_runs(str(tmp_path))
    finally:
        os.close(fd)
    assert [(r["run"], r["alive"], r["jails"]) for r in runs] == [
        ("dead01", False, ["rshdead01_a"]),
        ("live01", True, []),
    ]
    assert describe_runs(str(tmp_path / "missing")) == []


def test_probe_argv() -> None:
    ready = {"http": {"addr": "0.0.0.0:8080"}, "udp": {"addr": "0.0.0.0:9000"}}
    head = [sys.executable, "-c"]
    assert probe_argv("http", ifname="eth0", target="10.0.0.2", dst_mac="", ready=ready)[3:] == [
        "http",
        "eth0",
        "10.0.0.2",
        "8080",
    ]
    argv = probe_argv(
        "chao", ifname="eth1", target="10.0.0.2", dst_mac="02:00:00:00:00:02", ready={}
    )
    assert argv[:2] == head
    assert argv[3:] == ["chao", "eth1", "10.0.0.2", "02:00:00:00:00:02"]
    assert probe_argv("icmp", ifname="eth0", target="10.0.0.2", dst_mac="", ready={})[-1] == "-"
    with pytest.raises(ValueError, match="unknown peer"):
        probe_argv("gopher", ifname="eth0", target="x", dst_mac="", ready={})


class LocalNode:
    """A node whose run() runs the command right here (the probe process is real)."""

    name = "local"

    def __init__(self, host: str) -> None:
        self.host = host

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        return self.host

    def mac(self, ifname: str = "eth0") -> str:
        raise LookupError("only CHAO probes need it")

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        return subprocess.run(argv, check=False, **kwargs)


@pytest.fixture
def http_port() -> Iterator[int]:
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_probe_process_http(http_port: int) -> None:
    node = LocalNode("127.0.0.1")
    ready = {"http": {"addr": f"0.0.0.0:{http_port}"}}
    rtt = probe_peer("http", src=node, src_ifname="lo", dst=node, dst_ifname="lo", ready=ready)
    assert 0 < rtt < 5


def test_probe_process_udp_echo_and_silence() -> None:
    node = LocalNode("127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as echo:
        echo.bind(("127.0.0.1", 0))
        port = echo.getsockname()[1]

        def serve() -> None:
            data, peer = echo.recvfrom(2048)
            echo.sendto(data, peer)

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        ready = {"udp": {"addr": f"0.0.0.0:{port}"}}
        rtt = probe_peer("udp", src=node, src_ifname="lo", dst=node, dst_ifname="lo", ready=ready)
        thread.join(5)
        assert 0 < rtt < 5
        # Nobody answers now: the probe process fails and says what it probed.
        with pytest.raises(
            ProbeFailed, match=rf"^udp probe of 127\.0\.0\.1: udp 127\.0\.0\.1:{port}"
        ):
            probe_peer("udp", src=node, src_ifname="lo", dst=node, dst_ifname="lo", ready=ready)
