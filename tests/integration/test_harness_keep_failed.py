"""``--netns-keep-failed``: a failed test's topology outlives pytest until ``down`` removes it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from _loopback import skip_if_rootless

pytestmark = pytest.mark.netns
CLI = [sys.executable, "-m", "rawstack_harness.cli"]

INNER = """
import os
from rawstack_harness.topology import pair

def test_breaks(netns_topology):
    net = netns_topology(pair())
    with open(os.environ["RSH_TEST_OUT"], "w") as fh:
        fh.write(" ".join([net["a"].path, net["b"].path]))
    assert False, "on purpose"

def test_passes(netns_topology):
    net = netns_topology(pair())
    with open(os.environ["RSH_TEST_OUT"] + ".ok", "w") as fh:
        fh.write(net["a"].path)
"""


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--run-dir", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_failed_topology_is_kept_and_down_removes_it(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_if_rootless("a rootless run's namespaces end with its pid namespace: nothing to keep")
    root = tmp_path / "runs"
    out = tmp_path / "paths"
    monkeypatch.setenv("RSH_TEST_OUT", str(out))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--netns-keep-failed", f"--netns-run-dir={root}"
    )
    try:
        result.assert_outcomes(passed=1, failed=1)
        ns_a, ns_b = out.read_text().split()
        passed_ns = (tmp_path / "paths.ok").read_text()
        prefix = os.path.basename(ns_a)[: -len("-a")]
        result.stdout.fnmatch_lines(
            [
                "*netns: kept topologies*",
                f"*test_inner.py::test_breaks: kept as 'test_breaks'; enter a node with "
                f"`netns-harness --run-dir {root} exec test_breaks <node> -- COMMAND` (or "
                f"`nsenter --net=/run/netns/{prefix}-<node>`*"
                f"remove with `netns-harness --run-dir {root} down test_breaks`",
            ]
        )
        assert "test_passes: kept" not in result.stdout.str()
        # The passing test's topology went; the failed one's is still there and usable.
        assert not os.path.exists(passed_ns)
        assert os.path.exists(ns_a)
        assert os.path.exists(ns_b)
        ping = subprocess.run(
            ["nsenter", f"--net={ns_a}", "ping", "-c1", "-W2", "10.0.0.2"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        # The same through `exec`, which rootless mode relies on; the command's status is its.
        ran = _cli(root, "exec", "test_breaks", "a", "--", "ping", "-c1", "-W2", "10.0.0.2")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "1 received" in ran.stdout
        assert _cli(root, "exec", "test_breaks", "b", "--", "sh", "-c", "exit 7").returncode == 7
        status = json.loads(_cli(root, "status", "--json").stdout)
        (kept,) = [r for r in status["runs"] if r["name"] == "test_breaks"]
        assert kept["alive"]
        assert sorted(kept["netns"]) == sorted([ns_a, ns_b])
        # A second `clean` must not touch a live keeper's topology.
        assert _cli(root, "clean").returncode == 0
        assert os.path.exists(ns_a)
        down = _cli(root, "down", "test_breaks")
        assert down.returncode == 0, down.stderr
        assert down.stdout.strip() == "test_breaks: down"
    finally:
        _cli(root, "down", "test_breaks")
    assert not os.path.exists(ns_a)
    assert not os.path.exists(ns_b)
    assert not re.search(re.escape(ns_a), Path("/proc/self/mountinfo").read_text())
    assert not root.exists() or not [p for p in root.iterdir() if not p.name.startswith(".")]
    again = _cli(root, "down", "test_breaks")
    assert again.returncode == 2
    assert again.stderr == "netns-harness: error: no kept topology named 'test_breaks'\n"
