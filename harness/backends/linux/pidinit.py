"""A pid namespace for the run, whose init dies with the process the user started.

Theory of operation: after ``unshare(CLONE_NEWPID)`` the caller stays where it is and only its
later children live in the new pid namespace, the first one as its init (pid_namespaces(7));
the caller can no longer start *threads* (clone(2): CLONE_THREAD across pid namespaces is
EINVAL), and the harness needs threads. So :func:`begin` splits the process, still
single-threaded, in three, each a fork of the caller:

* the **outer** process keeps the caller's pid (what the user, a CI job or a test sees and
  may SIGKILL): it waits for init, forwards SIGTERM, SIGHUP and a SIGINT sent by ``kill`` (a
  terminal's Ctrl-C reaches the run directly, being in the same process group) and exits
  with the run's status;
* **init** (pid 1) sets ``PR_SET_PDEATHSIG`` to SIGKILL, so the kernel kills it when the outer
  process dies however it dies, mounts the namespace's own ``/proc`` (so pids in ``/proc``,
  owner files and the harness's process scans agree), forks the run, reaps orphans, and
  exits with the run's status once the run has exited;
* the **run** (pid 2) returns from :func:`begin` and carries on as pytest or ``netns-harness``.

The death of a pid namespace's init SIGKILLs every other process in it. So whatever the run
starts (xdist workers, peers, captures, a reaper, a warm peer host that forks into nodes,
relays, and whatever they fork, even after ``setsid`` or a double fork) dies with the outer
process or with the run, and with no process left the kernel frees the run's mount, network
and user namespaces: no process, mount or file can be left behind.

The race between init's ``fork`` and its ``prctl`` is closed by a pipe whose only write end
the outer process holds: if init finds it hung up after arming the death signal, the outer
process is already gone and init exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
from collections.abc import Callable
from typing import NoReturn

from rawstack_harness.backends.linux import nsutil
from rawstack_harness.backends.linux.userns import (
    CLONE_NEWPID,
    Refused,
    explain_refusal,
    read_settings,
)

PR_SET_NAME = 15
MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x2, 0x4, 0x8
SI_USER = 0  # kill(2); a terminal's signals come as SI_KERNEL
FORWARDED = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
# Where the outer process's pid is kept for the run: its /proc/PID/ns/* are the run's
# namespaces as the host sees them (``netns-harness exec`` joins through them).
ENV_OUTER = "RAWSTACK_HARNESS_USERNS_OUTER"


def begin() -> None:
    """Move the rest of this program into a new pid namespace (see the module docstring).

    Call once, in a single-threaded process that already entered its user namespace; it
    returns in the run process only. Raises :class:`Refused` if the kernel refuses."""
    lib = nsutil.libc()
    if lib.unshare(CLONE_NEWPID) != 0:
        err = ctypes.get_errno()
        raise Refused(explain_refusal("unshare(CLONE_NEWPID)", err, read_settings()))
    host_proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    outer_r, outer_w = os.pipe2(os.O_CLOEXEC)
    status_r, status_w = os.pipe2(os.O_CLOEXEC)  # init -> outer: one line, or nothing
    outer = os.getpid()
    os.environ[ENV_OUTER] = str(outer)
    # Blocked before the fork: a signal sent to the outer process the moment the run is up
    # must wait for the outer's sigwaitinfo, not kill it. The run gets the old mask back.
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {*FORWARDED, signal.SIGCHLD})
    init = os.fork()
    if init != 0:
        os.close(outer_r)
        os.close(status_w)
        _outer(init, host_proc, status_r)
    os.close(outer_w)
    os.close(host_proc)
    os.close(status_r)
    _init(outer_r, status_w, old_mask)


def _outer(init: int, host_proc: int, status_r: int) -> NoReturn:
    """Wait for init (and so the run), forward signals, exit with the run's status."""
    try:
        # A failure in init before the run started (e.g. /proc refused) arrives as one line.
        error = b""
        with os.fdopen(status_r, "rb") as fh:
            error = fh.read()
        if error:
            os.write(2, error)
        run = _run_pid(host_proc, init) if not error else None
        while True:
            done, status = os.waitpid(init, os.WNOHANG)
            if done:
                os._exit(_exit_code(status))
            info = signal.sigwaitinfo({*FORWARDED, signal.SIGCHLD})
            if info.si_signo == signal.SIGCHLD:
                continue
            if info.si_signo == signal.SIGINT and info.si_code != SI_USER:
                continue  # the terminal sent it to the whole group: the run has it already
            if run is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(run, info.si_signo)
    finally:
        os._exit(1)


def _run_pid(host_proc: int, init: int) -> int | None:
    """The run's pid as the host sees it: init's child whose innermost pid is 2."""
    try:
        with open(f"{init}/task/{init}/children", encoding="ascii", opener=_at(host_proc)) as fh:
            children = [int(p) for p in fh.read().split()]
    except OSError:
        return None
    for pid in children:
        try:
            with open(f"{pid}/status", encoding="ascii", opener=_at(host_proc)) as fh:
                status = fh.read()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("NSpid:") and line.split()[-1] == "2":
                return pid
    return None


def _at(dir_fd: int) -> Callable[[str, int], int]:
    return lambda path, flags: os.open(path, flags, dir_fd=dir_fd)


def _init(outer_r: int, status_w: int, run_mask: set[int | signal.Signals]) -> None:
    """pid 1: arm the death signal, mount /proc, fork the run, reap until it exits.

    Returns only in the run (pid 2)."""
    try:
        lib = nsutil.libc()
        lib.prctl(nsutil.PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        poller = select.poll()
        poller.register(outer_r, select.POLLIN)
        if poller.poll(0):  # hung up: the outer process died before prctl
            os._exit(1)
        os.close(outer_r)
        flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
        if lib.mount(b"proc", b"/proc", b"proc", flags, None) != 0:
            err = ctypes.get_errno()
            line = explain_refusal("mount proc on /proc", err, read_settings())
            os.write(status_w, (line + "\n").encode())
            os._exit(77)
        run = os.fork()
        if run == 0:
            signal.pthread_sigmask(signal.SIG_SETMASK, run_mask)
            os.close(status_w)
            return  # the run: back into the caller, as pid 2
        os.close(status_w)  # EOF tells the outer process the run started
        lib.prctl(PR_SET_NAME, b"rsh-init", 0, 0, 0)
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 65536)  # hold no pipe of the caller's (a terminal, an xdist channel)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            code = _reap(run)
            if code is not None:
                os._exit(code)
            signal.sigwait({signal.SIGCHLD})
    except BaseException:
        os._exit(1)
    os._exit(1)


def _reap(run: int) -> int | None:
    """Reap every exited child; the run's exit code once it has exited, else None."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return 1
        if pid == 0:
            return None
        if pid == run:
            return _exit_code(status)


def _exit_code(status: int) -> int:
    """A wait status as a shell reports it: the exit code, or 128 + the killing signal."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
