"""Linux namespace primitives through libc: unshare, setns, bind mounts, per-thread work.

Theory of operation: a network namespace belongs to a *thread*, not to a process, so the
backend never moves the test process. Work that must happen inside a namespace (creating
it, writing ``/proc/sys/net``, work that may fail halfway) runs in a short-lived thread
that calls ``setns`` first. A socket keeps the namespace it was opened in, so it works
afterwards from any thread; opening one is the harness's most frequent namespace job (each
probe opens one), so :func:`socket_in` opens it from the calling thread instead: ``setns``
into the node, ``socket()``, ``setns`` back, two system calls where a thread costs ~0.1 ms.
Child processes instead enter the namespace in ``preexec_fn`` (fork from the calling
thread, setns in the child), which also sets ``PR_SET_PDEATHSIG``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from typing import IO, TypeVar

from rawstack_harness.errors import HarnessError

T = TypeVar("T")

CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MS_SLAVE = 1 << 19
CLONE_NEWNS = 0x00020000
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1


@functools.cache
def libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)


def _check(ret: int, what: str, path: str = "") -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path or None)


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace ``fd``."""
    _check(libc().setns(fd, CLONE_NEWNET), "setns")


def unshare_net() -> None:
    """Give the calling thread a fresh network namespace."""
    _check(libc().unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")


def bind_mount(src: str, dst: str) -> None:
    _check(libc().mount(src.encode(), dst.encode(), b"none", MS_BIND, None), "mount", dst)


def make_shared(path: str) -> None:
    _check(libc().mount(b"", path.encode(), b"none", MS_SHARED | MS_REC, None), "mount", path)


def umount(path: str) -> None:
    """Lazily detach a mount; a path that is not mounted is not an error."""
    if libc().umount2(path.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise OSError(err, f"umount: {os.strerror(err)}", path)


_home = threading.local()  # per thread: an fd of the namespace the thread returns to


class NamespaceLost(RuntimeError):
    """The calling thread could not return to its own network namespace."""


def socket_in(nsfd: int, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket opened in namespace ``nsfd`` by the calling thread, which then returns home.

    Only ``socket()`` runs while the thread is away (and, in the main thread, a Python
    signal handler if a signal lands in those few bytecodes: pytest's raise
    KeyboardInterrupt, which the ``finally`` survives). If the way back fails,
    :class:`NamespaceLost` is raised: the thread stays in a namespace the harness made,
    never in one it must not touch.
    """
    return briefly(lambda: setns(nsfd), lambda: socket.socket(family, type, proto))


def open_in(nsfd: int, path: str) -> IO[str]:
    """``path`` opened for reading from namespace ``nsfd`` (as :func:`socket_in`).

    For per-namespace ``/proc`` files (``/proc/thread-self/net/...``): the open file stays
    that namespace's view whichever thread reads it later.
    """
    return briefly(lambda: setns(nsfd), lambda: open(path, encoding="ascii"))


def briefly(enter: Callable[[], None], fn: Callable[[], T]) -> T:
    """``enter()`` (``setns`` or ``unshare``: another network namespace for the calling
    thread), then ``fn()``, then back to the thread's own namespace, whatever happened.

    No thread is started (a start and join cost more than the namespace work here). If the
    way back fails, :class:`NamespaceLost` is raised (see :func:`socket_in`).
    """
    home: int | None = getattr(_home, "fd", None)
    if home is None:
        home = _home.fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    enter()
    try:
        return fn()
    finally:
        if libc().setns(home, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NamespaceLost(f"setns back to the thread's own namespace: {os.strerror(err)}")


def in_thread(fn: Callable[[], T], name: str = "netns-helper") -> T:
    """Run ``fn`` in a new thread (whose namespace changes die with it); return its result."""
    box: dict[str, object] = {}

    def body() -> None:
        try:
            box["v"] = fn()
        except BaseException as exc:
            box["e"] = exc

    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]  # type: ignore[misc]
    return box["v"]  # type: ignore[return-value]


def in_netns(nsfd: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new thread that first joined namespace ``nsfd``; return its result."""

    def body() -> T:
        setns(nsfd)
        return fn()

    return in_thread(body)


def in_new_netns(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a new thread that first unshared a fresh network namespace."""

    def body() -> T:
        unshare_net()
        return fn()

    return in_thread(body, "netns-create")


def child_preexec(nsfd: int, deathsig: bool = True, hosts: str | None = None) -> Callable[[], None]:
    """A ``preexec_fn`` entering namespace ``nsfd`` and dying with the forking thread.

    With ``hosts``, the child also gets a mount namespace of its own in which that file is
    bind-mounted on ``/etc/hosts`` (as ``ip netns exec`` does with ``/etc/netns/NAME/hosts``),
    so node names resolve in it; nothing changes outside the child.
    """

    lib = libc()  # loaded before fork: the child only calls into it
    hosts_b = hosts.encode() if hosts else None

    def preexec() -> None:
        if deathsig:
            lib.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if lib.setns(nsfd, CLONE_NEWNET) != 0:
            os._exit(126)
        if hosts_b is not None and lib.unshare(CLONE_NEWNS) == 0:
            # Slave, so our bind mount never propagates back to the parent's namespace.
            lib.mount(None, b"/", None, MS_REC | MS_SLAVE, None)
            lib.mount(hosts_b, b"/etc/hosts", b"none", MS_BIND, None)

    return preexec


def netns_inode(path: str) -> tuple[int, int]:
    """(st_dev, st_ino) identifying a namespace file or ``/proc/PID/ns/net``."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _stat_after_comm(pid: int) -> list[bytes] | None:
    """``/proc/PID/stat`` from field 3 (the state) on, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses; fields resume after the last ')'.
    return data[data.rindex(b")") + 2 :].split()


def proc_start_time(pid: int) -> int | None:
    """The process start time in clock ticks (field 22), or None if it is gone."""
    rest = _stat_after_comm(pid)
    return None if rest is None else int(rest[19])


def running_start_time(pid: int) -> int | None:
    """:func:`proc_start_time` of a process that has not exited: None for a zombie too.

    A zombie has ended; only its parent's wait(2) is left, and when that parent is gone it is
    the machine's init, which may reap it only a second or more later. Liveness checks (is a
    keeper still there?) use this; records of a process just started keep the plain one.
    """
    rest = _stat_after_comm(pid)
    return None if rest is None or rest[0] in (b"Z", b"X") else int(rest[19])


def write_sysctl(key: str, value: str) -> None:
    """Write ``/proc/sys`` ``key`` (``net.ipv4.x`` or ``net/ipv4/x``) in the calling
    thread's namespace; ``OSError`` as the kernel gives it."""
    path = "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))
    with open(path, "w", encoding="ascii") as fh:
        fh.write(value)


def write_sysctls(items: Sequence[tuple[str, str]]) -> None:
    """:func:`write_sysctl` each item in turn; a failure is a HarnessError naming it."""
    for key, value in items:
        try:
            write_sysctl(key, value)
        except OSError as exc:
            raise HarnessError(f"sysctl {key}={value}: {exc.strerror}") from None


def is_mountpoint(path: str) -> bool:
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4 and _unescape(fields[4]) == target:
                return True
    return False


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal.
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )
