"""bench.runner: failures become "not measured" rows; no root means exit 77 and no report."""

from __future__ import annotations

import signal
import types
from pathlib import Path
from typing import Any, cast

import pytest
from rawstack_harness.backends.linux.runs import LinuxRun

from bench import runner
from bench.context import Context
from bench.options import Options, parse
from bench.report import Row, Section


def _module(run: Any) -> types.ModuleType:
    module = types.ModuleType("fake_bench")
    module.TITLE = "Fake"  # type: ignore[attr-defined]
    module.GROUP = "Peers"  # type: ignore[attr-defined]
    module.METRICS = ("first", "second")  # type: ignore[attr-defined]
    module.run = run  # type: ignore[attr-defined]
    return module


def _ctx(tmp_path: Path) -> Context:
    return Context(parse(["--quick"]), cast(LinuxRun, None), tmp_path)


def test_a_failing_benchmark_becomes_not_measured_rows(tmp_path: Path) -> None:
    def boom(ctx: Context) -> Section:
        raise RuntimeError("nginx exploded")

    section = runner.run_one(_module(boom), _ctx(tmp_path))
    assert [r.metric for r in section.rows] == ["first", "second"]
    assert all(r.value is None for r in section.rows)
    assert section.rows[0].verdict == "not measured: RuntimeError: nginx exploded"


def test_a_working_benchmark_keeps_its_rows(tmp_path: Path) -> None:
    rows = [Row("first", 1.0, "ms")]
    section = runner.run_one(_module(lambda ctx: Section("Fake", "Peers", rows)), _ctx(tmp_path))
    assert section.rows == rows
    assert section.seconds >= 0


def test_rerun_command_repeats_the_arguments() -> None:
    text = runner.rerun_command(parse(["--quick", "--only", "udp"]))
    assert "sudo .venv/bin/python -m bench --quick --only udp" in text
    assert "tox -e bench -- --quick --only udp" in text
    assert runner.rerun_command(parse([])).endswith("sudo tox -e bench")


def test_write_atomically_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "docs" / "b.md"
    runner.write_atomically(target, "one\n")
    runner.write_atomically(target, "two\n")
    assert target.read_text(encoding="utf-8") == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["b.md"]


def test_without_privilege_exit_77_and_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rawstack_harness.backends.linux.env

    monkeypatch.setattr(
        rawstack_harness.backends.linux.env, "missing_requirement", lambda: "needs root (test)"
    )
    out = tmp_path / "report.md"
    assert runner.main(["--quick", "-o", str(out)]) == 77
    err = capsys.readouterr().err
    assert err.strip() == "bench: error: needs root (test)"
    assert not out.exists()


def test_main_writes_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rawstack_harness.backends.linux.env

    def fake_measure(opts: Options) -> list[Section]:
        assert opts.benchmarks == ("udp",)
        return [Section("UDP", "Peers", [Row("rtt", 20.0, "us", "socat 30 us", "<= 25 us", True)])]

    monkeypatch.setattr(rawstack_harness.backends.linux.env, "missing_requirement", lambda: None)
    monkeypatch.setattr(runner, "measure", fake_measure)
    monkeypatch.setattr(runner, "machine_info", lambda root: {"CPU": "Fake CPU"})
    monkeypatch.setattr(signal, "signal", lambda *a: None)
    out = tmp_path / "report.md"
    assert runner.main(["--quick", "--only", "udp", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "| CPU | Fake CPU |" in text
    assert "| mode | quick (udp) |" in text
    assert "| rtt | 20 us | socat 30 us | <= 25 us | PASS |" in text
    assert "--quick --only udp -o" in text
    assert f"wrote {out}" in capsys.readouterr().out


def test_interrupt_handler_unwinds_only_in_the_main_process() -> None:
    import os

    with pytest.raises(KeyboardInterrupt):
        runner.interrupt_handler(os.getpid())(signal.SIGTERM, None)
    # In a forked child (another pid) it must exit without unwinding through our finally blocks.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            runner.interrupt_handler(os.getppid())(signal.SIGTERM, None)
        finally:
            os._exit(99)  # reached only if the handler unwound instead of exiting
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGTERM
