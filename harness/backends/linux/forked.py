"""The harness's side of the warm peer host: start it once per run, fork peers into nodes.

Theory of operation: :class:`PeerHost` starts :mod:`~rawstack_harness.backends.linux.peerhost`
(one interpreter per run, in its own session, started at once but awaited only by the first
spawn) and talks to it over a ``SOCK_SEQPACKET`` socketpair. The host offers each spare it
forks (its pid, pidfd and socket); :meth:`PeerHost.spawn` sends a namespace fd, the log
files and a ready pipe straight to an offered spare, then tells the host which it took.
With no spare in hand the request goes to the host, whose reply names the child and carries
its pidfd. There is no reader thread: whichever thread needs a message (a reply, an exit report)
reads the socket, one at a time, and hands on what it read for others (leader/follower), so
no reply crosses a thread before its caller sees it. A spawn does not wait for its reply:
two spawns in a row are forked while the first child already boots, and the reply is read
when the child's pid is first needed (reading its ready lines needs none).

At teardown :meth:`PeerHost.recycle` takes a serving serve-all back instead of having it
killed: the child stops, leaves its node and says so on its socket, and the next spawn sends
its request there (no fork, no copy-on-write faults, a warm start; see the method).

:class:`ForkedProcess` is a ``subprocess.Popen`` by type, so a node keeps it with the
processes it spawned and supervision, the plugin and ``stop_process`` handle it as one; every
method that would wait on or signal a child of this process is overridden (``poll``,
``wait``, ``communicate``, ``send_signal``, ``terminate``, ``kill``): the status comes from
the host, signals go through the child's pidfd, which names that process and no other even
after its pid is reused.

Manifest: with a :class:`~rawstack_harness.backends.linux.runs.Manifest`, the host and every
child are recorded (pid and start time) as a spawned peer is, and struck off when they exit,
so the reaper kills them after a crash; see :mod:`~rawstack_harness.backends.linux.peerhost` for
the other two layers.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from rawstack_harness.backends.base import readable
from rawstack_harness.backends.linux.nsutil import proc_start_time
from rawstack_harness.backends.linux.peerhost import RECYCLE_SIGNAL, recv_msg, send_msg
from rawstack_harness.errors import HarnessError

HELLO_TIMEOUT = 30.0  # the host's interpreter start and imports, on a loaded machine
REPLY_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
HOST_DIED = -int(signal.SIGKILL)  # the status of a child whose host vanished (PDEATHSIG)
MAX_RECYCLED = 4  # recycled children kept for the next spawns (two pairs' peers)
RECYCLE_TIMEOUT = 2.0  # seconds a recycled child has to say it is a spare again
# Assignments a child serves before it is killed rather than recycled: its memory grows by
# ~0.6 KB an assignment (RSS of four children over 600 pairs), so a long run is not left
# with children grown large; a fresh fork costs ~10 ms of CPU once in this many.
MAX_USES = 256


class PeerHostError(HarnessError):
    """The peer host could not start, or refused or failed a spawn."""


class ManifestLike(Protocol):
    """What :class:`PeerHost` records in (``rawstack_harness.backends.linux.runs.Manifest``)."""

    def add(self, kind: str, key: str, **fields: Any) -> None: ...

    def remove(self, kind: str, key: str) -> None: ...


class ForkedProcess(subprocess.Popen[bytes]):
    """A peer process the host forked (see the module docstring); ``Popen.__init__`` never runs."""

    def __init__(
        self, host: PeerHost, rid: int, args: Sequence[str], stdout: IO[bytes] | None
    ) -> None:
        # What Popen's own methods (__del__, __exit__, __repr__) read; nothing was spawned.
        self._child_created = False
        self.args = ["rawstack", *args]
        self.stdin = None
        self.stdout = stdout
        self.stderr = None
        self.text_mode = False
        self.returncode: int | None = None
        self.host = host
        self.rid = rid  # the spawn request, until its reply names the child
        self._pid = 0
        self.pidfd = -1
        self.channel: socket.socket | None = None  # to the child (a spare's socket), if any
        self.start: int | None = None  # its start time (for the manifest)
        self.uses = 1  # assignments this process has served, this one included

    @property
    def pid(self) -> int:
        """The child's pid (reading the host's reply to the spawn if that has not happened).

        Raises :class:`PeerHostError` if the host could not fork or died before it replied
        (never 0, which ``os.kill`` would take for the whole process group).
        """
        self.host._resolve(self)
        if self._pid <= 0:
            raise PeerHostError(f"no pid for a forked process: {self.host._why_gone()}")
        return self._pid

    @pid.setter
    def pid(self, value: int) -> None:
        self._pid = value

    def poll(self) -> int | None:
        if self.returncode is None:
            self.host._pump(lambda: False, 0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self.host._resolve(self)
        if not self.host._pump(lambda: self.returncode is not None, timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def wait_done(self, timeout: float | None = None) -> int:
        """The command's exit status as soon as it returned: a spare says so on its socket
        before its exit, which can take longer (a packet socket's close waits for an RCU
        grace period, ~12 ms here); the host's exit report strikes the process off later.
        A child with no socket to us (the host forked it for the request), or one that
        dies without saying, is waited for as by :meth:`wait`."""
        self.host._resolve(self)
        deadline = None if timeout is None else time.monotonic() + timeout
        sock = self.channel
        if sock is not None and self.returncode is None:
            if not readable(sock, timeout):
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            try:
                msg, fds = recv_msg(sock)
            except OSError:
                msg, fds = None, []
            for fd in fds:
                os.close(fd)
            if msg is not None and msg.get("op") == "done":
                return int(msg["code"])
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.wait(left)

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[bytes, bytes]:
        """Wait for the exit; what is left of the ready pipe (stderr is a log file)."""
        if input:
            raise ValueError("a forked process has no stdin pipe")
        self.wait(timeout)
        out = self.stdout.read() if self.stdout is not None and not self.stdout.closed else b""
        return out or b"", b""

    def send_signal(self, sig: int) -> None:
        """Signal the process (not a reused pid: the pidfd names it); a no-op once it exited."""
        self.host._resolve(self)
        if self.returncode is None and self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def killpg(self, sig: int) -> None:
        """Signal the process group (the child leads its own), while the leader lives."""
        self.host._resolve(self)
        if self.returncode is None and self._pid > 0:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, sig)

    def _exit(self, code: int) -> None:
        self.returncode = code
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        if self.channel is not None:
            self.channel.close()
            self.channel = None

    def __repr__(self) -> str:
        return f"<ForkedProcess pid={self._pid} returncode={self.returncode}>"


class SharedProcess(ForkedProcess):
    """A node's servers in the run's shared-peers process (:mod:`.sharedpeers`): a tenant.

    ``pid`` is the shared process's (every tenant has the same); a signal is not sent to it
    but to the tenant, which acts as serve-all would on it, so stopping or killing one
    node's peers leaves the other nodes' serving.
    """

    def __init__(
        self, host: PeerHost, rid: int, args: Sequence[str], stdout: IO[bytes] | None
    ) -> None:
        super().__init__(host, rid, args, stdout)
        self.vid = rid

    def send_signal(self, sig: int) -> None:
        self.host._resolve(self)
        if self.returncode is None:
            self.host._signal_tenant(self.vid, sig)

    def killpg(self, sig: int) -> None:
        self.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        """What ``os.killpg(pid, sig)`` is for a process of its own (see backends.common)."""
        self.send_signal(sig)

    def _exit(self, code: int) -> None:
        self.returncode = code

    def __repr__(self) -> str:
        return f"<SharedProcess pid={self._pid} tenant={self.vid} returncode={self.returncode}>"


@dataclass
class _Recycled:
    """A child :meth:`PeerHost.recycle` took back, until it is assigned again or exits."""

    start: int | None
    pidfd: int
    sock: socket.socket
    deadline: float  # monotonic; 0.0 once it was killed for missing it
    uses: int  # assignments it served so far
    ready: bool = False  # it said it is a spare again


class PeerHost:
    """One warm host process and the children it forked; :meth:`close` ends them all."""

    def __init__(self, log_path: Path, manifest: ManifestLike | None = None) -> None:
        self.manifest = manifest
        self._ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-m", "rawstack_harness.backends.linux.peerhost"]
        try:
            with open(log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [*argv, str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,  # Ctrl-C to the harness's group is not for it
                    cwd="/",
                )
        finally:
            theirs.close()
        self.pid = self.proc.pid
        if manifest is not None:
            manifest.add("proc", f"pid:{self.pid}", pid=self.pid, start=proc_start_time(self.pid))
        self._send_lock = threading.Lock()
        self._ids = itertools.count(1)
        # Guards everything below; ``_reading`` says some thread is reading the socket.
        self._cond = threading.Condition()
        self._reading = False
        self._replies: dict[int, tuple[dict[str, Any], list[int]]] = {}
        self._hello = False
        self.prefault_bytes = 0  # what each spare copies ahead (peerhost/prefault.py)
        self._gone = False
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._tenants: dict[int, SharedProcess] = {}  # by tenant id, not exited
        self._early_tenant_exits: dict[int, int] = {}
        self._shared_pid = 0  # the shared-peers process, once a tenant's reply named it
        # Spares the host offered: (pid, start time, pidfd, socket to it), oldest first.
        self._spares: list[tuple[int, int | None, int, socket.socket]] = []
        # Children handed back by recycle(), by pid, until assigned again or reported dead.
        self._recycled: dict[int, _Recycled] = {}
        self.closed = False

    # -- reading the host's messages (leader/follower) -------------------------------------
    def _pump(self, done: Callable[[], bool], timeout: float | None) -> bool:
        """Read and dispatch messages until ``done()`` or ``timeout`` (None: forever).

        Returns ``done()``. One thread reads at a time; the others wait to be handed what
        it read, and one of them reads next if their message has not come.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        idle = False  # the last read found nothing: with no time left, stop
        with self._cond:
            while not done():
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if self._gone or (left == 0.0 and idle):
                    break
                if self._reading:
                    idle = True
                    self._cond.wait(left)
                    continue
                self._reading = True
                self._cond.release()
                try:
                    msg, fds = self._read_one(left)
                finally:
                    self._cond.acquire()
                    self._reading = False
                idle = msg is None and not fds
                if not idle or self._gone:
                    self._dispatch(msg, fds)
                self._cond.notify_all()
            return done()

    def _read_one(self, timeout: float | None) -> tuple[dict[str, Any] | None, list[int]]:
        """One message, or ``(None, [])`` when none came in ``timeout``; EOF marks the host gone."""
        try:
            if not readable(self._ctl, timeout):
                return None, []
            msg, fds = recv_msg(self._ctl)
        except (OSError, ValueError):  # ValueError: our own socket was closed
            msg, fds = None, []
        if msg is None:
            with self._cond:
                self._gone = True
        return msg, fds

    def _dispatch(self, msg: dict[str, Any] | None, fds: list[int]) -> None:
        """Called with ``_cond`` held."""
        if self._gone and msg is None:
            self._all_exited(HOST_DIED)
            return
        assert msg is not None
        op = msg.get("op")
        if op == "hello":
            self._hello = True
            self.prefault_bytes = int(msg.get("prefault_bytes", 0))
        elif op == "spare" and len(fds) == 2:
            start = None if msg.get("start") is None else int(msg["start"])
            self._spares.append((int(msg["pid"]), start, fds[0], socket.socket(fileno=fds[1])))
            return
        elif op == "exit" and "vid" in msg:
            self._tenant_exited(int(msg["vid"]), int(msg["code"]))
        elif op == "exit" and self._drop_spare(int(msg["pid"])):
            pass  # a spare died before anyone assigned it
        elif op == "exit" and self._drop_recycled(int(msg["pid"])):
            pass  # a recycled child died (or was given up on) before it was assigned again
        elif op == "exit":
            self._exited(int(msg["pid"]), int(msg["code"]))
        elif op in ("spawned", "error"):
            self._replies[int(msg["id"])] = (msg, fds)
            return
        for fd in fds:
            os.close(fd)

    def _drop_spare(self, pid: int) -> bool:
        """Called with ``_cond`` held: forget an unassigned spare; whether it was one."""
        for spare in [s for s in self._spares if s[0] == pid]:
            self._spares.remove(spare)
            os.close(spare[2])
            spare[3].close()
            return True
        return False

    def _drop_recycled(self, pid: int) -> bool:
        """Called with ``_cond`` held: a recycled child exited; whether it was one."""
        rec = self._recycled.pop(pid, None)
        if rec is None:
            return False
        os.close(rec.pidfd)
        rec.sock.close()
        if self.manifest is not None:
            self.manifest.remove("proc", f"pid:{pid}")
        return True

    def recycle(self, child: ForkedProcess) -> int:
        """Hand ``child``, a serving peer, back to be assigned again; its pid, or 0 if it
        cannot be (the caller kills it then).

        A fresh fork costs the host a fork and the child its copy-on-write faults, a cold
        start and a cold first few exchanges: ~10 ms of CPU per peer. A recycled one has
        paid all that. It is sent ``RECYCLE_SIGNAL``: serve-all stops as on SIGTERM (its
        stats go to the node's log), and the child leaves the namespace, closes every
        descriptor of that assignment and says ``{"op": "spare"}`` on its socket; only then is
        it assigned again. It stays the host's child, recorded in the manifest, under its
        death signal: crash safety is as before. Only serve-all children the harness
        assigned itself (they have a socket to it) are recycled, at most
        :data:`MAX_RECYCLED` at a time and :data:`MAX_USES` assignments each; the object
        ``child`` is done with (status 0, as serve-all's on SIGTERM) and never signals the
        process again.
        """
        command = child.args if isinstance(child.args, list) else []
        if isinstance(child, SharedProcess) or command[1:2] != ["serve-all"]:
            return 0
        with self._cond:
            pid, sock = child._pid, child.channel
            if child.returncode is not None or sock is None or child.pidfd < 0 or pid <= 0:
                return 0
            if len(self._recycled) >= MAX_RECYCLED or child.uses >= MAX_USES or self.closed:
                return 0
            try:
                signal.pidfd_send_signal(child.pidfd, RECYCLE_SIGNAL)
            except OSError:
                return 0
            self._children.pop(pid, None)
            deadline = time.monotonic() + RECYCLE_TIMEOUT
            self._recycled[pid] = _Recycled(child.start, child.pidfd, sock, deadline, child.uses)
            child.pidfd, child.channel = -1, None
            child.returncode = 0
        return pid

    def _take_recycled(self) -> tuple[int, _Recycled] | None:
        """A recycled child that is a spare again (its pid and record), or None. Called
        with ``_cond`` held; one past its deadline is killed (its exit report ends its
        record)."""
        now = time.monotonic()
        for pid, rec in list(self._recycled.items()):
            if rec.deadline == 0.0:
                continue
            if not rec.ready and readable(rec.sock, 0):
                try:
                    msg, fds = recv_msg(rec.sock)
                except OSError:
                    msg, fds = None, []
                for fd in fds:
                    os.close(fd)
                rec.ready = msg is not None and msg.get("op") == "spare"
                if not rec.ready:
                    rec.deadline = now  # it broke off: given up on below
            if rec.ready:
                del self._recycled[pid]
                return pid, rec
            if rec.deadline <= now:
                rec.deadline = 0.0
                with contextlib.suppress(OSError):
                    signal.pidfd_send_signal(rec.pidfd, signal.SIGKILL)
        return None

    def _assign(
        self, request: dict[str, Any], fds: Sequence[int], stdout: IO[bytes] | None
    ) -> ForkedProcess | None:
        """Send ``request`` straight to a recycled child or a spare the host offered; the
        child, or None (no spare, or it died: the host forks one for the request then)."""
        while True:
            with self._cond:
                # A recycled child is a warm serve-all; anything else ends when its command
                # does, so it takes a fresh spare and leaves the warm ones for serve-all.
                warm = request["args"][:1] == ["serve-all"]
                again = self._take_recycled() if warm else None
                if again is not None:
                    pid, rec = again
                    start, pidfd, sock = rec.start, rec.pidfd, rec.sock
                elif self._spares:
                    pid, start, pidfd, sock = self._spares.pop(0)
                else:
                    return None
            try:
                send_msg(sock, request, fds)
            except OSError:  # it died since it was offered (its exit report follows)
                with self._cond:
                    if again is not None:  # its exit report ends the record
                        rec.deadline = 0.0
                        self._recycled[pid] = rec
                    else:
                        os.close(pidfd)
                        sock.close()
                continue
            if again is None:
                with contextlib.suppress(OSError), self._send_lock:
                    send_msg(self._ctl, {"op": "assigned", "pid": pid})  # it forks a new spare
            child = ForkedProcess(self, 0, request["args"], stdout)
            child.channel = sock
            child.uses = 1 if again is None else rec.uses + 1
            with self._cond:
                self._named(child, pid, pidfd, start, record=again is None)
            return child

    def _all_exited(self, code: int) -> None:
        for child in list(self._children.values()):
            self._exited(child._pid, code)
        if self._shared_pid:
            self._exited(self._shared_pid, code)

    def _tenant_exited(self, vid: int, code: int) -> None:
        tenant = self._tenants.pop(vid, None)
        if tenant is None:  # reported before the spawn's reply was taken
            self._early_tenant_exits[vid] = code
        else:
            tenant._exit(code)

    def _exited(self, pid: int, code: int) -> None:
        if pid and pid == self._shared_pid:  # every tenant still served ends with it
            self._shared_pid = 0
            if self.manifest is not None:
                self.manifest.remove("proc", f"pid:{pid}")
            for vid in list(self._tenants):
                self._tenant_exited(vid, code)
            self._early_exits[pid] = code  # for tenants whose reply is not taken yet
            return
        child = self._children.pop(pid, None)
        if child is None:  # reported before the spawn's reply was taken
            self._early_exits[pid] = code
            return
        if self.manifest is not None:
            self.manifest.remove("proc", f"pid:{pid}")
        child._exit(code)

    def _resolve(self, child: ForkedProcess) -> None:
        """Take the reply to ``child``'s spawn request: its pid, pidfd and manifest entry."""
        if child.rid == 0:
            return
        self._pump(lambda: child.rid in self._replies, REPLY_TIMEOUT)
        with self._cond:
            if child.rid == 0:  # another thread took it meanwhile
                return
            found = self._replies.pop(child.rid, None)
            child.rid = 0
            if found is None or found[0]["op"] != "spawned":
                # No child to wait for: it was never forked, or its host died before saying
                # which it was (PDEATHSIG has killed it then).
                child.returncode = HOST_DIED
                if found is not None:
                    raise PeerHostError(f"the peer host could not fork: {found[0].get('message')}")
                if not self._gone:
                    raise PeerHostError("the peer host did not answer in time")
                return
            reply, fds = found
            child._pid = int(reply["pid"])
            if isinstance(child, SharedProcess):
                self._resolved_tenant(child, reply)
                return
            self._named(child, child._pid, fds[0] if fds else -1, reply.get("start"))

    def _named(
        self, child: ForkedProcess, pid: int, pidfd: int, start: int | None, record: bool = True
    ) -> None:
        """Called with ``_cond`` held: ``child`` is ``pid`` (its pidfd ours now): recorded
        (``record``: a recycled child's entry is there already), and ended at once if its
        exit was reported already."""
        child._pid, child.pidfd, child.start = pid, pidfd, start
        if self.manifest is not None and record:
            self.manifest.add("proc", f"pid:{pid}", pid=pid, start=start)
        early = self._early_exits.pop(pid, None)
        if early is None:
            self._children[pid] = child
        else:
            if self.manifest is not None:
                self.manifest.remove("proc", f"pid:{pid}")
            child._exit(early)

    def _resolved_tenant(self, tenant: SharedProcess, reply: dict[str, Any]) -> None:
        """Called with ``_cond`` held, the tenant's spawn reply just taken."""
        pid = tenant._pid
        if pid in self._early_exits:  # the shared process died before we knew it
            tenant._exit(self._early_exits[pid])
            return
        if pid != self._shared_pid:
            self._shared_pid = pid
            if self.manifest is not None:
                self.manifest.add("proc", f"pid:{pid}", pid=pid, start=reply.get("start"))
        early = self._early_tenant_exits.pop(tenant.vid, None)
        if early is None:
            self._tenants[tenant.vid] = tenant
        else:
            tenant._exit(early)

    def _signal_tenant(self, vid: int, sig: int) -> None:
        with contextlib.suppress(OSError), self._send_lock:
            send_msg(self._ctl, {"op": "signal", "vid": vid, "sig": int(sig)})

    def _why_gone(self) -> str:
        code = self.proc.poll()
        status = f"exited with status {code}" if code is not None else "closed its socket"
        return f"the peer host (pid {self.pid}) {status}"

    # -- API -----------------------------------------------------------------------------
    def wait_warm(self, timeout: float = HELLO_TIMEOUT) -> None:
        """Block until the host has imported everything (the first spawn does this)."""
        if not self._pump(lambda: self._hello or self._gone, timeout):
            raise PeerHostError(f"the peer host was not ready within {timeout:g}s")
        if self._gone:
            raise PeerHostError(self._why_gone())

    def spawn(
        self,
        netns_fd: int,
        args: Sequence[str],
        stdout: Path | int,
        stderr: Path | int,
        *,
        ready_lines: int = 0,
        sysctls: Sequence[tuple[str, str]] = (),
        shared: bool = False,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> ForkedProcess:
        """Fork ``rawstack ARGS`` into the namespace ``netns_fd``, logs appended to the paths
        (or written to the descriptors, which stay the caller's: the child gets copies).

        With ``shared``, nothing is forked: ``ARGS`` (``serve-all ...``) become a tenant of
        the run's shared-peers process (:class:`SharedProcess`, :mod:`.sharedpeers`).

        The child writes ``sysctls`` (``net.*`` keys, in its namespace) before running; one
        it cannot write is an error on its stderr and exit status 1. It runs in ``cwd`` if
        given (else the host's, ``/``); ``env``, if given, replaces the host's ``RAWSTACK_*``
        variables (the rest of its environment is the host's).
        With ``ready_lines``, the child's first lines of stdout are also readable from the
        returned process's ``stdout`` (a pipe the child closes after them). Returns once the
        request is sent; a host that cannot fork raises when the pid is first asked for.
        """
        if self.closed:
            raise PeerHostError("the peer host is closed")
        self.wait_warm()
        # Take what the host has said so far (replies nobody asked for yet, exit reports):
        # a host whose messages fill its socket blocks there and forks nothing more, and the
        # caller would then wait on a ready pipe nobody writes to.
        self._pump(lambda: False, 0.0)
        fds = [
            os.dup(where)
            if isinstance(where, int)
            else os.open(where, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            for where in (stdout, stderr)
        ]
        reader: IO[bytes] | None = None
        try:
            if ready_lines:
                r, w = os.pipe2(os.O_CLOEXEC)
                reader = open(r, "rb", buffering=0)  # noqa: SIM115 - the child's to close
                fds.append(w)
            request = {
                "op": "spawn",
                "id": 0,
                "args": list(args),
                "ready_lines": ready_lines,
                "sysctls": [list(item) for item in sysctls],
                "shared": shared,
            }
            if cwd is not None:
                request["cwd"] = cwd
            if env is not None:
                request["env"] = env
            child = None if shared else self._assign(request, [netns_fd, *fds], reader)
            if child is not None:
                return child
            with self._send_lock:
                rid = request["id"] = next(self._ids)
                send_msg(self._ctl, request, [netns_fd, *fds])
        except BaseException as exc:
            if reader is not None:
                reader.close()
            if isinstance(exc, OSError):
                raise PeerHostError(f"the peer host is gone: {exc}") from None
            raise
        finally:
            for fd in fds:
                os.close(fd)
        if shared:
            return SharedProcess(self, rid, args, reader)
        return ForkedProcess(self, rid, args, reader)

    def children(self) -> list[ForkedProcess]:
        """Children not reported dead yet (as far as the messages read so far tell)."""
        with self._cond:
            return list(self._children.values())

    def alive(self) -> bool:
        return not self._gone and not self.closed and self.proc.poll() is None

    def close(self, timeout: float = CLOSE_TIMEOUT) -> int | None:
        """End the host: it SIGKILLs every child; return its exit status."""
        if self.closed:
            return self.proc.returncode
        self.closed = True
        with contextlib.suppress(OSError):
            self._ctl.shutdown(socket.SHUT_WR)  # EOF for the host: kill all, exit
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._pump(lambda: self._gone, 1.0)  # its last exit reports, then EOF
        with self._cond:
            self._all_exited(HOST_DIED)
            for fds in [f for _, f in self._replies.values()]:
                for fd in fds:
                    os.close(fd)
            self._replies.clear()
            for pid in [s[0] for s in self._spares]:
                self._drop_spare(pid)
            for pid in list(self._recycled):
                self._drop_recycled(pid)
        self._ctl.close()
        if self.manifest is not None:
            self.manifest.remove("proc", f"pid:{self.pid}")
        return self.proc.returncode
