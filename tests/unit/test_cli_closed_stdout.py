"""A closed stdout ends both command lines as a SIGPIPE'd program ends: no traceback.

The commands here need no root; tests/integration/test_closed_stdout.py covers the ones that
open sockets in namespaces.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from rawstack.cli.stdout import quiet_on_closed_stdout, stdout_is_broken

RAWSTACK = [sys.executable, "-m", "rawstack"]
HARNESS = [sys.executable, "-m", "rawstack_harness.cli"]


def run_with_closed_stdout(
    argv: list[str], *, buffered: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` with stdout a pipe nobody reads: its first write gets EPIPE."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            argv, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
            env=env,
        )  # fmt: skip
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "argv",
    [
        [*RAWSTACK, "craft", "icmp-echo", "--src", "10.0.0.1", "--dst", "10.0.0.2"],
        [*RAWSTACK, "craft", "chao", "--src-mac", "02:00:00:00:00:01", "--seq", "1"],
    ],
    ids=lambda argv: " ".join(argv[3:5]),
)
@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_dies_of_sigpipe_without_a_traceback(argv: list[str], buffered: bool) -> None:
    out = run_with_closed_stdout(argv, buffered=buffered)
    assert out.stderr == ""
    assert out.returncode == -signal.SIGPIPE


@pytest.mark.parametrize(
    "argv",
    [[*RAWSTACK, "--help"], [*RAWSTACK, "ping", "--help"], [*HARNESS, "--help"]],
    ids=lambda argv: " ".join(argv[2:]),
)
@pytest.mark.parametrize(
    ("buffered", "statuses"), [(True, {-signal.SIGPIPE}), (False, {0, -signal.SIGPIPE})]
)
def test_help_ends_quietly(argv: list[str], buffered: bool, statuses: set[int]) -> None:
    """Buffered, the failed write comes at our flush and ends the process by SIGPIPE.
    Unbuffered, argparse's own write fails first: newer 3.11 and later swallow that and exit
    0 (as documented for --help), older ones raise it into our handler (SIGPIPE)."""
    out = run_with_closed_stdout(argv, buffered=buffered)
    assert out.stderr == ""
    assert out.returncode in statuses


def test_a_broken_socket_is_not_mistaken_for_stdout() -> None:
    """EPIPE from anything but stdout is the command's own failure and propagates."""

    def command() -> int:
        raise BrokenPipeError(32, "Broken pipe")

    assert not stdout_is_broken()  # pytest's captured stdout is a file, not a closed pipe
    with pytest.raises(BrokenPipeError):
        quiet_on_closed_stdout(command)


def test_the_exit_code_passes_through() -> None:
    assert quiet_on_closed_stdout(lambda: 3) == 3
