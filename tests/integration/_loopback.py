"""Helpers the integration tests share: start a ``rawstack`` server, read a line, stop, wait."""

from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

import pytest
from rawstack_harness.supervise import read_ready

from rawstack.peers.registry import ready_port

RAWSTACK = [sys.executable, "-m", "rawstack"]


def read_line(stream: IO[bytes], timeout: float) -> bytes:
    """One line from a child's pipe, or fail after ``timeout`` (a readiness wait, not a sleep)."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no line within {timeout} s")
    return stream.readline()


def stop(proc: subprocess.Popen[bytes], group: bool = False) -> int:
    """SIGTERM ``proc`` (its whole process group with ``group``), reap it, close its pipes."""
    if proc.poll() is None:
        if group:  # socat forks a child per datagram; they share our new session's group
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if group:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    return proc.returncode


@contextmanager
def loopback_server(peer: str, *options: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``rawstack PEER serve`` on 127.0.0.1 (a free port) and that port, stopped on exit."""
    argv = [*RAWSTACK, peer, "serve", "--bind", "127.0.0.1", "--port", "0", *options]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        (ready,) = read_ready(proc, 1, 15)
        assert (ready["event"], ready["peer"]) == ("ready", peer)
        yield proc, ready_port(ready)
    finally:
        stop(proc)


def need(tool: str) -> str:
    """The path of ``tool``, or skip the test naming it."""
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


def wait_for(predicate: Callable[[], object], timeout: float) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` passes; whether it held at the end."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return bool(predicate())


def start_inner_pytest(
    tmp_path: Path, inner: str, *options: str
) -> tuple[subprocess.Popen[bytes], Path]:
    """Write ``inner`` to ``tmp_path/test_inner.py`` and start pytest on it there (output
    discarded), for a test to kill; return it and the file its test writes (``RSH_TEST_OUT``).

    Its temporary files go under ``tmp_path`` (``--basetemp``): a killed run never removes
    the lock of its numbered folder in /tmp/pytest-of-<user>, and pytest keeps a locked one
    for 3 days.
    """
    (tmp_path / "test_inner.py").write_text(inner)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    argv += [f"--basetemp={tmp_path / 'inner'}", *options, str(tmp_path / "test_inner.py")]
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env={**os.environ, "RSH_TEST_OUT": str(out)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, out


def exited(pid: int | str) -> bool:
    """Whether process ``pid`` has ended: gone from ``/proc``, or a zombie.

    A zombie has exited and let go of its memory, files, mounts and network namespace; only
    its parent's wait(2) is left, and when that parent died first it is the machine's init,
    which may take a second or more to reap it (this VM's does). Waiting for the ``/proc``
    entry to go would time that init, not the process.
    """
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def rootless() -> bool:
    """True inside a rootless run: a user namespace that maps one uid, not the host's all."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as fh:
            fields = fh.read().split()
    except OSError:
        return False
    return fields[:3] != ["0", "0", "4294967295"]


def skip_if_rootless(why: str) -> None:
    """Skip a test that truly needs the host's root, saying why, in a rootless run."""
    if rootless():
        pytest.skip(f"needs the host's root, not a rootless run: {why}")


TCPDUMP_ROOTLESS = (
    "tcpdump switches to its own user (setgroups, setuid), which a user namespace mapping "
    "one uid and no groups refuses"
)
