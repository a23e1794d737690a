"""Both command lines end quietly when stdout closes early, as ``| head -1`` does to them.

Each command runs in a namespace with stdout a pipe whose reader is gone: it must end as a
program killed by SIGPIPE does (status 128+13, nothing on stderr), never with a traceback,
and leave nothing behind (the peers are still there for the next test; the harness checks).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness.clients import PROTOCOLS, client_args, rawstack_argv

pytestmark = pytest.mark.netns
CLI = [sys.executable, "-m", "rawstack_harness.cli"]


def closed_stdout(run: Any, argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``run(argv, ...)`` (a node's ``run`` or ``subprocess.run``) with a reader-less stdout."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        out: subprocess.CompletedProcess[str] = run(
            argv, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60
        )
    finally:
        os.close(write_end)
    return out


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_clients(netns_pair: Any, protocol: str) -> None:
    a, b = netns_pair["a"], netns_pair["b"]
    args = client_args(
        protocol,
        host=b.addr(),
        iface=a.ifnames()[0],
        mac=b.mac(),
        ready=netns_pair.peers["b"].ready,
    )
    argv = rawstack_argv(*args)
    out = closed_stdout(a.run, argv)
    assert (out.returncode, out.stderr) == (-signal.SIGPIPE, "")


def test_ping_with_human_output(net: Any) -> None:
    """``rawstack ping -c3 HOST | head -1``: the line-by-line output of the issue's report."""
    out = closed_stdout(
        net["a"].run, rawstack_argv("ping", "-c", "3", "-i", "0.1", net["b"].addr())
    )
    assert (out.returncode, out.stderr) == (-signal.SIGPIPE, "")


@pytest.mark.parametrize(
    "args",
    [
        ["serve-all", "--iface", "eth0"],
        ["http", "serve", "--port", "0"],
        ["udp", "serve", "--port", "0"],
        ["chao", "serve", "--iface", "eth0"],
        ["icmp", "respond"],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_server_whose_ready_line_cannot_be_read(net: Any, args: list[str]) -> None:
    """It stops as it would on SIGTERM (its own "stopped" log lines), then dies of SIGPIPE."""
    out = closed_stdout(net["b"].run, rawstack_argv(*args))
    assert out.returncode == -signal.SIGPIPE
    assert "Traceback" not in out.stderr
    assert "Error" not in out.stderr


def test_syn_probe(net: Any) -> None:
    """Port 9 on b: the kernel answers RST (closed), and the verdict line cannot be written."""
    out = closed_stdout(net["a"].run, rawstack_argv("syn-probe", net["b"].addr(), "9", "-W", "2"))
    assert (out.returncode, out.stderr) == (-signal.SIGPIPE, "")


@pytest.mark.parametrize("command", [["status", "--json"], ["clean", "--json"], ["demo"]])
def test_netns_harness(tmp_path: Path, command: list[str]) -> None:
    root = tmp_path / "runs"
    out = closed_stdout(subprocess.run, [*CLI, "--run-dir", str(root), *command])
    assert (out.returncode, out.stderr) == (-signal.SIGPIPE, "")
    left = [p for p in root.iterdir() if p.is_dir()] if root.exists() else []
    assert not left, "a run directory was left behind"


def test_netns_harness_up_and_down(tmp_path: Path) -> None:
    """``up`` whose report cannot be written still keeps the topology; ``down`` removes it."""
    root, name = tmp_path / "runs", f"closed{os.getpid()}"
    up = closed_stdout(subprocess.run, [*CLI, "--run-dir", str(root), "up", "pair", "--name", name])
    down = closed_stdout(subprocess.run, [*CLI, "--run-dir", str(root), "down", name])
    status = subprocess.run(
        [*CLI, "--run-dir", str(root), "status", "--json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert (up.stderr, down.stderr) == ("", "")
    assert up.returncode in (0, -signal.SIGPIPE)
    assert down.returncode in (0, -signal.SIGPIPE)
    assert name not in status.stdout
