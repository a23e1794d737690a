"""bench.options: quick/full defaults, benchmark selection, bad values exit 2."""

from __future__ import annotations

import pytest

from bench.options import BENCHMARKS, DEFAULT_OUTPUT, checkpoints, parse


def test_full_defaults() -> None:
    o = parse([])
    assert o.mode == "full"
    assert o.benchmarks == BENCHMARKS
    assert o.suite
    assert (o.pairs, o.pair_checkpoints) == (100, (1, 10, 50, 100))
    assert (o.http_seconds, o.http_connections, o.http_threads) == (5.0, 32, 2)
    assert o.output == DEFAULT_OUTPUT
    assert DEFAULT_OUTPUT.parts[-2:] == ("docs", "benchmarks.md")


def test_quick_defaults_leave_the_suite_out() -> None:
    o = parse(["--quick"])
    assert o.mode == "quick"
    assert "suite" not in o.benchmarks
    assert not o.suite
    assert o.pairs == 2
    assert o.http_seconds < 5


def test_selection_keeps_run_order() -> None:
    assert parse(["--only", "udp,setup"]).benchmarks == ("setup", "udp")
    assert parse(["--skip", "scale,suite"]).benchmarks == tuple(
        b for b in BENCHMARKS if b not in ("scale", "suite")
    )
    assert "suite" not in parse(["--only", "http"]).benchmarks
    assert parse(["--quick", "--only", "suite"]).benchmarks == ("suite",)


def test_suite_flags() -> None:
    assert "suite" in parse(["--quick", "--suite"]).benchmarks
    assert "suite" not in parse(["--no-suite"]).benchmarks


def test_pairs_flag_sets_checkpoints() -> None:
    o = parse(["--pairs", "30"])
    assert (o.pairs, o.pair_checkpoints) == (30, (1, 10, 30))


@pytest.mark.parametrize(
    ("n", "marks"),
    [(1, (1,)), (7, (1, 7)), (10, (1, 10)), (100, (1, 10, 50, 100)), (150, (1, 10, 50, 100, 150))],
)
def test_checkpoints(n: int, marks: tuple[int, ...]) -> None:
    assert checkpoints(n) == marks


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "nope"], "unknown benchmark nope"),
        (["--only", ","], "unknown benchmark (none)"),
        (["--pairs", "0"], "must be >= 1"),
        (["--http-seconds", "-1"], "must be > 0"),
        (["--suite", "--no-suite"], "not allowed with"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_values_exit_2_with_one_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
