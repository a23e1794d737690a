"""The harness's side of the warm peer host: start it once per run, fork peers into nodes.

Theory of operation: :class:`PeerHost` starts :mod:`~rawstack_harness._next.speed.hostproc`
(one interpreter per run, in its own session, started at once but awaited only by the first
spawn) and talks to it over a ``SOCK_SEQPACKET`` socketpair. :meth:`PeerHost.spawn` sends a
namespace fd, the log files and a ready pipe; the reply names the child and carries its
pidfd. One reader thread per host takes the host's messages (replies and exit reports) and
hands them to whoever waits, so a process's status is known the moment the host reaps it.

:class:`ForkedProcess` is the ``subprocess.Popen`` subset the supervision code uses
(``pid``, ``args``, ``stdout``, ``returncode``, ``poll``, ``wait``, ``send_signal``,
``terminate``, ``kill``), so a forked peer is supervised exactly as a spawned one. Signals go
through the pidfd, which names that process and no other even after its pid is reused.

Manifest: with a :class:`~rawstack_harness.runstate.Manifest`, the host and every child are
recorded (pid and start time) as a spawned peer is, and struck off when they exit, so the
reaper kills them after a crash; see ``hostproc`` for the other two layers.
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
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from rawstack_harness._next.speed.hostproc import recv_msg, send_msg
from rawstack_harness.backends.nsutil import proc_start_time
from rawstack_harness.runstate import HarnessError

HELLO_TIMEOUT = 30.0  # the host's interpreter start and imports, on a loaded machine
REPLY_TIMEOUT = 10.0
CLOSE_TIMEOUT = 5.0
HOST_DIED = -int(signal.SIGKILL)  # the status of a child whose host vanished (PDEATHSIG)


class PeerHostError(HarnessError):
    """The peer host could not start, or refused or failed a spawn."""


class ManifestLike(Protocol):
    """What :class:`PeerHost` records in (``rawstack_harness.runstate.Manifest``)."""

    def add(self, kind: str, key: str, **fields: Any) -> None: ...

    def remove(self, kind: str, key: str) -> None: ...


class ForkedProcess:
    """A peer process forked by the host: the ``Popen`` surface supervision relies on."""

    def __init__(self, host: PeerHost, args: Sequence[str], stdout: IO[bytes] | None) -> None:
        self.host = host
        self.args = ["rawstack", *args]
        self.stdout = stdout
        self.stderr: IO[bytes] | None = None
        self.pid = 0
        self.pidfd = -1
        self.returncode: int | None = None
        self._exited = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal the process (not a reused pid: the pidfd names it); a no-op once it exited."""
        if self.returncode is None and self.pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def killpg(self, sig: int) -> None:
        """Signal the process group (the child leads its own), while the leader lives."""
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    def _exit(self, code: int) -> None:
        self.returncode = code
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self._exited.set()

    def __repr__(self) -> str:
        return f"<ForkedProcess pid={self.pid} returncode={self.returncode}>"


class PeerHost:
    """One warm host process and the children it forked; :meth:`close` ends them all."""

    def __init__(self, log_path: Path, manifest: ManifestLike | None = None) -> None:
        self.manifest = manifest
        self._ctl, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [sys.executable, "-m", "rawstack_harness._next.speed.hostproc"]
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
        self._lock = threading.Lock()  # one request in flight: replies come in order
        self._ids = itertools.count(1)
        self._replies: dict[int, tuple[dict[str, Any], list[int]]] = {}
        self._reply_ready = threading.Condition()
        self._hello = threading.Event()
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._gone = False
        self.closed = False
        self._reader = threading.Thread(target=self._read, name="peer-host", daemon=True)
        self._reader.start()

    # -- the reader thread ---------------------------------------------------------------
    def _read(self) -> None:
        try:
            while True:
                msg, fds = recv_msg(self._ctl)
                if msg is None:
                    break
                self._dispatch(msg, fds)
        except OSError:
            pass
        finally:
            with self._reply_ready:
                self._gone = True
                self._reply_ready.notify_all()
            self._hello.set()
            for child in list(self._children.values()):
                self._exited(child.pid, HOST_DIED)

    def _dispatch(self, msg: dict[str, Any], fds: list[int]) -> None:
        op = msg.get("op")
        if op == "hello":
            self._hello.set()
        elif op == "exit":
            self._exited(int(msg["pid"]), int(msg["code"]))
        elif op in ("spawned", "error"):
            with self._reply_ready:
                self._replies[int(msg["id"])] = (msg, fds)
                self._reply_ready.notify_all()
        else:
            for fd in fds:
                os.close(fd)

    def _exited(self, pid: int, code: int) -> None:
        with self._reply_ready:
            child = self._children.pop(pid, None)
            if child is None:  # reported before spawn() registered it
                self._early_exits[pid] = code
                return
        if self.manifest is not None:
            self.manifest.remove("proc", f"pid:{pid}")
        child._exit(code)

    def _await_reply(self, rid: int) -> tuple[dict[str, Any], list[int]]:
        with self._reply_ready:
            ok = self._reply_ready.wait_for(
                lambda: rid in self._replies or self._gone, REPLY_TIMEOUT
            )
            if rid in self._replies:
                return self._replies.pop(rid)
        raise PeerHostError(self._why_gone() if ok else "the peer host did not answer in time")

    def _why_gone(self) -> str:
        code = self.proc.poll()
        status = f"exited with status {code}" if code is not None else "closed its socket"
        return f"the peer host (pid {self.pid}) {status}"

    # -- API -----------------------------------------------------------------------------
    def wait_warm(self, timeout: float = HELLO_TIMEOUT) -> None:
        """Block until the host has imported everything (the first spawn does this)."""
        if not self._hello.wait(timeout):
            raise PeerHostError(f"the peer host was not ready within {timeout:g}s")
        if self._gone:
            raise PeerHostError(self._why_gone())

    def spawn(
        self,
        netns_fd: int,
        args: Sequence[str],
        stdout_path: Path,
        stderr_path: Path,
        ready_lines: int = 0,
    ) -> ForkedProcess:
        """Fork ``rawstack ARGS`` into the namespace ``netns_fd``, logs appended to the paths.

        With ``ready_lines``, the child's first lines of stdout are also readable from the
        returned process's ``stdout`` (a pipe the child closes after them).
        """
        if self.closed:
            raise PeerHostError("the peer host is closed")
        self.wait_warm()
        fds = [
            os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            for path in (stdout_path, stderr_path)
        ]
        reader: IO[bytes] | None = None
        try:
            if ready_lines:
                r, w = os.pipe2(os.O_CLOEXEC)
                reader = open(r, "rb", buffering=0)  # noqa: SIM115 - the child's to close
                fds.append(w)
            child = ForkedProcess(self, args, reader)
            with self._lock:
                rid = next(self._ids)
                request = {"op": "spawn", "id": rid, "args": list(args)}
                send_msg(self._ctl, {**request, "ready_lines": ready_lines}, [netns_fd, *fds])
                reply, reply_fds = self._await_reply(rid)
        except BaseException:
            if reader is not None:
                reader.close()
            raise
        finally:
            for fd in fds:
                os.close(fd)
        if reply["op"] != "spawned":
            if reader is not None:
                reader.close()
            raise PeerHostError(f"the peer host could not fork: {reply.get('message')}")
        child.pid = int(reply["pid"])
        child.pidfd = reply_fds[0] if reply_fds else -1
        if self.manifest is not None:
            key = f"pid:{child.pid}"
            self.manifest.add("proc", key, pid=child.pid, start=reply.get("start"))
        with self._reply_ready:
            early = self._early_exits.pop(child.pid, None)
            if early is None:
                self._children[child.pid] = child
        if early is not None:
            if self.manifest is not None:
                self.manifest.remove("proc", f"pid:{child.pid}")
            child._exit(early)
        return child

    def children(self) -> list[ForkedProcess]:
        """Children not reported dead yet."""
        with self._reply_ready:
            return list(self._children.values())

    def alive(self) -> bool:
        return not self._gone and self.proc.poll() is None

    def close(self, timeout: float = CLOSE_TIMEOUT) -> int | None:
        """End the host: it SIGKILLs every child; return its exit status."""
        if self.closed:
            return self.proc.returncode
        self.closed = True
        with contextlib.suppress(OSError):
            self._ctl.shutdown(socket.SHUT_RDWR)  # EOF for the host: kill all, exit
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout)
        self._ctl.close()
        if self.manifest is not None:
            self.manifest.remove("proc", f"pid:{self.pid}")
        return self.proc.returncode
