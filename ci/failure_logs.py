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

__all__ = ["log_name"]

LOG_DIR = pytest.StashKey[Path]()


def log_name(nodeid: str) -> str:
    """A file name for a node id: path separators and brackets become safe characters."""
    name = re.sub(r"[^\w.\-\[\]=,]+", "_", nodeid).strip("_")
    return f"{name[:200]}.log"


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
    config.stash[LOG_DIR] = config.rootpath / chosen


@pytest.hookimpl(trylast=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _CONFIG.get("config")
    if config is None or LOG_DIR not in config.stash or not report.failed:
        return
    directory = config.stash[LOG_DIR]
    directory.mkdir(parents=True, exist_ok=True)
    parts = [f"{report.nodeid} failed in {report.when}\n\n{report.longreprtext}\n"]
    parts += [f"\n===== {title} =====\n{content}\n" for title, content in report.sections]
    with (directory / log_name(report.nodeid)).open("a", encoding="utf-8") as f:
        f.write("".join(parts))


_CONFIG: dict[str, pytest.Config] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config
