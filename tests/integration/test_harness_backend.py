"""The Linux backend: what a built pair looks like, from inside and from the root namespace."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _loopback import skip_if_rootless
from rawstack_harness import Network, Run
from rawstack_harness.topology import SpecError, SpecLike, pair, to_dict

pytestmark = pytest.mark.netns
CLI = [sys.executable, "-m", "rawstack_harness.cli"]


def _root_snapshot() -> dict[str, Any]:
    """Links, addresses, routes, rules and net.* sysctls of the root namespace."""
    ip = {
        k: subprocess.run(
            ["ip", "-j", *k.split()], capture_output=True, text=True, check=True
        ).stdout
        for k in (
            "link show",
            "addr show",
            "route show table all",
            "-6 route show table all",
            "rule show",
        )
    }
    sysctls = {}
    for dirpath, _, files in os.walk("/proc/sys/net"):
        for name in files:
            path = os.path.join(dirpath, name)
            if "/conf/" in path and ("/stable_secret" in path):
                continue
            try:
                with open(path) as fh:
                    sysctls[path] = fh.read()
            except OSError:
                continue
    return {"ip": ip, "sysctl": sysctls}


def test_pair_is_reachable_and_root_namespace_untouched(netns_topology: Callable[..., Any]) -> None:
    before = _root_snapshot()
    net = netns_topology(pair())
    a, b = net["a"], net["b"]
    assert os.path.exists(f"/run/netns/{a.netns}")
    # Nothing of ours in the root namespace: the veth was born inside a's namespace.
    assert _root_snapshot()["ip"]["link show"] == before["ip"]["link show"]
    out = a.run(["ping", "-c1", "-W2", b.addr(4)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    out = b.run(["ping", "-6", "-c1", "-W2", a.addr(6)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert a.mac() != b.mac()
    net.destroy()
    assert not os.path.exists(f"/run/netns/{a.netns}")
    after = _root_snapshot()
    assert after["ip"] == before["ip"]
    assert after["sysctl"] == before["sysctl"]


def test_socket_opens_inside_the_node(netns_topology: Callable[..., Any]) -> None:
    net = netns_topology(pair())
    with net["b"].socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("10.0.0.2", 0))
        port = server.getsockname()[1]
        with net["a"].socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(b"x", ("10.0.0.2", port))
            server.settimeout(2)
            data, (src, _) = server.recvfrom(16)
    assert (data, src) == (b"x", "10.0.0.1")
    with pytest.raises(
        OSError, match="Cannot assign requested address"
    ):  # 10.0.0.2 is not an address of the test's own namespace
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).bind(("10.0.0.2", 0))


def test_spec_options_applied(netns_topology: Callable[..., Any]) -> None:
    raw = to_dict(pair())
    raw["links"][0]["a"].update(mac="02:00:00:00:00:0a", mtu=1400)
    raw["nodes"][1]["sysctls"] = {"net.ipv4.ip_forward": "1"}
    net = netns_topology(raw)
    assert net["a"].mac() == "02:00:00:00:00:0a"
    link = json.loads(
        net["a"].run(["ip", "-j", "link", "show", "eth0"], capture_output=True, text=True).stdout
    )
    assert link[0]["mtu"] == 1400
    assert net["b"].sysctl("net.ipv4.ip_forward") == "1"
    assert net["a"].sysctl("net.ipv4.ip_forward") == "0"


def test_line3_forwards(netns_topology: Callable[..., Any]) -> None:
    from rawstack_harness.topology import line3

    net = netns_topology(line3())
    out = net["a"].run(["ping", "-c1", "-W2", "10.0.2.2"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout


def test_bad_spec_creates_nothing(
    netns_run: Run, netns_topology: Callable[[SpecLike], Network], tmp_path: Path
) -> None:
    """A spec error comes before anything exists, through the fixture and through the CLI.

    Only this run's namespaces are compared: other xdist workers create and remove their own
    under /run/netns meanwhile.
    """
    raw = to_dict(pair())
    raw["links"][0]["b"]["addresses"][0] = "10.0.0.300/24"

    def ours() -> set[str]:
        names = os.listdir("/run/netns") if os.path.isdir("/run/netns") else []
        return {n for n in names if n.startswith(f"rsh{netns_run.id}")}

    before = ours()
    with pytest.raises(SpecError, match=r"links\[0\]\.b\.addresses\[0\]"):
        netns_topology(raw)
    assert ours() == before
    spec = tmp_path / "bad.yaml"
    spec.write_text(json.dumps(raw))
    root = tmp_path / "runs"
    done = subprocess.run(
        [*CLI, "--run-dir", str(root), "up", str(spec)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "links[0].b.addresses[0]" in done.stderr
    assert not root.exists() or not any(root.iterdir())


def test_cli_up_status_down(tmp_path: Path) -> None:
    skip_if_rootless(
        "a rootless keeper's namespace files are in its own mount namespace, where `exec` "
        "reaches them (test_rootless_namespaces.py tests that)"
    )
    spec = tmp_path / "t.yaml"
    spec.write_text(json.dumps(to_dict(pair("kept"))))
    name = f"t{os.getpid()}"
    up = subprocess.run(
        [*CLI, "up", str(spec), "--name", name, "--json"],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert up.returncode == 0, up.stderr
    nodes = json.loads(up.stdout)["topology"]["nodes"]
    assert all(os.path.exists(n["path"]) for n in nodes.values())
    status = json.loads(
        subprocess.run(
            [*CLI, "status", "--json"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert any(r["name"] == name and r["alive"] for r in status["runs"])
    down = subprocess.run(
        [*CLI, "down", name], capture_output=True, text=True, timeout=60, check=False
    )
    assert down.returncode == 0, down.stderr
    assert not any(os.path.exists(n["path"]) for n in nodes.values())


def test_cli_bad_spec_names_the_field(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "nodes: [{name: a}]\n"
        "links: [{a: {node: a, ifname: waytoolonginterfacename}, b: {node: a}}]\n"
    )
    out = subprocess.run([*CLI, "up", str(spec)], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert out.stderr.startswith("netns-harness: error: links[0].a.ifname:")
    assert len(out.stderr.splitlines()) == 1
