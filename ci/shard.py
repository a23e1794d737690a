"""Split a pytest run into N deterministic shards, one per parallel CI job.

Theory of operation: a test belongs to shard ``sha256(nodeid) % count``. The choice depends
only on the test's own node id, so it is the same in every process (pytest-xdist workers
collect independently and must agree on the list) and adding a test never moves the others.

Used two ways:

* as a script, ``python ci/shard.py --shard-count N --shard-index K [PYTEST ARGS...]``, which
  runs ``python -m pytest -p shard -p failure_logs`` with this directory on ``PYTHONPATH``
  so every xdist worker loads the same plugins (failure_logs keeps failed tests' peer logs
  as files for CI artifacts);
* as a pytest plugin (``-p shard``), adding ``--shard-count`` and ``--shard-index``.

An empty shard exits 5 like any run that selected no tests: use fewer shards.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = ["select", "shard_of"]


def shard_of(nodeid: str, count: int) -> int:
    """The shard (0 .. count-1) that runs the test with this node id."""
    if count < 1:
        raise ValueError(f"shard count must be at least 1, not {count}")
    digest = hashlib.sha256(nodeid.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select(nodeids: Sequence[str], count: int, index: int) -> list[str]:
    """The node ids, in their order, that belong to shard ``index`` of ``count``."""
    if not 0 <= index < count:
        raise ValueError(f"shard index {index} is outside 0..{count - 1}")
    return [n for n in nodeids if shard_of(n, count) == index]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("shard", "deterministic sharding across CI jobs (ci/shard.py)")
    group.addoption("--shard-count", type=int, default=1, help="number of shards (default 1)")
    group.addoption("--shard-index", type=int, default=0, help="this shard, 0-based")


def pytest_configure(config: pytest.Config) -> None:
    count: int = config.getoption("shard_count")
    index: int = config.getoption("shard_index")
    if count < 1:
        raise pytest.UsageError(f"--shard-count must be at least 1, not {count}")
    if not 0 <= index < count:
        raise pytest.UsageError(f"--shard-index must be in 0..{count - 1}, not {index}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    count: int = config.getoption("shard_count")
    index: int = config.getoption("shard_index")
    if count == 1:
        return
    keep = set(select([item.nodeid for item in items], count, index))
    deselected = [item for item in items if item.nodeid not in keep]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.nodeid in keep]


def pytest_report_header(config: pytest.Config) -> str:
    return f"shard: {config.getoption('shard_index')} of {config.getoption('shard_count')}"


def main(argv: Sequence[str]) -> NoReturn:
    """Run pytest with the CI plugins loaded in the controller and in every xdist worker."""
    here = str(Path(__file__).resolve().parent)
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = here if not path else here + os.pathsep + path
    args = [sys.executable, "-m", "pytest", "-p", "shard", "-p", "failure_logs", *argv]
    os.execv(sys.executable, args)


if __name__ == "__main__":
    main(sys.argv[1:])
