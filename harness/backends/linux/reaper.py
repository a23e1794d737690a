"""The reaper process: wait for a run's owner to exit, then remove what its manifest lists.

Started by :class:`rawstack_harness.backends.linux.runs.LinuxRun` as ``python -m
rawstack_harness.backends.linux.reaper RUN_DIR PID PIDFD`` in its own session and without a
death signal, so SIGKILL of pytest (or of an xdist worker) or Ctrl-C leaves it running.
SIGTERM from the owner means "I cleaned up myself": exit quietly.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import sys
import time
from pathlib import Path

from rawstack_harness.backends.linux import nsutil, runs

LOCK_WAIT = 5.0  # seconds to wait for the owner's lock after its death (a forked straggler)


def wait_for_exit(pid: int, start: int | None, pidfd: int) -> None:
    if pidfd >= 0:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while not poller.poll(None):
            pass
        return
    # No pidfd (kernel < 5.3): poll the pid and its start time.
    while nsutil.proc_start_time(pid) == start and start is not None:
        time.sleep(0.2)


def main(argv: list[str]) -> int:
    run_dir, pid, pidfd = Path(argv[0]), int(argv[1]), int(argv[2])
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    wait_for_exit(pid, nsutil.proc_start_time(pid), pidfd)
    if not run_dir.exists():
        return 0
    try:
        fd = os.open(run_dir / "lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    deadline = time.monotonic() + LOCK_WAIT
    while time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        time.sleep(0.05)
    # Past the deadline the owner is dead anyway (pidfd said so): reap regardless.
    runs.reap_dir(run_dir)
    os.close(fd)
    runs.global_cleanup(str(run_dir.parent))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
