"""ci/durations.py and the order tests/conftest.py draws from it: slowest modules first,
only under more than one xdist worker, each module whole."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


durations = _load(TESTS.parent / "ci" / "durations.py", "ci_durations_under_test")
conftest = _load(TESTS / "conftest.py", "tests_conftest_under_test")

REPORT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest">
 <testcase classname="tests.unit.test_a" name="test_1" time="0.5"/>
 <testcase classname="tests.unit.test_a.TestK" name="test_2" time="1.25"/>
 <testcase classname="tests.unit.test_b" name="test_3" time="0.25"/>
 <testcase classname="gone.test_c" name="test_4" time="9"/>
</testsuite></testsuites>
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "tests/unit").mkdir(parents=True)
    for name in ("test_a", "test_b"):
        (tmp_path / f"tests/unit/{name}.py").write_text("")
    return tmp_path


def test_a_classname_is_its_longest_prefix_that_names_a_file(tree: Path) -> None:
    assert durations.module_of("tests.unit.test_a", tree) == "tests/unit/test_a.py"
    assert durations.module_of("tests.unit.test_a.TestK", tree) == "tests/unit/test_a.py"
    assert durations.module_of("tests.unit.test_gone", tree) is None


def test_seconds_add_up_per_module_across_reports_slowest_first(tree: Path) -> None:
    one, two = tree / "one.xml", tree / "two.xml"
    one.write_text(REPORT)
    two.write_text(REPORT.replace('time="0.25"', 'time="3"'))
    seconds = durations.module_seconds([one, two], tree)
    assert list(seconds.items()) == [("tests/unit/test_a.py", 3.5), ("tests/unit/test_b.py", 3.25)]


def test_main_writes_the_table_and_rejects_bad_reports(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report, out = tree / "r.xml", tree / "durations.json"
    report.write_text(REPORT)
    assert durations.main([str(report)], out, tree) == 0
    assert json.loads(out.read_text()) == {
        "tests/unit/test_a.py": 1.75,
        "tests/unit/test_b.py": 0.25,
    }
    report.write_text("<testsuites><testcase")
    assert durations.main([str(report)], out, tree) == 1
    assert "ci/durations.py:" in capsys.readouterr().err
    report.write_text(REPORT.replace("tests.unit", "elsewhere"))
    assert durations.main([str(report)], out, tree) == 1
    assert "names a module here" in capsys.readouterr().err
    assert durations.main([], out, tree) == 2


class Item:
    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid

    def __repr__(self) -> str:
        return self.nodeid


ITEMS = ["t/a.py::x", "t/a.py::y", "t/b.py::x", "t/c.py::x", "t/b.py::y"]
TABLE = {"t/b.py": 5.0, "t/a.py": 1.0}


def _order(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: str | None, table: str | None
) -> list[str]:
    if workers is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", workers)
    path = tmp_path / "durations.json"
    if table is not None:
        path.write_text(table)
    monkeypatch.setattr(conftest, "DURATIONS", path)
    items = [Item(n) for n in ITEMS]
    conftest.pytest_collection_modifyitems(None, items)
    return [i.nodeid for i in items]


def test_under_two_workers_the_slowest_module_goes_first_and_stays_whole(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    got = _order(monkeypatch, tmp_path, "2", json.dumps(TABLE))
    assert got == ["t/b.py::x", "t/b.py::y", "t/a.py::x", "t/a.py::y", "t/c.py::x"]


@pytest.mark.parametrize(
    ("workers", "table"),
    [(None, json.dumps(TABLE)), ("1", json.dumps(TABLE)), ("2", None), ("2", "{"), ("2", "[]")],
    ids=["serial", "one worker", "no table", "broken table", "not a table"],
)
def test_otherwise_collection_order_stands(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, workers: str | None, table: str | None
) -> None:
    assert _order(monkeypatch, tmp_path, workers, table) == ITEMS


def test_the_committed_table_is_one_conftest_reads() -> None:
    table = json.loads((TESTS / "durations.json").read_text())
    assert isinstance(table, dict)
    assert table
    assert all(isinstance(v, (int, float)) for v in table.values())
    assert all((TESTS.parent / k).suffix == ".py" for k in table)


class Options:
    pass


class Config:
    def __init__(self, **options: object) -> None:
        self.option = Options()
        for name, value in options.items():
            setattr(self.option, name, value)


@pytest.mark.parametrize(("given", "expected"), [(None, conftest.SCHED_CHUNK), (1, 1), (100, 100)])
def test_xdist_hands_out_small_chunks_unless_told_otherwise(
    given: int | None, expected: int
) -> None:
    config = Config(maxschedchunk=given)
    conftest.pytest_configure(config)
    assert vars(config.option)["maxschedchunk"] == expected


def test_without_xdist_no_option_appears() -> None:
    config = Config()
    conftest.pytest_configure(config)
    assert not hasattr(config.option, "maxschedchunk")
