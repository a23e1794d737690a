"""A zombie has exited: liveness checks see it gone, records of a start time still see it."""

from __future__ import annotations

import os
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/PID/stat")


def _zombie() -> int:
    """A child that has exited and is not reaped yet (the caller reaps it)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    deadline = time.monotonic() + 10
    while True:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            if fh.read().rpartition(b")")[2].split()[0] == b"Z":
                return pid
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)


def test_a_zombie_has_no_running_start_time() -> None:
    from rawstack_harness.backends.linux import nsutil

    pid = _zombie()
    try:
        assert nsutil.proc_start_time(pid) is not None  # its /proc entry is still there
        assert nsutil.running_start_time(pid) is None
    finally:
        os.waitpid(pid, 0)
    assert nsutil.running_start_time(pid) is None  # reaped: gone from /proc


def test_a_running_process_has_its_start_time() -> None:
    from rawstack_harness.backends.linux import nsutil

    me = os.getpid()
    assert nsutil.running_start_time(me) == nsutil.proc_start_time(me) is not None
