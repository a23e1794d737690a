"""``python -m bench --quick`` really measures and writes a report (needs root; else skips)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_quick_run_writes_a_report(tmp_path: Path) -> None:
    from rawstack_harness.backends.linux.env import missing_requirement

    reason = missing_requirement()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "benchmarks.md"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "setup,udp", "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    text = out.read_text(encoding="utf-8")
    assert "## Machine" in text
    assert "python -m bench --quick --only setup,udp" in text
    assert "#### Pair setup + teardown" in text
    assert "#### UDP echo round trips" in text
    # Every row has a verdict: a measured figure or the reason it is missing.
    rows = [x for x in text.splitlines() if x.startswith("| ") and x.count("|") >= 6]
    assert rows
    assert not any(x.rstrip().endswith("| - |") for x in rows)
