"""A peer that dies mid-test fails that test, with its exit status and the tail of its log."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.netns]

INNER = """
import os, signal
from rawstack_harness import clients

def test_killed(netns_pair):
    proc = netns_pair.peers["b"].proc
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

def test_exits(netns_pair):
    proc = netns_pair.peers["b"].proc
    os.kill(proc.pid, signal.SIGTERM)  # serve-all closes its peers and exits 0
    proc.wait()

def test_symptom(netns_pair):
    proc = netns_pair.peers["b"].proc
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # HTTP: the dead server's closed port answers with a RST at once (a UDP client would
    # wait out its reply timeout).
    clients.run_client("http", netns_pair["a"], netns_pair["b"],
                       ready=netns_pair.peers["b"].ready)

def test_healthy(netns_pair):
    assert netns_pair.peers["a"].alive() and netns_pair.peers["b"].alive()
"""


def test_dead_peer_fails_the_test_with_status_and_log_tail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--netns-peers=http,udp")
    result.assert_outcomes(passed=1, failed=3)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*_ test_killed _*",
            "serve-all on node b (eth0) was killed by signal 9 (SIGKILL); stderr tail:",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_exits _*",
            "serve-all on node b (eth0) exited with status 0; stderr tail:",
            # serve-all's own last words, logged on the way out after SIGTERM.
            "[[]*] stopped {*}",
        ]
    )
    # The death is the reported failure; the client's error, its symptom, is shown first.
    result.stdout.fnmatch_lines(
        [
            "*_ test_symptom _*",
            "*'rawstack http get http://10.0.0.2:*/ * in node a: exit status 1: *",
            "During handling of the above exception, another exception occurred:",
            "serve-all on node b (eth0) was killed by signal 9 (SIGKILL); stderr tail:",
        ]
    )
    result.stdout.fnmatch_lines(
        ["FAILED test_inner.py::test_killed - Failed: serve-all on node b (eth0) was k*"]
    )
    # Each failure carries both nodes' logs as report sections.
    assert out.count("netns peer log: node b") == 3
    assert "::test_healthy" not in "".join(
        line for line in out.splitlines() if line.startswith("FAILED")
    )
