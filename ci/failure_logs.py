"""Keep what a failed test left behind (peer logs, captured output) as files for CI artifacts.

The harness attaches each peer's log to a failing test's report as a section; JUnit XML
keeps only the "Captured ..." sections, so this plugin writes every section of every failed
report to ``<dir>/<node id>.log``. Loaded by ``ci/shard.py`` (``-p failure_logs``); under
pytest-xdist only the controller writes, so each failure is written once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

__all__ = ["FailureLogs", "log_name"]


def log_name(nodeid: str) -> str:
    """A file name for a node id: path separators and brackets become safe characters."""
    name = re.sub(r"[^\w.\-\[\]=,]+", "_", nodeid).strip("_")
    return f"{name[:200]}.log"


class FailureLogs:
    """Writes each failed report (traceback, then every section) under one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not report.failed:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        parts = [f"{report.nodeid} failed in {report.when}\n\n{report.longreprtext}\n"]
        parts += [f"\n===== {title} =====\n{content}\n" for title, content in report.sections]
        with (self.directory / log_name(report.nodeid)).open("a", encoding="utf-8") as f:
            f.write("".join(parts))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("failure-logs", "keep failed tests' report sections as files")
    group.addoption(
        "--failure-log-dir",
        default=None,
        metavar="DIR",
        help="where to write them (default: $RAWSTACK_CI_ARTIFACTS/failures, "
        "else .ci-artifacts/failures under the rootdir)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return  # an xdist worker: the controller receives the same reports
    chosen = config.getoption("--failure-log-dir")
    if chosen is None:
        artifacts = os.environ.get("RAWSTACK_CI_ARTIFACTS") or ".ci-artifacts"
        chosen = str(Path(artifacts) / "failures")
    config.pluginmanager.register(FailureLogs(config.rootpath / chosen), "failure-logs-writer")
