"""Nothing outlives a run: SIGKILL pytest mid-test and watch the reaper remove everything."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from _loopback import exited, start_inner_pytest, wait_for

pytestmark = pytest.mark.netns

INNER = """
import os, time
from rawstack_harness.topology import pair

def test_hang(netns_topology, tmp_path):
    net = netns_topology(pair())
    child = net["a"].popen(["sleep", "300"])
    with open(os.environ["RSH_TEST_OUT"], "w") as fh:
        fh.write(" ".join([net["a"].path, net["b"].path, str(child.pid), str(net.run.dir)]))
    time.sleep(300)
"""


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_pytest_leaves_nothing(tmp_path: Path, sig: int) -> None:
    proc, out = start_inner_pytest(tmp_path, INNER)
    try:
        assert wait_for(lambda: out.exists() and out.read_text(), 30), "inner test never built"
        ns_a, ns_b, pid, run_dir = out.read_text().split()
        assert os.path.exists(ns_a)
        assert os.path.exists(run_dir)
        os.kill(proc.pid, sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    def gone() -> bool:
        return (
            not os.path.exists(ns_a)
            and not os.path.exists(ns_b)
            and not os.path.exists(run_dir)
            and exited(pid)
            and ns_a not in _mounts()
        )

    assert wait_for(gone, 10), "resources outlived the killed run"
