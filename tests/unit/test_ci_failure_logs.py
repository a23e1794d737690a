"""ci/failure_logs.py: a failed test's report sections (peer logs) end up in one file each."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "ci" / "shard.py"

CONFTEST = """
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        report.sections.append(("netns peer log: node a", "peer a said goodbye"))
    return report
"""

SUITE = """
def test_ok():
    pass

def test_broken():
    assert 1 + 1 == 3, "arithmetic"
"""


def test_failed_test_sections_are_written_once_under_xdist(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    (tmp_path / "test_suite.py").write_text(SUITE, encoding="utf-8")
    # Without the installed plugins (the harness, hypothesis, ...) a run starts 3x faster.
    argv = ["-p", "no:cacheprovider", "-p", "xdist.plugin", "-n", "2", "--failure-log-dir", "out"]
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    logs = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in logs] == ["test_suite.py_test_broken.log"]
    text = logs[0].read_text(encoding="utf-8")
    assert text.startswith("test_suite.py::test_broken failed in call")
    assert "arithmetic" in text
    assert text.count("===== netns peer log: node a =====\npeer a said goodbye") == 1
