"""Shared test setup; the netns fixtures come from the ``rawstack_harness.plugin`` entry point."""

from __future__ import annotations

from typing import Any

import pytest
from rawstack_harness.topology import pair

pytest_plugins = ["pytester"]


@pytest.fixture
def net(netns_topology: Any) -> Any:
    """Nodes a (10.0.0.1) and b (10.0.0.2) on one veth (eth0), no peers: each test starts
    what it needs. A module adds to it by overriding ``net`` and requesting ``net``."""
    return netns_topology(pair())
