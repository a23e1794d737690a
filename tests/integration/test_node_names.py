"""Node names resolve inside every node (node.run, node.popen, ip netns exec); nowhere else."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.netns


def test_ping_b_by_name_from_a(netns_topology: Any) -> None:
    if not os.path.exists("/etc/hosts"):  # a minimal root (debootstrap minbase) has none
        pytest.skip("needs /etc/hosts: node names are bind-mounted over it, never created")
    net = netns_topology("line3")
    host_before = Path("/etc/hosts").read_text()
    # -w: one request a second until a reply, so a first packet lost to neighbour discovery
    # through the router (seen on a loaded machine) costs a second, not the test.
    out = net["a"].run(["ping", "-c1", "-w10", "b"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "10.0.2.2" in out.stdout or "fd00:2::2" in out.stdout
    got = net["b"].run(["getent", "ahosts", "r"], capture_output=True, text=True).stdout
    assert "10.0.1.1" in got
    assert "fd00:2::1" in got
    proc = net["r"].popen(["getent", "hosts", "a"], stdout=subprocess.PIPE, text=True)
    assert proc.communicate(timeout=10)[0].split()[0] in ("10.0.1.2", "fd00:1::2")
    # ip netns exec (how a kept topology is entered) reads the same file.
    netns = net["a"].netns
    argv = ["ip", "netns", "exec", netns, "getent", "hosts", "b"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.stdout.split()[0] in ("10.0.2.2", "fd00:2::2")
    # Nothing outside the run changed: the machine's resolver does not know the nodes.
    assert Path("/etc/hosts").read_text() == host_before
    here = subprocess.run(["getent", "hosts", "b"], capture_output=True, text=True, check=False)
    assert "10.0.2.2" not in here.stdout


def test_the_names_files_go_with_the_topology(netns_topology: Any) -> None:
    net = netns_topology("pair")
    hosts = net["a"].hosts
    assert hosts is not None
    assert os.path.exists(hosts)
    net.destroy()
    assert not os.path.exists(hosts)
    assert not os.path.exists(os.path.dirname(hosts))


def test_the_names_files_are_written_on_first_use_not_at_build(netns_topology: Any) -> None:
    net = netns_topology("pair")
    folders = [os.path.join("/etc/netns", net[n].netns) for n in ("a", "b")]
    assert not any(os.path.exists(f) for f in folders)
    assert net["b"].run(["true"]).returncode == 0  # a process in one node: every node's file
    assert all(os.path.exists(os.path.join(f, "hosts")) for f in folders)
