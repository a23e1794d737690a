"""``netns-harness demo`` output and exit status, with the exchanges stubbed (no root)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rawstack_harness import cli
from rawstack_harness.backends import select_backend
from rawstack_harness.clients import Exchange

ROWS = [
    Exchange("icmp", "a->b", True, 0.25, "kernel"),
    Exchange("http", "a->b", True, 1.5),
    Exchange("udp", "b->a", False, None, error="'rawstack udp send ...' in node b: exit status 1"),
]


class FakeRun:
    """Stands in for rawstack_harness.backends.linux.runs.LinuxRun: records that it was closed."""

    closed = False

    def __init__(self, root: str, label: str, fork: bool = True) -> None:
        self.id = "abc123"

    def close(self) -> None:
        FakeRun.closed = True


@pytest.fixture
def linux(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Linux backend whatever this OS is: the stubs below replace its pieces."""
    linux_backend = select_backend("linux")
    monkeypatch.setattr(cli, "_backend", lambda: linux_backend)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch, linux: None) -> None:
    """Root check passes, no run is created, the exchanges are ROWS."""
    import rawstack_harness.backends.linux.runs

    monkeypatch.setattr(cli, "_need_root", lambda: None)
    monkeypatch.setattr(rawstack_harness.backends.linux.runs, "LinuxRun", FakeRun)
    monkeypatch.setattr(cli, "_demo_rows", fake_rows(ROWS, {"setup_s": 0.01, "ready_s": 0.5}))
    FakeRun.closed = False


def fake_rows(rows: list[Exchange], timings: dict[str, float]) -> Any:
    """A stand-in for ``cli._demo_rows``: hands each row to ``on_row``, as the real one."""

    def demo_rows(run: Any, on_row: Any = lambda row: None) -> Any:
        for row in rows:
            on_row(row)
        return rows, timings

    return demo_rows


@pytest.mark.usefixtures("stubbed")
def test_table_marks_the_failure_and_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["protocol", "direction", "server", "result", "rtt"]
    assert lines[1].split() == ["icmp", "a->b", "kernel", "ok", "0.250", "ms"]
    assert lines[2].split() == ["http", "a->b", "rawstack", "ok", "1.500", "ms"]
    assert lines[3].split()[:4] == ["udp", "b->a", "rawstack", "FAILED"]
    assert lines[3].endswith("exit status 1")
    assert lines[4] == "pair built in 10.0 ms, its peers ready in 500.0 ms; 2/3 exchanges ok"
    assert FakeRun.closed


@pytest.mark.usefixtures("stubbed")
def test_each_row_is_out_before_the_next_exchange(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[str] = []  # what was written when each exchange was done

    def demo_rows(run: Any, on_row: Any = lambda row: None) -> Any:
        for row in ROWS:
            seen.append(capsys.readouterr().out)
            on_row(row)
        seen.append(capsys.readouterr().out)
        return ROWS, {"setup_s": 0.01}

    monkeypatch.setattr(cli, "_demo_rows", demo_rows)
    assert cli.main(["demo"]) == 1
    assert seen[0].split() == ["protocol", "direction", "server", "result", "rtt"]
    assert [out.split()[:2] for out in seen[1:]] == [
        ["icmp", "a->b"],
        ["http", "a->b"],
        ["udp", "b->a"],
    ]


@pytest.mark.usefixtures("stubbed")
def test_json_rows(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["demo", "--json"]) == 1
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert out["run"] == "abc123"
    assert [(r["protocol"], r["direction"], r["ok"], r["rtt_ms"]) for r in out["results"]] == [
        ("icmp", "a->b", True, 0.25),
        ("http", "a->b", True, 1.5),
        ("udp", "b->a", False, None),
    ]
    assert "error" in out["results"][2]
    assert "error" not in out["results"][0]


def test_all_ok_exits_0(monkeypatch: pytest.MonkeyPatch, stubbed: None) -> None:
    monkeypatch.setattr(cli, "_demo_rows", fake_rows(ROWS[:2], {"setup_s": 0.01}))
    assert cli.main(["demo", "--json"]) == 0


@pytest.mark.usefixtures("linux")
def test_not_root_is_exit_77(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rawstack_harness.backends.linux.env

    monkeypatch.setattr(
        rawstack_harness.backends.linux.env,
        "missing_requirement",
        lambda: "needs root (CAP_NET_ADMIN)",
    )
    assert cli.main(["demo"]) == 77
    assert capsys.readouterr().err == "netns-harness: error: needs root (CAP_NET_ADMIN)\n"
