"""Ending quietly when stdout closes early (``rawstack ping -c3 HOST | head -1``).

Python ignores SIGPIPE so that a write to a closed socket raises instead of killing the
process (the servers depend on that), which turns a closed stdout into a ``BrokenPipeError``
traceback, possibly at interpreter shutdown when the buffer is flushed. A C program would die
of SIGPIPE silently, and shells and ``set -o pipefail`` expect exactly that status (141 in
sh). :func:`quiet_on_closed_stdout` gives both command lines that behaviour: when stdout is
the pipe that broke, the process ends by SIGPIPE after the ``finally`` blocks on the way up
have closed its sockets and namespaces; any other ``BrokenPipeError`` (a socket) propagates.
"""

from __future__ import annotations

import os
import select
import signal
import sys
from collections.abc import Callable


def stdout_is_broken() -> bool:
    """True when nobody reads stdout any more (the write end of a pipe reports POLLERR)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):  # replaced by a test, or closed
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def die_of_sigpipe() -> None:
    """End the process as a killed-by-SIGPIPE program does (no output, status 128+13)."""
    # Point stdout at /dev/null first: the interpreter's exit-time flush must not raise again
    # if the signal were blocked.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGPIPE)
    # Only reached where SIGPIPE is blocked by the parent: leave with the same status.
    os._exit(128 + signal.SIGPIPE)


def quiet_on_closed_stdout(command: Callable[[], int]) -> int:
    """Run a command's body; if stdout closes under it, end as a SIGPIPE'd program does."""
    try:
        try:
            code = command()
        finally:
            # Flush here, inside the try (also on SystemExit from argparse's --help):
            # block-buffered output to a pipe is otherwise written, and fails, only at
            # interpreter shutdown, where it is printed as "Exception ignored".
            sys.stdout.flush()
    except BrokenPipeError:
        if not stdout_is_broken():
            raise
        die_of_sigpipe()
        raise  # not reached: die_of_sigpipe does not return
    return code
