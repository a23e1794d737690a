"""On a real FreeBSD kernel: VNET jails + epair from the spec, the kernel's echo, CHAO over BPF.

Runs in the Vagrant box (docs/bsd.md); everywhere else every test skips with the reason.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from rawstack_harness.backends.freebsd import (
    RETURNING,
    FreeBSDNetwork,
    host_ifname,
    missing_requirement,
    reap_returned_epairs,
)
from rawstack_harness.topology import pair

REASON = missing_requirement()
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreeBSDNetwork]:
    """The pair topology (a:eth0 10.0.0.1 <-> b:eth0 10.0.0.2) on two VNET jails."""
    root = str(tmp_path_factory.mktemp("runs"))
    network = FreeBSDNetwork(pair(), root=root).build()
    try:
        yield network
    finally:
        network.destroy()


def _jails() -> str:
    return subprocess.run(["jls", "name"], capture_output=True, text=True, check=True).stdout


def test_jails_and_interfaces_exist(net: FreeBSDNetwork) -> None:
    names = _jails().split()
    assert net.jail("a") in names
    assert net.jail("b") in names
    out = net["a"].run(["ifconfig", "eth0"], capture_output=True, text=True)
    assert "inet 10.0.0.1 " in out.stdout


def test_kernel_echo_between_jails(net: FreeBSDNetwork) -> None:
    # The BSD kernel answers echo requests itself (no rawstack ICMP responder here).
    done = net["a"].run(["ping", "-c", "1", "-t", "5", "10.0.0.2"], capture_output=True)
    assert done.returncode == 0, done.stdout


CHAO_RECEIVER = textwrap.dedent(
    """
    import json, select, sys
    from rawstack.sockets.bpf import open_bpf
    sock = open_bpf("eth0", 0x88B5)
    print(json.dumps({"event": "ready", "mac": sock.mac.hex(), "mtu": sock.mtu}), flush=True)
    select.select([sock], [], [], 10)
    print(json.dumps({"frames": [f.hex() for f in sock.recv_frames()]}), flush=True)
    """
)

CHAO_SENDER = textwrap.dedent(
    """
    import sys
    from rawstack.sockets.bpf import open_bpf
    sock = open_bpf("eth0", 0x88B5)
    dst = bytes.fromhex(sys.argv[1])
    sock.send(dst + sock.mac + b"\\x88\\xb5" + b"CHAO over BPF")
    sock.send(dst + sock.mac + b"\\x08\\x00" + b"not for us")
    print(len(sock.recv_frames()))  # our own frames must not come back
    """
)


def _line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], TIMEOUT)
    assert ready, "no output within the timeout"
    return proc.stdout.readline()


def test_chao_frame_over_bpf(net: FreeBSDNetwork) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    receiver = net["b"].popen(
        [sys.executable, "-c", CHAO_RECEIVER], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        ready = json.loads(_line(receiver))
        assert ready["mtu"] == 1500
        sent = net["a"].run(
            [sys.executable, "-c", CHAO_SENDER, ready["mac"]],
            capture_output=True,
            text=True,
            env=env,
            timeout=TIMEOUT,
        )
        assert sent.returncode == 0, sent.stderr
        assert sent.stdout.strip() == "0"
        frames = [bytes.fromhex(f) for f in json.loads(_line(receiver))["frames"]]
        assert [f[14:] for f in frames] == [b"CHAO over BPF"]
        assert frames[0][:6] == bytes.fromhex(ready["mac"])
    finally:
        receiver.kill()
        receiver.wait()


def test_teardown_leaves_nothing(tmp_path_factory: pytest.TempPathFactory) -> None:
    network = FreeBSDNetwork(pair(), root=str(tmp_path_factory.mktemp("runs"))).build()
    run_id = network.plan.run_id
    network.destroy()
    assert f"rsh{run_id}_" not in _jails()
    links = subprocess.run(["ifconfig", "-l"], capture_output=True, text=True, check=True)
    assert host_ifname(run_id, 0, "a") not in links.stdout.split()
    assert host_ifname(run_id, 0, "b") not in links.stdout.split()


TCP_SERVER = textwrap.dedent(
    """
    import socket
    srv = socket.create_server(("10.0.0.2", 8080))
    print("ready", flush=True)
    conn, _ = srv.accept()
    conn.sendall(conn.recv(100))
    conn.close()  # the server closes first: its side sits in TIME_WAIT, holding the vnet
    """
)

TCP_CLIENT = textwrap.dedent(
    """
    import socket
    with socket.create_connection(("10.0.0.2", 8080), timeout=5) as c:
        c.sendall(b"ping over tcp")
        print(c.recv(100).decode())
    """
)


def test_teardown_after_tcp_leaves_no_epair(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The case that leaked: TCP in TIME_WAIT keeps a removed jail dying for a minute or
    more, and interfaces still in it come back to the host only when it dies."""
    root = str(tmp_path_factory.mktemp("runs"))
    network = FreeBSDNetwork(pair(), root=root).build()
    run_id = network.plan.run_id
    try:
        server = network["b"].popen(
            [sys.executable, "-c", TCP_SERVER], stdout=subprocess.PIPE, text=True
        )
        assert _line(server).strip() == "ready"
        done = network["a"].run(
            [sys.executable, "-c", TCP_CLIENT], capture_output=True, text=True, timeout=TIMEOUT
        )
        assert done.stdout.strip() == "ping over tcp", done.stderr
        server.wait(timeout=TIMEOUT)
    finally:
        network.destroy()
    links = subprocess.run(["ifconfig", "-l"], capture_output=True, text=True, check=True)
    left = [n for n in links.stdout.split() if n.startswith(f"rs{run_id}l")]
    assert left == []
    # Destroyed inside the jails, so a jail still dying holds no epair to hand back later:
    # nothing was recorded for the reaper.
    ledger = os.path.join(root, RETURNING)
    recorded = os.listdir(ledger) if os.path.isdir(ledger) else []
    assert recorded == []
    assert reap_returned_epairs(root) == []
