"""The FreeBSD CI job's scripts: the suite's status survives the VM step, then fails the job.

vmactions/freebsd-vm copies the work tree back only after a `run` that succeeded, so
``ci/freebsd.sh --status-file F`` exits 0 with the suite's status in F, and
``ci/exit-status.sh F`` (a host step after copy-back) exits with it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", *argv], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize("status", ["0", "1", "77"])
def test_exit_status_is_the_recorded_one(tmp_path: Path, status: str) -> None:
    (tmp_path / "status").write_text(f"{status}\n")
    assert _sh("ci/exit-status.sh", str(tmp_path / "status")).returncode == int(status)


@pytest.mark.parametrize(("content", "says"), [(None, "is missing"), ("boom", "not an exit")])
def test_no_or_a_bad_record_fails(tmp_path: Path, content: str | None, says: str) -> None:
    if content is not None:
        (tmp_path / "status").write_text(content)
    done = _sh("ci/exit-status.sh", str(tmp_path / "status"))
    assert done.returncode == 1
    assert says in done.stderr


@pytest.mark.skipif(os.uname().sysname == "FreeBSD", reason="would run the real suite")
def test_freebsd_sh_records_a_failure_and_exits_0(tmp_path: Path) -> None:
    record = tmp_path / "artifacts" / "freebsd-status"
    done = _sh("ci/freebsd.sh", "--status-file", str(record))
    assert done.returncode == 0, done.stderr
    # Off FreeBSD the suite refuses to start (2), or (not root) 77: either way recorded.
    expected = "77" if os.geteuid() != 0 else "2"
    assert record.read_text().strip() == expected
    assert "not FreeBSD" in done.stderr or "must run as root" in done.stderr
    assert _sh("ci/exit-status.sh", str(record)).returncode == int(expected)
