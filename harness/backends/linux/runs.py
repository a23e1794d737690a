"""Run ownership, the manifest of what a run created, and reaping: nothing outlives a run.

Theory of operation: every process that builds topologies owns one *run*: a directory
``<root>/<run id>/`` holding ``lock`` (flock'ed exclusively by the owner for its lifetime,
``O_CLOEXEC`` so peers never inherit it), ``owner.json`` (pid and start time) and
``manifest.jsonl``, an append-only intent log: a resource is recorded *before* it is created
and marked deleted after it is removed, so a crash anywhere leaves a manifest that names a
superset of what exists. A reaper process (``python -m
rawstack_harness.backends.linux.reaper``, own session, no death signal) waits on a pidfd
for the owner to exit and then removes what the manifest lists. ``reap_dead_runs()`` (at
every run start and in ``netns-harness clean``) reaps only
runs whose lock is free: never a live run's resources, never anything not in a manifest.

Namespaces are bind mounts under ``/run/netns`` so ``ip netns`` sees them. Like iproute2,
``/run/netns`` is made a shared mount so a mount namespace cloned later cannot pin ours; the
harness undoes that mount (and the directory) if it made them and no run is left.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rawstack_harness.backends.common import locked_run_dir
from rawstack_harness.backends.linux import names, nsutil

if TYPE_CHECKING:
    from rawstack_harness.backends.linux.forked import PeerHost
    from rawstack_harness.backends.linux.nspool import NamespacePool

DEFAULT_ROOT = os.environ.get("RAWSTACK_HARNESS_RUN_DIR", "/run/rawstack-harness")
NETNS_DIR = "/run/netns"
NS_PREFIX = "rsh"
KEEPER_FILE = "keeper.json"  # in a keeper's run dir: its name and topology (see keeper.py)


def _flock(fd: int, how: int) -> bool:
    try:
        fcntl.flock(fd, how)
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def _locked(path: str, how: int = fcntl.LOCK_EX) -> Iterator[int]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, how)
        yield fd
    finally:
        os.close(fd)


def _open_global_shared(root: str) -> int:
    """Hold ``<root>/.lock`` shared while a run lives (the last one out cleans up)."""
    while True:
        os.makedirs(root, mode=0o755, exist_ok=True)
        path = os.path.join(root, ".lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the last run unlinked it between our open and our lock: retry


def ensure_netns_dir(root: str) -> None:
    """Make ``/run/netns`` a shared mount as iproute2 does, remembering if we did it."""
    with _locked(os.path.join(root, ".mount.lock")):
        created_dir = False
        if not os.path.isdir(NETNS_DIR):
            os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
            created_dir = True
        if nsutil.is_mountpoint(NETNS_DIR):
            return
        marker = os.path.join(root, ".netns-mount.json")
        with open(marker, "w", encoding="utf-8") as fh:
            json.dump({"created_dir": created_dir}, fh)
        nsutil.bind_mount(NETNS_DIR, NETNS_DIR)
        nsutil.make_shared(NETNS_DIR)


def global_cleanup(root: str) -> None:
    """When no run is alive: undo our /run/netns mount and remove the state root."""
    path = os.path.join(root, ".lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
            return
        if any(not n.startswith(".") for n in os.listdir(root)):
            return  # a dead run not reaped yet, or a keeper's run
        marker = os.path.join(root, ".netns-mount.json")
        if os.path.exists(marker):
            with _locked(os.path.join(root, ".mount.lock")):
                with open(marker, encoding="utf-8") as fh:
                    created_dir = bool(json.load(fh).get("created_dir"))
                if os.path.isdir(NETNS_DIR) and not os.listdir(NETNS_DIR):
                    nsutil.umount(NETNS_DIR)
                    if created_dir and not os.listdir(NETNS_DIR):
                        with contextlib.suppress(OSError):
                            os.rmdir(NETNS_DIR)
                    os.unlink(marker)
        created = os.path.join(root, names.CREATED_MARK)
        if os.path.exists(created):
            with contextlib.suppress(OSError):
                os.rmdir(names.ETC_NETNS)  # only if empty: what is in it is not ours
            os.unlink(created)
        for name in (".mount.lock", ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, name))
        with contextlib.suppress(OSError):
            os.rmdir(root)
    finally:
        os.close(fd)


@dataclass
class Manifest:
    """The intent log of one run directory.

    Only the run's own process writes it (its directory is locked), through this object, so
    :meth:`live` reads the file once and then follows its own writes: a test's teardown asks
    it, and reading the whole log every time grew with the session (O(n) a call).
    """

    path: Path
    _live: dict[tuple[str, str], dict[str, Any]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def add(self, kind: str, key: str, **fields: Any) -> None:
        self.write([{"op": "add", "kind": kind, "key": key, **fields}])

    def remove(self, kind: str, key: str) -> None:
        self.write([{"op": "del", "kind": kind, "key": key}])

    def write(self, entries: list[dict[str, Any]]) -> None:
        """Append entries (``op``, ``kind``, ``key``, ...) in one ``write``."""
        if not entries:
            return
        # One short O_APPEND write is atomic in practice; a torn last line is skipped anyway.
        data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in entries).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        if self._live is not None:
            _apply(self._live, entries)

    def live(self) -> list[dict[str, Any]]:
        """Entries added and not removed, in creation order."""
        if self._live is None:
            entries: list[dict[str, Any]] = []
            with contextlib.suppress(FileNotFoundError):
                for line in self.path.read_text(encoding="utf-8").splitlines():
                    try:
                        entries.append(json.loads(line))
                    except ValueError:
                        continue  # a torn last line from a crash mid-write
            self._live = {}
            _apply(self._live, entries)
        return list(self._live.values())


def _apply(live: dict[tuple[str, str], dict[str, Any]], entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        key = (entry["kind"], entry["key"])
        if entry["op"] == "add":
            live[key] = entry
        else:
            live.pop(key, None)


class LinuxRun:
    """The current process's run: a locked state dir, its manifest and its reaper."""

    def __init__(
        self, root: str = DEFAULT_ROOT, label: str = "pytest", pool: bool = True, fork: bool = True
    ) -> None:
        self.root = root
        # rawstack's commands in nodes (LinuxNode.run_rawstack) fork from the peer host;
        # False: a fresh interpreter each (--netns-peer-start=exec).
        self.fork = fork
        self._global_fd = _open_global_shared(root)
        reap_dead_runs(root)
        self.dir, self._lock_fd = locked_run_dir(root)
        self.id = self.dir.name
        self.manifest = Manifest(self.dir / "manifest.jsonl")
        self._pid = os.getpid()
        owner = {"pid": os.getpid(), "start": nsutil.proc_start_time(os.getpid()), "label": label}
        (self.dir / "owner.json").write_text(json.dumps(owner), encoding="utf-8")
        self._reaper = _spawn_reaper(self.dir)
        self._seq = 0
        self._peer_host: PeerHost | None = None
        self._ns_pool: NamespacePool | None = None
        self._pooled = pool  # namespaces made ahead for the next build (nspool.py)
        self.closed = False
        ensure_netns_dir(root)

    def peer_host(self) -> PeerHost:
        """The run's warm peer host, started by the first call (again if it died)."""
        if self._peer_host is None or not self._peer_host.alive():
            from rawstack_harness.backends.linux.forked import PeerHost

            if self._peer_host is not None:
                self._peer_host.close()
            self._peer_host = PeerHost(self.dir / "peerhost.log", self.manifest)
        return self._peer_host

    def namespace_pool(self) -> NamespacePool | None:
        """The run's namespaces made ahead (see nspool.py); None in a forked child, or if
        the run was opened without (a keeper builds once)."""
        if not self._pooled or os.getpid() != self._pid:
            return None  # a child's are the parent's descriptors: its builds name them
        if self._ns_pool is None:
            from rawstack_harness.backends.linux.nspool import NamespacePool

            self._ns_pool = NamespacePool()
        return self._ns_pool

    def next_prefix(self) -> str:
        """A namespace-name prefix unique in this run: ``rsh<runid><seq>``."""
        self._seq += 1
        return f"{NS_PREFIX}{self.id}{self._seq}"

    def close(self) -> None:
        """Remove everything still in the manifest, stop the reaper, drop the state dir."""
        if self.closed:
            return
        if os.getpid() != self._pid:
            # A forked child (pyroute2's netns helpers fork) unwinding our stack: the run is
            # the parent's, which is alive and still using it.
            return
        self.closed = True
        if self._ns_pool is not None:
            self._ns_pool.close()
        if self._peer_host is not None:
            self._peer_host.close()  # it SIGKILLs what it forked; reap_dir finds the rest
        reap_dir(self.dir)
        if self._reaper.poll() is None:
            self._reaper.send_signal(signal.SIGTERM)
        try:
            self._reaper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._reaper.kill()
            self._reaper.wait()
        os.close(self._lock_fd)
        os.close(self._global_fd)
        global_cleanup(self.root)


def _spawn_reaper(run_dir: Path) -> subprocess.Popen[bytes]:
    pidfd = os.pidfd_open(os.getpid()) if hasattr(os, "pidfd_open") else -1
    argv = [sys.executable, "-m", "rawstack_harness.backends.linux.reaper"]
    argv += [str(run_dir), str(os.getpid()), str(pidfd)]
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(run_dir / "reaper.log", "ab"),
            pass_fds=(pidfd,) if pidfd >= 0 else (),
            start_new_session=True,  # Ctrl-C to pytest's process group must not reach it
            cwd="/",
        )
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def _ns_members(dev_inos: set[tuple[int, int]]) -> list[int]:
    """Pids whose network namespace is one of ``dev_inos`` (other than ours): one /proc pass."""
    # readlink ("net:[<inode>]") costs about half a stat of the namespace file. Every
    # namespace inode lives on the one nsfs superblock, so the inode alone identifies it.
    links = {f"net:[{ino}]" for _, ino in dev_inos}
    me = str(os.getpid())
    pids = []
    proc = os.open("/proc", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in os.listdir(proc):
            if not name.isdigit() or name == me:
                continue
            try:
                if os.readlink(name + "/ns/net", dir_fd=proc) in links:
                    pids.append(int(name))
            except OSError:
                continue
    finally:
        os.close(proc)
    return pids


def kill_process(pid: int, start: int | None) -> None:
    """SIGKILL ``pid`` (and its group if it leads one) if it is still the same process."""
    if start is not None and nsutil.proc_start_time(pid) != start:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)


def remove_namespaces(
    items: list[tuple[str, tuple[int, int] | None]], spare: Collection[int] = ()
) -> None:
    """Kill what runs inside the namespaces (one scan of /proc) but the pids in ``spare``
    (recycled peers on their way out), then unmount and unlink them.

        Unmounting drops the last reference the harness holds, so the kernel then deletes the
        namespace and every interface in it (a veth's peer too) on its own, asynchronously.
    """
    inos: set[tuple[int, int]] = set()
    for path, known in items:
        found = known
        if found is None:
            with contextlib.suppress(OSError):
                found = nsutil.netns_inode(path)
        if found is not None:
            inos.add(found)
    if inos:
        for pid in _ns_members(inos):
            if pid not in spare:
                kill_process(pid, None)
    for path, _ in items:
        nsutil.umount(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def reap_dir(run_dir: Path) -> None:
    """Remove every live manifest entry of ``run_dir``, then the directory itself."""
    manifest = Manifest(run_dir / "manifest.jsonl")
    entries = manifest.live()
    for entry in entries:
        if entry["kind"] == "proc":
            kill_process(int(entry["pid"]), entry.get("start"))
    namespaces: list[tuple[str, tuple[int, int] | None]] = []
    for entry in reversed(entries):
        if entry["kind"] == "netns":
            ino = entry.get("dev_ino")
            namespaces.append((entry["key"], (int(ino[0]), int(ino[1])) if ino else None))
    remove_namespaces(namespaces)
    for entry in reversed(entries):
        if entry["kind"] == "file":
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry["key"])
    for entry in reversed(entries):
        if entry["kind"] == "dir":  # only if empty: another run may use it too
            with contextlib.suppress(OSError):
                os.rmdir(entry["key"])
    shutil.rmtree(run_dir, ignore_errors=True)


def owner_alive(run_dir: Path) -> bool:
    try:
        owner = json.loads((run_dir / "owner.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    # A zombie owner has ended (its parent, or an init that reaps late, has not waited yet).
    start = nsutil.running_start_time(int(owner["pid"]))
    return start is not None and start == owner.get("start")


def run_dirs(root: str = DEFAULT_ROOT) -> list[Path]:
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [Path(root) / n for n in names if not n.startswith(".") and (Path(root) / n).is_dir()]


def reap_dead_runs(root: str = DEFAULT_ROOT) -> list[str]:
    """Reap runs whose owner lock is free; return their ids. Live runs are left alone."""
    reaped = []
    for run_dir in run_dirs(root):
        try:
            fd = os.open(run_dir / "lock", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            # The owner died between mkdir and creating its lock: nothing was recorded yet.
            if not (run_dir / "manifest.jsonl").exists() and _older_than(run_dir, 10.0):
                shutil.rmtree(run_dir, ignore_errors=True)
            continue
        try:
            if _flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
                reap_dir(run_dir)
                reaped.append(run_dir.name)
        finally:
            os.close(fd)
    return reaped


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except FileNotFoundError:
        return False


def describe_runs(root: str = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """Every run under ``root`` for ``status``: id, label, pid, alive, kept name,
    namespaces."""
    runs = []
    for run_dir in run_dirs(root):
        try:
            owner = json.loads((run_dir / "owner.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {}
        kept = None
        with contextlib.suppress(OSError, ValueError):
            kept = json.loads((run_dir / KEEPER_FILE).read_text(encoding="utf-8")).get("name")
        runs.append(
            {
                "run": run_dir.name,
                "label": owner.get("label"),
                "pid": owner.get("pid"),
                "alive": owner_alive(run_dir),
                "name": kept,
                "netns": [
                    e["key"]
                    for e in Manifest(run_dir / "manifest.jsonl").live()
                    if e["kind"] == "netns"
                ],
            }
        )
    return runs
