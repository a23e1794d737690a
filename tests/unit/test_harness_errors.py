"""One error tree: every harness error is a RawstackError with its exit code, one CLI line."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from rawstack_harness import cli
from rawstack_harness.clients import ClientFailed
from rawstack_harness.errors import (
    HarnessError,
    NotPrivileged,
    ProbeFailed,
    SpecError,
    Unsupported,
    UnsupportedPlatform,
)
from rawstack_harness.supervise import PeerDied, ReadyFailed

from rawstack.errors import RawstackError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (HarnessError("x"), 1),
        (NotPrivileged("x"), 77),
        (Unsupported("x"), 2),
        (UnsupportedPlatform("x"), 2),
        (SpecError("links[0]", "x"), 2),
        (ProbeFailed("x"), 1),
        (PeerDied("x"), 1),
        (ReadyFailed("x", [], None), 1),
        (ClientFailed("x"), 1),
    ],
)
def test_every_error_is_a_rawstack_error_with_its_code(error: HarnessError, code: int) -> None:
    assert isinstance(error, RawstackError)
    assert isinstance(error, HarnessError)
    assert error.exit_code == code


def test_builtin_bases_are_kept_for_callers_that_catch_them() -> None:
    assert isinstance(SpecError("a.b", "bad"), ValueError)
    assert str(SpecError("a.b", "bad")) == "a.b: bad"
    assert isinstance(Unsupported("no"), NotImplementedError)


def test_the_topology_package_raises_the_tree_s_spec_error() -> None:
    from rawstack_harness import topology

    assert topology.SpecError is SpecError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (SpecError("nodes[0].name", "is required"), 2),
        (NotPrivileged("needs root"), 77),
        (HarnessError("keeper exited"), 1),
        (PermissionError(13, "Permission denied"), 77),
    ],
)
def test_cli_prints_one_line_and_the_error_s_code(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    error: Exception,
    code: int,
) -> None:
    def status(args: argparse.Namespace) -> int:
        raise error

    monkeypatch.setattr(cli, "cmd_status", status)
    assert cli.main(["status"]) == code
    err = capsys.readouterr().err
    assert err.startswith("netns-harness: error: ")
    assert len(err.splitlines()) == 1


def test_a_bad_spec_file_is_exit_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: x\nnodes: [{name: a}]\nlinks: [{a: {node: a}, b: {node: zz}}]\n")
    assert cli.main(["up", str(spec)]) == 2
    assert "links[0]" in capsys.readouterr().err
