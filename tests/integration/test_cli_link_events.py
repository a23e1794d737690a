"""``netns-harness link|impair|member`` on a topology kept with ``netns-harness up``."""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Iterator

import pytest
from _loopback import skip_if_rootless

pytestmark = pytest.mark.netns

CLI = [sys.executable, "-m", "rawstack_harness.cli"]
# Where no reply may come: a reply across these veths takes well under a millisecond.
SILENCE_WAIT = "0.3"
SPEC = """
name: ev
nodes: [{name: a}, {name: b}, {name: c}]
links:
  - a: {node: a, addresses: [10.0.0.1/24]}
    b: {node: b, addresses: [10.0.0.2/24]}
    impair: {delay: 0ms}
segments:
  - name: lan
    members:
      - {node: a, ifname: eth1, addresses: [10.9.0.1/24]}
      - {node: c, ifname: eth0, addresses: [10.9.0.3/24]}
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """A topology kept by ``up`` (its relay belongs to the keeper); ``down`` at the end.

    One for the module: each test changes only its own part of it and puts it back (the
    link a-b; the segment lan; nothing), so none sees another's changes, even one left
    half-done by a failure.
    """
    skip_if_rootless(
        "these tests enter the kept namespaces with `ip netns exec`, which cannot see a "
        "rootless keeper's (`netns-harness exec` can)"
    )
    spec = tmp_path_factory.mktemp("ev") / "ev.yaml"
    spec.write_text(SPEC)
    name = f"ev{os.getpid()}"
    up = cli("up", str(spec), "--name", name, "--json")
    assert up.returncode == 0, up.stderr
    nodes = json.loads(up.stdout)["topology"]["nodes"]
    try:
        yield name, {n: d["path"] for n, d in nodes.items()}
    finally:
        assert cli("down", name).returncode == 0


def ping(path: str, dst: str, count: int = 5, wait: str = "1") -> list[float]:
    netns = os.path.basename(path)
    argv = ["ip", "netns", "exec", netns, "ping", "-n", "-c", str(count), "-i", "0.05", "-W", wait]
    out = subprocess.run([*argv, dst], capture_output=True, text=True, check=False).stdout
    return [float(t) for t in re.findall(r"time=([\d.]+) ms", out)]


def test_link_down_up_and_impair_from_the_command_line(kept: tuple[str, dict[str, str]]) -> None:
    name, paths = kept
    assert ping(paths["a"], "10.0.0.2")
    done = cli("link", name, "a", "b", "down")
    assert done.returncode == 0, done.stderr
    assert "down" in done.stdout
    assert not ping(paths["a"], "10.0.0.2", 2, SILENCE_WAIT)
    assert cli("link", name, "a:eth0", "b:eth0", "up").returncode == 0
    assert ping(paths["a"], "10.0.0.2")
    # The keeper's relay takes the new delay through its control socket.
    changed = cli("impair", name, "a", "b", "{delay: 20ms}")
    assert changed.returncode == 0, changed.stderr
    assert "delay 20ms" in changed.stdout
    assert statistics.median(ping(paths["a"], "10.0.0.2")) >= 38
    assert cli("impair", name, "a", "b", "clear").returncode == 0
    assert statistics.median(ping(paths["a"], "10.0.0.2")) < 10


def test_member_down_and_up(kept: tuple[str, dict[str, str]]) -> None:
    name, paths = kept
    assert ping(paths["a"], "10.9.0.3")
    assert cli("member", name, "lan", "c", "down").returncode == 0
    assert not ping(paths["a"], "10.9.0.3", 2, SILENCE_WAIT)
    assert cli("member", name, "lan", "c", "up").returncode == 0
    assert ping(paths["a"], "10.9.0.3")


def test_bad_events_are_usage_errors(kept: tuple[str, dict[str, str]]) -> None:
    name, _ = kept
    bad = cli("link", name, "a", "z", "down")
    assert bad.returncode == 2
    assert "no link a-z" in bad.stderr
    assert cli("link", name, "a", "b", "sideways").returncode == 2
    assert cli("link", "nosuchtopology", "a", "b", "up").returncode == 2
    assert "not a" in cli("impair", name, "a", "b", "{delay: 20}").stderr
