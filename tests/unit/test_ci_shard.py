"""ci/shard.py: shards partition the suite, the same way in every process, under xdist too."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Callable

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "ci" / "shard.py"


def _load_shard_module() -> tuple[Callable[[str, int], int], Callable[..., list[str]]]:
    spec = importlib.util.spec_from_file_location("ci_shard_under_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.shard_of, module.select


shard_of, select = _load_shard_module()

NODEIDS = [f"tests/integration/test_x.py::test_{i}[{p}]" for i in range(40) for p in "ab"]


def test_shards_partition_the_suite_in_order() -> None:
    shards = [select(NODEIDS, 4, k) for k in range(4)]
    assert sorted(n for s in shards for n in s) == sorted(NODEIDS)
    assert sum(len(s) for s in shards) == len(NODEIDS)
    for s in shards:
        assert s == [n for n in NODEIDS if n in s]


def test_a_test_keeps_its_shard_when_others_are_added() -> None:
    before = {n: shard_of(n, 4) for n in NODEIDS}
    more = NODEIDS + [f"tests/integration/test_new.py::test_{i}" for i in range(30)]
    assert all(shard_of(n, 4) == before[n] for n in more if n in before)


def test_shards_are_roughly_balanced() -> None:
    sizes = Counter(shard_of(n, 4) for n in NODEIDS)
    assert set(sizes) == {0, 1, 2, 3}
    assert max(sizes.values()) <= 2 * min(sizes.values())


@pytest.mark.parametrize(("count", "index"), [(0, 0), (3, 3), (3, -1)])
def test_bad_shard_arguments_raise(count: int, index: int) -> None:
    with pytest.raises(ValueError, match="shard"):
        select(NODEIDS, count, index)


def _write_suite(tmp_path: Path, n: int) -> None:
    body = "\n".join(f"def test_{i}():\n    pass\n" for i in range(n))
    (tmp_path / "test_many.py").write_text(body, encoding="utf-8")


def _run(tmp_path: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    # Without the installed plugins (the harness, hypothesis, ...) a run starts 3x faster.
    return subprocess.run(
        [sys.executable, str(SCRIPT), "-p", "no:cacheprovider", "-p", "xdist.plugin", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _passed(result: subprocess.CompletedProcess[str]) -> set[str]:
    """Test names from the -rA short summary ("PASSED test_many.py::test_3")."""
    return set(re.findall(r"^PASSED \S+::(\S+)$", result.stdout, flags=re.MULTILINE))


def _expected(index: int) -> list[str]:
    nodeids = [f"test_many.py::test_{i}" for i in range(12)]
    return sorted(n.rsplit("::", 1)[1] for n in select(nodeids, 3, index))


def test_script_runs_each_test_in_exactly_one_shard(tmp_path: Path) -> None:
    _write_suite(tmp_path, 12)
    seen: list[str] = []
    for index in range(3):
        result = _run(tmp_path, ["--shard-count=3", f"--shard-index={index}", "-rA"])
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"shard: {index} of 3" in result.stdout
        assert sorted(_passed(result)) == _expected(index)
        seen += _passed(result)
    assert sorted(seen) == sorted(f"test_{i}" for i in range(12))


def test_xdist_workers_agree_on_the_shard(tmp_path: Path) -> None:
    _write_suite(tmp_path, 12)
    result = _run(tmp_path, ["--shard-count=3", "--shard-index=1", "-n", "2", "-rA"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(_passed(result)) == _expected(1)


def test_script_rejects_a_bad_shard_index(tmp_path: Path) -> None:
    _write_suite(tmp_path, 2)
    result = _run(tmp_path, ["--shard-count=2", "--shard-index=2"])
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--shard-index must be in 0..1" in result.stderr
