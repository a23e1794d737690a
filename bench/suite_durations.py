"""A pytest plugin the suite benchmark loads (``-p bench.suite_durations``).

It appends every phase pytest reports (setup, call, teardown of each test) to the JSON-lines
file ``--bench-durations`` names, with its exact duration: ``--durations`` rounds to 10 ms,
and most fixture phases here are shorter than that. Under xdist only the controller records
(it sees every worker's reports), so no two processes append to the file at once.
"""

from __future__ import annotations

import json

import pytest

OPTION = "--bench-durations"


class _Recorder:
    def __init__(self, path: str) -> None:
        self.path = path

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps([report.nodeid, report.when, report.duration]) + "\n")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(OPTION, default=None, help="append each test phase's duration here")


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption(OPTION)
    if path and not hasattr(config, "workerinput"):  # an xdist worker has workerinput
        config.pluginmanager.register(_Recorder(str(path)), "bench-durations-recorder")
