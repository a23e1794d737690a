"""Nothing outlives a run: SIGKILL pytest mid-test and watch the reaper remove everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _loopback import exited, wait_for

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
    (tmp_path / "test_inner.py").write_text(INNER)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp_path / 'inner'}",  # else a killed run's stays locked in /tmp
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env={**os.environ, "RSH_TEST_OUT": str(out)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
