"""``netns-harness demo``: every rawstack client both ways, as root, leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns]

EXPECTED = {
    ("icmp", "a->b", "kernel"),
    ("icmp", "b->a", "kernel"),
    *((p, d, "rawstack") for p in ("chao", "icmp", "http", "udp") for d in ("a->b", "b->a")),
    *((p, d, "rawstack") for p in ("icmp", "http") for d in ("a->r->b", "b->r->a")),
    # IPv6, on the pair and through r: icmp6, http6 and udp6 both ways.
    *(
        (f"{p}6", d, "rawstack")
        for p in ("icmp", "http", "udp")
        for d in ("a->b", "b->a", "a->r->b", "b->r->a")
    ),
}


def test_demo_json_every_exchange_ok_and_nothing_left(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    done = subprocess.run(
        [sys.executable, "-m", "rawstack_harness.cli", "--run-dir", str(root), "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = json.loads(done.stdout)
    failed = [r for r in out["results"] if not r["ok"]]
    assert done.returncode == 0, (failed, done.stderr)
    assert not failed
    rows = {(r["protocol"], r["direction"], r["server"]) for r in out["results"]}
    assert rows == EXPECTED
    assert len(out["results"]) == len(EXPECTED)
    for r in out["results"]:
        assert set(r) >= {"protocol", "direction", "ok", "rtt_ms"}
        assert 0 < r["rtt_ms"] < 2000
    prefix = f"rsh{out['run']}"
    assert not [n for n in os.listdir("/run/netns") if n.startswith(prefix)]
    assert prefix not in Path("/proc/self/mountinfo").read_text()
    assert not (root / out["run"]).exists()
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    assert not [line for line in ps.stdout.splitlines() if str(root) in line]
