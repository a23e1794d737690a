"""Shared peers: one process serves every node's serve-all, each node a tenant of its own.

Each tenant is proved to serve from its own node by the supervisor's probes, from the other
node; its stop, kill and failed start are compared with what a serve-all process of its own
does (status, log lines), and the other tenants are proved to go on serving.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from _loopback import exited, wait_for
from rawstack_harness import probes
from rawstack_harness.backends.linux.forked import HOST_DIED, PeerHost, SharedProcess
from rawstack_harness.supervise import read_ready

pytestmark = pytest.mark.netns

PEERS = ("chao", "http", "icmp", "udp")


@pytest.fixture
def host(netns_run: Any, tmp_path: Path) -> Iterator[PeerHost]:
    """A peer host recording in this run's manifest; closed (children killed) at the end."""
    peer_host = PeerHost(tmp_path / "host.log", netns_run.manifest)
    yield peer_host
    peer_host.close()


def _tenant(
    host: PeerHost, node: Any, logs: Path, *args: str, sysctls: list[tuple[str, str]] | None = None
) -> SharedProcess:
    proc = host.spawn(
        node.fd,
        ["serve-all", "--iface", "eth0", *args],
        logs / f"{node.name}.out",
        logs / f"{node.name}.err",
        ready_lines=4 if not args else 1,
        sysctls=sysctls or [],
        shared=True,
    )
    assert isinstance(proc, SharedProcess)
    return proc


def _ready(proc: SharedProcess, lines: int = 4) -> dict[str, Any]:
    popen = cast("subprocess.Popen[bytes]", proc)
    return {str(e["peer"]): e for e in read_ready(popen, lines, 20)}


def _probe_all(src: Any, dst: Any, ready: dict[str, Any]) -> None:
    for peer in PEERS:
        probes.probe_peer(peer, src=src, src_ifname="eth0", dst=dst, dst_ifname="eth0", ready=ready)


def _ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])


def _http_refused(src: Any, dst: Any) -> bool:
    with src.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        try:
            s.connect((dst.addr(4), 8080))
        except ConnectionRefusedError:
            return True
        return False


def test_tenants_serve_in_their_own_nodes_from_one_process(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    a, b = net["a"], net["b"]
    echo_off = [("net.ipv4.icmp_echo_ignore_all", "1"), ("net.ipv6.icmp.echo_ignore_all", "1")]
    ta, tb = (_tenant(host, n, tmp_path, sysctls=echo_off) for n in (a, b))
    ready_a, ready_b = _ready(ta), _ready(tb)
    assert sorted(ready_a) == sorted(ready_b) == list(PEERS)
    assert ta.pid == tb.pid
    assert _ppid(ta.pid) == host.pid
    # It went back to its own namespace after opening each node's sockets.
    home = os.stat(f"/proc/{ta.pid}/ns/net").st_ino
    assert home not in {os.fstat(a.fd).st_ino, os.fstat(b.fd).st_ino}
    assert a.sysctl("net.ipv4.icmp_echo_ignore_all") == "1"
    for proc in (ta, tb):  # EOF on the ready pipe, not merely nothing to read
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], 5)[0], "the ready pipe stayed open"
        assert proc.stdout.read() == b""
    _probe_all(b, a, ready_a)
    _probe_all(a, b, ready_b)
    out = (tmp_path / "a.out").read_text().splitlines()
    assert len(out) == 4
    assert all('"event": "ready"' in line for line in out)


def test_stopping_a_tenant_is_serve_all_exiting_and_the_others_serve_on(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    a, b = net["a"], net["b"]
    ta, tb = _tenant(host, a, tmp_path), _tenant(host, b, tmp_path)
    _ready(ta)
    ready_b = _ready(tb)
    ta.terminate()
    assert ta.wait(10) == 0
    err = (tmp_path / "a.err").read_text()
    assert all(f"[{peer}] stopped {{" in err for peer in PEERS), err
    assert _http_refused(b, a)
    assert tb.poll() is None
    _probe_all(a, b, ready_b)
    assert "stopped" not in (tmp_path / "b.err").read_text()


def test_killing_a_tenant_closes_its_servers_at_once_and_only_its_own(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    a, b = net["a"], net["b"]
    tb = _tenant(host, b, tmp_path)
    ready_b = _ready(tb)
    assert tb.stdout is not None
    assert tb.stdout.read() == b""  # EOF: the tenant has closed its end of the ready pipe
    fds = f"/proc/{tb.pid}/fd"
    before = len(os.listdir(fds))
    ta = _tenant(host, a, tmp_path)
    _ready(ta)
    ta.kill()
    assert ta.wait(10) == -signal.SIGKILL
    assert "stopped" not in (tmp_path / "a.err").read_text()  # no graceful close
    # Everything it held is closed, the packet sockets too (by the closer thread).
    assert wait_for(lambda: len(os.listdir(fds)) == before, 5), os.listdir(fds)
    ta.kill()  # once it exited, a no-op
    assert _http_refused(b, a)
    assert not exited(tb.pid)
    _probe_all(a, b, ready_b)
    ta.send_signal(signal.SIGSTOP)  # nothing to stop: a no-op, as on an exited process
    tb.send_signal(signal.SIGCONT)  # a live tenant ignores what serve-all's default ignores
    assert tb.poll() is None


@pytest.mark.parametrize(
    "args",
    [
        ["--iface", "nosuch0"],
        ["--iface", "eth0", "--bogus"],
        ["--iface", "eth0", "--bind", "10.9.9.9"],
    ],
    ids=["unknown-iface", "usage", "cannot-bind"],
)
def test_a_tenant_that_cannot_start_fails_as_serve_all_does(
    host: PeerHost, net: Any, tmp_path: Path, args: list[str]
) -> None:
    a, b = net["a"], net["b"]
    other = _tenant(host, b, tmp_path)
    ready_b = _ready(other)
    proc = host.spawn(
        a.fd, ["serve-all", *args], tmp_path / "out", tmp_path / "err", ready_lines=4, shared=True
    )
    code = proc.wait(20)
    execed = a.run([sys.executable, "-m", "rawstack", "serve-all", *args], capture_output=True)
    assert code == execed.returncode != 0
    shared_err = (tmp_path / "err").read_text().strip().splitlines()
    assert shared_err[-1] == execed.stderr.decode().strip().splitlines()[-1]
    assert proc.stdout is not None
    assert proc.stdout.read() == b""
    _probe_all(a, b, ready_b)  # the shared process and its other tenant are unharmed
    assert proc.pid == other.pid


def test_a_tenant_runs_serve_all_only(host: PeerHost, net: Any, tmp_path: Path) -> None:
    proc = host.spawn(
        net["a"].fd, ["udp", "serve"], tmp_path / "out", tmp_path / "err", shared=True
    )
    assert proc.wait(20) == 1
    assert "serve-all only" in (tmp_path / "err").read_text()


def test_tenants_end_with_the_shared_process_and_the_next_spawn_starts_another(
    host: PeerHost, net: Any, netns_run: Any, tmp_path: Path
) -> None:
    a, b = net["a"], net["b"]
    tenants = [_tenant(host, n, tmp_path, "--peers", "udp") for n in (a, b)]
    for t in tenants:
        _ready(t, 1)
    shared = tenants[0].pid
    live = {e["key"] for e in netns_run.manifest.live()}
    assert f"pid:{shared}" in live
    os.kill(shared, signal.SIGKILL)  # the process itself, not a tenant: all of them end
    assert [t.wait(10) for t in tenants] == [-signal.SIGKILL, -signal.SIGKILL]
    assert wait_for(lambda: f"pid:{shared}" not in {e["key"] for e in netns_run.manifest.live()}, 5)
    again = _tenant(host, a, tmp_path)
    ready = _ready(again)
    assert again.pid != shared
    _probe_all(b, a, ready)


def test_tenants_end_with_the_host(host: PeerHost, net: Any, tmp_path: Path) -> None:
    tenants = [_tenant(host, net[n], tmp_path, "--peers", "udp") for n in ("a", "b")]
    for t in tenants:
        _ready(t, 1)
    shared = tenants[0].pid
    os.kill(host.pid, signal.SIGKILL)
    assert wait_for(lambda: exited(shared), 10)  # its death signal
    assert [t.wait(10) for t in tenants] == [HOST_DIED, HOST_DIED]


INNER = """
import os, signal
import pytest
from rawstack_harness import clients

def _ppid(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])

def test_one_process_serves_both_nodes(netns_pair, netns_run):
    pids = {p.proc.pid for p in netns_pair.peers.values()}
    assert len(pids) == 1
    assert {_ppid(pid) for pid in pids} == {netns_run.peer_host().pid}
    for src, dst in (("a", "b"), ("b", "a")):
        clients.run_client("udp", netns_pair[src], netns_pair[dst],
                           ready=netns_pair.peers[dst].ready)
    # Stopping one node's peers (the supervisor's way: a process group's SIGTERM) is that
    # tenant's exit alone.
    assert netns_pair.peers["a"].stop() == 0
    assert netns_pair.peers["b"].alive()
    clients.run_client("udp", netns_pair["a"], netns_pair["b"], ready=netns_pair.peers["b"].ready)

def test_a_killed_tenant_fails_the_test(netns_pair):
    proc = netns_pair.peers["b"].proc
    proc.kill()
    proc.wait()

def test_the_next_test_is_served_again(netns_pair):
    assert netns_pair.peers["a"].alive() and netns_pair.peers["b"].alive()
"""


def test_fixture_peers_shared(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--netns-peer-start=shared", "--netns-peers=http,udp"
    )
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*shared serve-all on node b*was killed by signal 9*"])


def test_spawns_go_on_while_nobody_reads_the_hosts_replies(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    # More replies than the host's socket buffer holds (each takes ~1 KiB of it), none of
    # them asked for: a host that blocked on them would fork nothing more.
    with open("/proc/sys/net/core/wmem_default", encoding="ascii") as fh:
        count = int(fh.read()) // 512 + 20
    a = net["a"]
    for i in range(count):
        proc = host.spawn(
            a.fd,
            ["serve-all", "--iface", "eth0", "--peers", "udp", "--udp-port", str(20000 + i)],
            tmp_path / "out",
            tmp_path / "err",
            ready_lines=1,
            shared=True,
        )
        assert proc.stdout is not None
        assert select.select([proc.stdout], [], [], 10)[0], (
            f"spawn {i + 1} of {count}: no ready line"
        )
        assert b'"peer": "udp"' in proc.stdout.readline()
        proc.stdout.close()
