"""A kept topology answers ICMP as in the test (the kernel's echo, back on), also under -n."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _loopback import skip_if_rootless

pytestmark = pytest.mark.netns
CLI = [sys.executable, "-m", "rawstack_harness.cli"]

INNER = """
import os

def test_breaks(netns_pair):
    assert netns_pair["b"].sysctl("net.ipv4.icmp_echo_ignore_all") == "1"  # rawstack's
    with open(os.environ["RSH_TEST_OUT"], "w") as fh:
        fh.write(netns_pair["a"].path + " " + netns_pair["b"].path)
    assert False, "on purpose"
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_kept_nodes_answer_pings_and_the_hint_is_printed(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: list[str]
) -> None:
    skip_if_rootless("a rootless run's namespaces end with its pid namespace: nothing to keep")
    root = tmp_path / "runs"
    out = tmp_path / "paths"
    monkeypatch.setenv("RSH_TEST_OUT", str(out))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *workers, "--netns-keep-failed", f"--netns-run-dir={root}"
    )
    try:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*netns: kept topologies*", "*test_breaks: kept as*"])
        ns_a, ns_b = out.read_text().split()
        nsb = os.path.basename(ns_b)
        echo = subprocess.run(
            ["ip", "netns", "exec", nsb, "sysctl", "-n", "net.ipv4.icmp_echo_ignore_all"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert echo.stdout.strip() == "0"
        echo6 = ["ip", "netns", "exec", nsb, "sysctl", "-n", "net.ipv6.icmp.echo_ignore_all"]
        assert subprocess.run(echo6, capture_output=True, text=True, check=False).stdout == "0\n"
        ping = subprocess.run(
            ["nsenter", f"--net={ns_a}", "ping", "-c1", "-W2", "10.0.0.2"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        subprocess.run(
            [*CLI, "--run-dir", str(root), "down", "test_breaks"], capture_output=True, check=False
        )
