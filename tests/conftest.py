"""Shared test setup; the netns fixtures come from the ``rawstack_harness.plugin`` entry point."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness.topology import pair

pytest_plugins = ["pytester"]

# Each module's wall time in a past run, written by ci/durations.py.
DURATIONS = Path(__file__).with_name("durations.json")
SCHED_CHUNK = 4  # xdist --maxschedchunk unless given: the most tests handed out at once


def pytest_configure(config: pytest.Config) -> None:
    # xdist's load scheduler starts each worker on a quarter of its share, ~260 tests of a
    # full run here, whatever they cost, and a worker that drew the long ones idles the
    # other at the end: `-n 2` over tests and examples took 105 s in collection order and
    # 127 s slowest first, 98 and 94 s in chunks of 4 (see ci/README.md). Only when xdist
    # is there (its option exists) and the command line left it unset.
    if getattr(config.option, "maxschedchunk", 0) is None:
        config.option.maxschedchunk = SCHED_CHUNK


def slowest_modules_first(items: list[pytest.Item], seconds: dict[str, float]) -> None:
    """Reorder ``items`` in place: modules by their time, slowest first, each kept whole and
    in its own order; modules the table does not name go last, in collection order."""
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::", 1)[0], 0.0))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Only with more than one xdist worker: a serial run keeps the files' order. xdist hands
    # tests out in collection order, so a long module collected last (test_wheel.py) kept one
    # worker busy for seconds after the other had finished; slowest first leaves the short
    # ones to fill in at the end. Every worker reads the same file, so all collect alike.
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) < 2:
        return
    try:
        seconds = json.loads(DURATIONS.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # no table, or a broken one: collection order, as without it
    if isinstance(seconds, dict):
        slowest_modules_first(items, seconds)


@pytest.fixture
def net(netns_topology: Any) -> Any:
    """Nodes a (10.0.0.1) and b (10.0.0.2) on one veth (eth0), no peers: each test starts
    what it needs. A module adds to it by overriding ``net`` and requesting ``net``."""
    return netns_topology(pair())
