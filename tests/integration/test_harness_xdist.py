"""A real ``pytest -n 2`` run: two workers hold topologies at the same moment, no clashes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns

# Two tests, so xdist's load scheduling gives one to each worker. Each builds the same
# spec (same node names, same addresses), writes what it got, then waits until the other
# worker's topology exists too before checking its own: both are alive at once.
INNER = """
import json, os, time
from pathlib import Path
from rawstack_harness.topology import line3, pair

SHARED = Path(os.environ["RSH_SHARED"])

def _meet_and_check(net, me):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "none")
    info = {"worker": worker, "run": str(net.run.dir), "prefix": net.prefix,
            "paths": [n.path for n in net.nodes.values()]}
    (SHARED / f"{me}.tmp").write_text(json.dumps(info))
    os.rename(SHARED / f"{me}.tmp", SHARED / f"{me}.json")
    deadline = time.monotonic() + 60
    while len(list(SHARED.glob("*.json"))) < 2:
        assert time.monotonic() < deadline, "the other worker never built its topology"
        time.sleep(0.02)
    others = [json.loads(p.read_text()) for p in SHARED.glob("*.json") if p.stem != me]
    assert all(os.path.exists(p) for o in others for p in o["paths"])
    a = net["a"]
    out = a.run(["ping", "-c1", "-W2", net["b"].addr(4)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # Neither tears down before both have checked: teardown takes a few ms, less than the
    # other worker's 20 ms poll above.
    (SHARED / f"{me}.checked").touch()
    while len(list(SHARED.glob("*.checked"))) < 2:
        assert time.monotonic() < deadline, "the other worker never finished its check"
        time.sleep(0.02)

def test_pair(netns_topology):
    _meet_and_check(netns_topology(pair()), "pair")

def test_line3(netns_topology):
    _meet_and_check(netns_topology(line3()), "line3")
"""


def test_two_workers_build_at_once_and_leave_nothing(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist", reason="needs pytest-xdist")
    shared = tmp_path / "shared"
    shared.mkdir()
    root = tmp_path / "runs"
    monkeypatch.setenv("RSH_SHARED", str(shared))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", f"--netns-run-dir={root}"
    )
    result.assert_outcomes(passed=2)
    got = {p.stem: json.loads(p.read_text()) for p in shared.glob("*.json")}
    assert set(got) == {"pair", "line3"}
    assert {g["worker"] for g in got.values()} == {"gw0", "gw1"}
    assert got["pair"]["run"] != got["line3"]["run"]
    assert got["pair"]["prefix"] != got["line3"]["prefix"]
    paths = [p for g in got.values() for p in g["paths"]]
    assert len(paths) == len(set(paths)) == 5
    assert not [p for p in paths if os.path.exists(p)]
    mounts = Path("/proc/self/mountinfo").read_text()
    assert not [p for p in paths if p in mounts]
    assert not [Path(g["run"]) for g in got.values() if Path(g["run"]).exists()]
    # No process of those runs is left, reapers included.
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert not [line for line in ps.stdout.splitlines() if str(root) in line]
