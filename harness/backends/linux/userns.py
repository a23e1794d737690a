"""Enter a user namespace of the run's own, or join a kept run's; explain a kernel's refusal.

Theory of operation: an unprivileged process may ``unshare(CLONE_NEWUSER | CLONE_NEWNS)``
(user_namespaces(7)); after writing ``/proc/self/{setgroups,uid_map,gid_map}`` it is uid 0
with every capability *of that namespace*: it may create network namespaces, veth pairs,
raw and packet sockets, and mount in the new mount namespace, while the host sees only the
real user. :func:`enter` does that in the calling process, which must still be
single-threaded (the kernel refuses ``CLONE_NEWUSER`` and ``CLONE_FS`` otherwise, EINVAL). It
also unshares the network namespace (with ``lo`` up): the host's is owned by the host's user
namespace, where the run has no capability, so the run's loopback tests and every helper
thread live in one of the run's own, and the host namespace is never touched. Then it
mounts a private tmpfs on ``/run`` so the harness's ``/run/netns`` and
``/run/rawstack-harness`` exist only in this run's mount namespace (the host's ``/run/user``
is bound back so ``$XDG_RUNTIME_DIR`` still works) and gives the run a writable
``/etc/netns`` (:func:`_private_etc_netns`) for the nodes' hosts files. Every mount made
here lives and dies with the mount namespace: when the run's last process exits, the kernel
frees the tmpfs, the
namespace bind mounts on it, the network namespaces and the user namespace, so nothing can
be left behind. Mounts copied from the host arrive as slaves (a less privileged mount
namespace never propagates back, mount_namespaces(7)); ``/`` is made a recursive slave anyway.

:func:`join` enters a live run's user, mount and pid namespaces from outside
(``/proc/PID/ns/*``, setns(2)), so ``netns-harness exec`` can reach a kept topology.

Where the kernel refuses, :func:`explain_refusal` (pure) names the setting that did, from
the errno and what :func:`read_settings` found: Debian's ``kernel.unprivileged_userns_clone``,
Ubuntu's ``kernel.apparmor_restrict_unprivileged_userns``, ``user.max_user_namespaces``, a
seccomp filter (containers' default profiles block ``unshare``), or a multi-threaded caller.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass

from rawstack_harness.backends.linux import nsutil
from rawstack_harness.backends.linux.names import ETC_NETNS
from rawstack_harness.backends.linux.runs import NETNS_DIR
from rawstack_harness.errors import NotPrivileged

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_REC = 0x4000
MS_SLAVE = 1 << 19

# Set inside a run's user namespace to that namespace's inode, so children (xdist workers,
# pytester subprocesses, peers) know they are already inside and must not nest another.
ENV_MARK = "RAWSTACK_HARNESS_USERNS"
RUN_TMPFS = "/run"
HOST_KEEP = ("/run/user",)  # host directories under /run bound back into the private tmpfs

SYSCTL_CLONE = "kernel.unprivileged_userns_clone"
SYSCTL_APPARMOR = "kernel.apparmor_restrict_unprivileged_userns"
SYSCTL_MAX = "user.max_user_namespaces"
SETTINGS = (SYSCTL_CLONE, SYSCTL_APPARMOR, SYSCTL_MAX)
UNSHARE = "unshare(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWNET)"


class Refused(NotPrivileged):
    """The kernel would not give this process a user namespace (exit 77); one line why."""


@dataclass(frozen=True)
class Settings:
    """What decides whether an unprivileged user namespace is allowed here."""

    sysctls: Mapping[str, str | None]  # None: the sysctl does not exist on this kernel
    seccomp: int  # /proc/self/status "Seccomp:": 0 none, 1 strict, 2 filter
    threads: int
    has_userns: bool  # /proc/self/ns/user exists (CONFIG_USER_NS)
    privileged: bool  # CAP_SYS_ADMIN on the host: the unprivileged-only sysctls do not apply


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _status_field(name: str) -> str | None:
    text = _read("/proc/self/status") or ""
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def read_settings() -> Settings:
    sysctls = {key: _read("/proc/sys/" + key.replace(".", "/")) for key in SETTINGS}
    cap_eff = int(_status_field("CapEff") or "0", 16)
    return Settings(
        sysctls=sysctls,
        seccomp=int(_status_field("Seccomp") or "0"),
        threads=int(_status_field("Threads") or "1"),
        has_userns=os.path.exists("/proc/self/ns/user"),
        privileged=bool(cap_eff >> 21 & 1),
    )


def explain_refusal(step: str, err: int, settings: Settings) -> str:
    """One line naming what refused ``step`` (an unshare, a map write, a mount) with ``err``."""
    head = "rootless mode: the kernel refuses a user namespace"
    got = settings.sysctls
    if not settings.has_userns:
        return f"{head}: this kernel has no user namespaces (CONFIG_USER_NS is off)"
    if err == errno.EINVAL and settings.threads > 1:
        return (
            f"{head}: {step} needs a single-threaded process and this one runs "
            f"{settings.threads} threads (enter before starting any thread)"
        )
    if err == errno.ENOSPC or got.get(SYSCTL_MAX) == "0":
        limit = got.get(SYSCTL_MAX)
        why = "allows none" if limit == "0" else "is used up"
        return f"{head}: {SYSCTL_MAX}={limit} {why} ({step}: {os.strerror(err)})"
    if err == errno.EPERM and not settings.privileged:
        if got.get(SYSCTL_CLONE) == "0":
            return (
                f"{head}: {SYSCTL_CLONE}=0 denies them to unprivileged users "
                f"(sysctl -w {SYSCTL_CLONE}=1 allows them)"
            )
        if got.get(SYSCTL_APPARMOR) == "1":
            return (
                f"{head}: {SYSCTL_APPARMOR}=1 gives unconfined programs a user namespace "
                f"without capabilities ({step}: {os.strerror(err)}; an AppArmor profile with "
                f"'userns,' or sysctl -w {SYSCTL_APPARMOR}=0 allows it)"
            )
    if err == errno.EPERM and settings.seccomp == 2:
        return (
            f"{head}: a seccomp filter blocks it (Seccomp: 2 in /proc/self/status; a "
            f"container's default profile does this: run it with unshare allowed) "
            f"({step}: {os.strerror(err)})"
        )
    if err == errno.EPERM:
        # No setting explains it; the kernel also refuses a chrooted process (create_user_ns:
        # current_chrooted()), and a security module may.
        return f"{head}: {step}: {os.strerror(err)} (a chroot or a security module refuses it)"
    return f"{head}: {step}: {os.strerror(err)}"


def _refuse(step: str, exc: OSError) -> Refused:
    return Refused(explain_refusal(step, exc.errno or 0, read_settings()))


def _unshare(flags: int, what: str) -> None:
    if nsutil.libc().unshare(flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setns(fd: int, nstype: int, what: str) -> None:
    if nsutil.libc().setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns({what}): {os.strerror(err)}")


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None) -> None:
    ret = nsutil.libc().mount(
        src.encode() if src is not None else None,
        dst.encode(),
        fstype.encode() if fstype is not None else None,
        flags,
        data.encode() if data is not None else None,
    )
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {dst}: {os.strerror(err)}", dst)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def userns_inode() -> int:
    return os.stat("/proc/self/ns/user").st_ino


def inside_run() -> bool:
    """True in a process of a rootless run (its owner, an xdist worker, a peer)."""
    mark = os.environ.get(ENV_MARK)
    # The inode check ignores a stale mark (exported by hand, or leaked into an unrelated
    # process started outside the run).
    return bool(mark) and mark == str(userns_inode())


def enter() -> None:
    """Move this process into new user, mount and network namespaces with a private ``/run``.

    Raises :class:`Refused` (exit 77) with one line naming what refused.
    """
    uid, gid = os.geteuid(), os.getegid()
    keep = [p for p in HOST_KEEP if os.path.isdir(p)]
    try:
        _unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET, UNSHARE)
    except OSError as exc:
        raise _refuse(UNSHARE, exc) from None
    try:
        # setgroups must be denied before an unprivileged gid_map write (user_namespaces(7)).
        with contextlib.suppress(FileNotFoundError):
            _write("/proc/self/setgroups", "deny")
        _write("/proc/self/uid_map", f"0 {uid} 1\n")
        _write("/proc/self/gid_map", f"0 {gid} 1\n")
    except OSError as exc:
        raise _refuse("writing /proc/self/uid_map", exc) from None
    try:
        _mount(None, "/", None, MS_REC | MS_SLAVE, None)
        # O_PATH handles on what the tmpfs is about to cover, to bind them back after.
        held = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)) for p in keep]
        _mount("rawstack-harness", RUN_TMPFS, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
        for path, fd in held:
            os.makedirs(path, mode=0o755, exist_ok=True)
            _mount(f"/proc/self/fd/{fd}", path, None, nsutil.MS_BIND | MS_REC, None)
            os.close(fd)
        # /run/netns ready as iproute2 leaves it (a shared bind mount of itself) before any
        # run starts: runs with different state roots would otherwise race to make it one
        # and stack two mounts, and each namespace mount would then appear twice.
        os.makedirs(NETNS_DIR, mode=0o755)
        nsutil.bind_mount(NETNS_DIR, NETNS_DIR)
        nsutil.make_shared(NETNS_DIR)
    except OSError as exc:
        raise _refuse(f"mount tmpfs on {RUN_TMPFS}", exc) from None
    _private_etc_netns()
    _loopback_up()
    os.environ[ENV_MARK] = str(userns_inode())


def _private_etc_netns() -> None:
    """A writable ``/etc/netns`` of the run's own, for the nodes' hosts files (names.py).

    ``/etc`` becomes an overlay whose upper layer is in the run's ``/run`` (the host's
    ``/etc`` is its read-only lower layer; what was mounted under ``/etc``, e.g. a container's
    ``/etc/hosts``, is bound back), and a tmpfs goes on its ``/etc/netns``. Not a tmpfs on the
    host's own ``/etc/netns`` directory: a root run removing that directory on the host would
    detach the mount from under this run. Where the kernel has no unprivileged overlayfs
    (before 5.11), node names are what fails, saying ``/etc/netns``."""
    subs = _mounts_below("/etc")
    held = [(m, os.open(m, os.O_PATH | os.O_CLOEXEC)) for m in subs]
    try:
        upper, work = f"{RUN_TMPFS}/.etc-upper", f"{RUN_TMPFS}/.etc-work"
        os.makedirs(upper, mode=0o755)
        os.makedirs(work, mode=0o700)
        options = f"lowerdir=/etc,upperdir={upper},workdir={work}"
        try:
            _mount("overlay", "/etc", "overlay", 0, options)
        except OSError:
            return
        for path, fd in held:
            with contextlib.suppress(OSError):
                _mount(f"/proc/self/fd/{fd}", path, None, nsutil.MS_BIND | MS_REC, None)
        os.makedirs(ETC_NETNS, mode=0o755, exist_ok=True)
        with contextlib.suppress(OSError):
            _mount("rawstack-harness", ETC_NETNS, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    finally:
        for _, fd in held:
            os.close(fd)


def _mounts_below(top: str) -> list[str]:
    """Mount points strictly below ``top`` in this mount namespace, outermost first."""
    found = []
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4:
                # mountinfo escapes space, tab, newline and backslash as octal.
                point = fields[4].encode().decode("unicode_escape")
                if point.startswith(top.rstrip("/") + "/"):
                    found.append(point)
    return found


def _loopback_up() -> None:
    from rawstack_harness.backends.linux import rtnl

    sock = rtnl.open_socket()
    try:
        batch = rtnl.Batch("the run's network namespace")
        batch.link_set(1, "lo")  # lo is always index 1 in a new namespace
        rtnl.collect([rtnl.send(sock, batch)])
    finally:
        sock.close()


def join(pid: int) -> None:
    """Enter the user and mount namespaces of run owner ``pid``, and its pid namespace for
    the children forked from now on (they die with that run). Single-threaded callers only."""
    fds: dict[str, int] = {}
    try:
        for name in ("user", "mnt", "pid_for_children"):
            fds[name] = os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        _setns(fds["user"], CLONE_NEWUSER, "user")
        _setns(fds["mnt"], CLONE_NEWNS, "mnt")
        os.chdir("/")  # the old cwd belongs to the mount namespace we left
        _setns(fds["pid_for_children"], CLONE_NEWPID, "pid")
        # /proc is now the run's, where this process has no pid: no /proc/self from here.
        os.environ[ENV_MARK] = str(os.fstat(fds["user"]).st_ino)
    finally:
        for fd in fds.values():
            os.close(fd)
