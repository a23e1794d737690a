"""The warm peer host: one already-imported interpreter per run that forks a node's peers.

Theory of operation: starting ``python -m rawstack serve-all`` costs an interpreter start
and rawstack's imports on every spawn (~100 ms, ~18 MB PSS). This process pays that once: it
imports every rawstack command, freezes what it has allocated (``gc.freeze()``, so a child's
collector never writes to, and so never copies, the host's pages), then waits on its control
socket. While idle it forks :data:`SPARES` children ahead: each does the setup no request
changes (its own session and process group, the death signal, default signal handlers, no
inherited descriptors; the copy-on-write faults of a fresh fork and of a peer's first start,
by a rehearsal on loopback: :mod:`.rehearsal`, in the host's own network namespace; and at
once, the pages a peer's start copies, learned by a scout at start-up: :mod:`.prefault`) and
waits on a socket of its own. Each spare is *offered* to the harness (``{"op": "spare",
"pid", "start"}`` with the spare's pidfd and socket), which sends a spawn request straight
to a spare it holds and then tells the host (``{"op": "assigned", "pid"}``): no hop through
this process on the spawn's path. A ``spawn`` request sent here instead (the harness had no
spare) gets a child forked for it. A request carries the node's namespace fd, the stdout
and stderr files and optionally a *ready pipe*; the spare that gets it
enters the namespace (``setns``), takes those fds as 0/1/2, writes the requested
``net.*`` sysctls and runs the ``rawstack`` command line in-process: the same parser, errors
and exit statuses as ``python -m rawstack ARGS``. The first ``ready_lines`` lines it writes
to stdout are copied to the ready pipe, which is then closed, so the harness reads ready
lines without a copier thread and the log file has everything.

Recycling: a spare keeps its socket and a handle on the host's namespace through its
assignment. When the harness recycles it (``RECYCLE_SIGNAL``, at teardown: see
``forked.PeerHost.recycle``) the command stops as on SIGTERM, and the child goes back to
the host's namespace, closes everything of that assignment, says ``{"op": "spare"}`` on its
socket and waits for the next request there, as a fresh spare does.

Exit statuses: a spare whose command returned says ``{"op": "done", "code"}`` on its socket
before it exits (its output is flushed by then; the exit can take milliseconds more). The
host is every child's parent; it reaps on SIGCHLD and reports
``{"op": "exit", "pid", "code"}`` (``code`` as ``Popen.returncode``: negative for a signal),
for a spare too (the harness may have assigned it before the host heard).

Crash safety, in three layers: each child has ``PR_SET_PDEATHSIG`` = SIGKILL (the host is
single-threaded, so that is the host's death); the host SIGKILLs every child's group and
exits when its control socket reaches EOF (the harness process died, even by SIGKILL); and
the harness records the host and every child in the run's manifest, so the reaper kills
them too. Nothing here waits for a child's graceful exit: the harness decides that.

Wire format: ``AF_UNIX``/``SOCK_SEQPACKET``, one JSON object per message, descriptors as
``SCM_RIGHTS``. Requests: ``{"op": "spawn", "id", "args", "ready_lines", "sysctls"(,
"cwd", "env")}`` with fds
``[netns, stdout, stderr(, ready)]``. Replies: ``{"op": "hello", "pid", "prefault_bytes"}``
once warm (how much each spare copies ahead: :mod:`.prefault`),
``{"op": "spawned", "id", "pid", "start"}`` with the child's pidfd, ``{"op": "error", "id",
"message"}``, and the exit reports.
"""

from __future__ import annotations

import codecs
import contextlib
import ctypes
import gc
import importlib
import io
import json
import os
import pkgutil
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable, Collection, Sequence
from types import FrameType
from typing import Any, ClassVar

from rawstack_harness.backends.linux import nsutil, prefault, rehearsal
from rawstack_harness.probes import Closer

MAX_MESSAGE = 65536
MAX_FDS = 4
SPARE_FD = 3  # where a spare keeps its socket to the host until it is assigned
SPARES = 2  # forked ahead: a pair's two peers both start from one
HOST_REHEARSALS = 2
REHEARSAL_DELAY = 0.05  # seconds a new spare waits before its rehearsal
RECYCLE_SIGNAL = signal.SIGUSR2  # from the harness: stop serving, become a spare again
ENV_PREFIX = "RAWSTACK_"  # the variables rawstack reads (RAWSTACK_OS, ...): a spawn's own


def send_msg(sock: socket.socket, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
    """One message, with ``fds`` as ancillary data."""
    data = json.dumps(msg).encode()
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def recv_msg(sock: socket.socket) -> tuple[dict[str, Any] | None, list[int]]:
    """The next message and its fds; ``(None, [])`` at EOF."""
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
    if not data:
        for fd in fds:
            os.close(fd)
        return None, []
    msg: dict[str, Any] = json.loads(data)
    return msg, fds


class ReadyTee(io.TextIOBase):
    """``sys.stdout`` of a child: everything to the log, the first lines to the ready pipe too."""

    def __init__(self, out: io.TextIOWrapper, ready_fd: int, lines: int) -> None:
        super().__init__()
        self._out = out
        self._ready = ready_fd
        self._left = lines

    def write(self, text: str) -> int:
        n = self._out.write(text)
        if self._ready >= 0:
            self._out.flush()  # the log has a line before the harness acts on it
            data = text.encode("utf-8", "backslashreplace")
            with contextlib.suppress(OSError):  # the harness stopped reading: only a copy
                while data:
                    data = data[os.write(self._ready, data) :]
            self._left -= text.count("\n")
            if self._left <= 0:
                self.close_pipe()
        return n

    def close_pipe(self) -> None:
        """Close the ready pipe (the harness reads EOF there): after the lines, or early."""
        if self._ready >= 0:
            os.close(self._ready)
            self._ready = -1

    def flush(self) -> None:
        self._out.flush()

    def fileno(self) -> int:
        return self._out.fileno()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False


def _close_held(fd: int) -> None:
    """The closer's close of a recycled child's packet socket duplicate (see _on_recycle)."""
    try:
        os.close(fd)
    finally:
        _Recycle.closing.discard(fd)


_RECYCLE_CLOSER = Closer(close=_close_held)


class _Learned:
    runs: ClassVar[prefault.Ranges] = []  # the pages a spare copies at once (main() learns)


def socket_family(fd: int) -> int:
    """The address family of a socket descriptor (-1 if it is not a socket)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError:
        return -1
    try:
        return int(sock.family)
    finally:
        sock.detach()


def _write_sysctls(items: Sequence[Sequence[str]]) -> None:
    for key, value in items:
        try:
            nsutil.write_sysctl(key, value)
        except OSError as exc:
            sys.stderr.write(f"peer host: sysctl {key}={value}: {exc.strerror}\n")
            sys.stderr.flush()
            os._exit(1)


def _detach(host_pid: int, libc: ctypes.CDLL, sock: socket.socket) -> socket.socket:
    """In a freshly forked child: its own session, death with the host, default signal
    handling, no inherited descriptor but ``sock`` (moved to :data:`SPARE_FD`, returned)."""
    os.setsid()
    libc.prctl(nsutil.PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != host_pid:  # the host died before prctl took effect
        os._exit(1)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # The object must never close its number later: after this it may name another file.
    os.dup2(sock.detach(), SPARE_FD)
    os.closerange(SPARE_FD + 1, 1 << 20)  # the host's sockets, other spares' ends
    return socket.socket(fileno=SPARE_FD)


def _become_spare(host_pid: int, libc: ctypes.CDLL, sock: socket.socket) -> None:
    """In a freshly forked spare: the setup no spawn request changes, then wait for one.

    Never returns: it ends in ``os._exit``, after its assignment or, when the harness
    recycles it (see :func:`_recycled`), after a later one.
    """
    try:
        assignment = _detach(host_pid, libc, sock)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        if not select.select([assignment], [], [], 0)[0]:  # forked for a waiting request: no
            prefault.populate(libc, _Learned.runs)  # time to gain (it would copy more)
        # Take the first-touch costs of a peer's start while nobody waits on us, but not at
        # once: a spare is forked right after a spawn, when that spawn's peer is starting
        # and being probed, and must not take its CPU. Assigned before then: no rehearsal.
        if not select.select([assignment], [], [], REHEARSAL_DELAY)[0]:
            rehearsal.rehearse()
        keep = {assignment.fileno(), home}  # through every assignment, for a recycle
        while True:
            msg, fds = recv_msg(assignment)
            if msg is None:  # the host closed our socket, or the harness its end: not needed
                os._exit(0)
            code = _run_assigned(libc, msg, fds, keep)
            if code is not None:
                # The status now, to the harness: the exit itself can take a while (a packet
                # socket's close waits for an RCU grace period) and its output is complete.
                with contextlib.suppress(OSError):
                    send_msg(assignment, {"op": "done", "code": code})
                os._exit(code)
            if not _recycled(libc, home, keep):
                os._exit(1)
            send_msg(assignment, {"op": "spare"})  # to the harness: assign me again
    except BaseException:
        os._exit(1)


class _Recycle:
    """What a child's ``RECYCLE_SIGNAL`` handler left for the end of its assignment."""

    asked = False
    held: ClassVar[list[int]] = []  # duplicates of its packet sockets, for the closer
    # Those the closer has not closed yet (a grace period each): never closed here, nor
    # their numbers taken for another descriptor's, whatever assignment comes next.
    closing: ClassVar[set[int]] = set()


def _on_recycle(signum: int, frame: FrameType | None) -> None:
    """The harness hands this child back (see :func:`_recycled`): serve-all stops as on
    SIGTERM, and its packet sockets' closes will not be the last (each would wait for an
    RCU grace period, ~12 ms here): duplicates go to a closer thread after the servers
    close. A child not serving yet (no loop handler) just exits, as a killed one would."""
    stop = signal.getsignal(signal.SIGTERM)
    if not callable(stop) or _Recycle.asked:
        os._exit(0)
    _Recycle.asked = True
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if socket_family(fd) == socket.AF_PACKET:
            with contextlib.suppress(OSError):
                _Recycle.held.append(os.dup(fd))
    stop(signal.SIGTERM, frame)


def _recycled(libc: ctypes.CDLL, home: int, keep: set[int]) -> bool:
    """After an assignment the harness recycled: become a spare again, at home, with no
    descriptor but ``keep`` (and the packet sockets the closer is closing). False if that
    cannot be done: the child exits then."""
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    _Recycle.closing.update(_Recycle.held)
    _RECYCLE_CLOSER.put(_Recycle.held)
    _Recycle.asked, _Recycle.held = False, []
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(RECYCLE_SIGNAL, signal.SIG_IGN)  # one recycle per assignment
    if libc.setns(home, nsutil.CLONE_NEWNET) != 0:
        return False
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        os.dup2(null, target)
    os.close(null)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep and fd not in _Recycle.closing:
            with contextlib.suppress(OSError):
                os.close(fd)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    return True


def _become_shared(host_pid: int, libc: ctypes.CDLL, sock: socket.socket) -> None:
    """In the freshly forked shared-peers process: serve tenants until the host is gone."""
    code = 1
    try:
        from rawstack_harness.backends.linux.sharedpeers import SharedServer

        SharedServer(_detach(host_pid, libc, sock), libc).serve()
        code = 0
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        os._exit(code)


def _run_assigned(
    libc: ctypes.CDLL, msg: dict[str, Any], fds: list[int], keep: Collection[int]
) -> int | None:
    """In a spare that got its request: enter the node, take its fds, run ``rawstack ARGS``.

    Returns the exit status, or None when the harness recycled this child (the command
    returned after :func:`_on_recycle`). Leaves ``keep`` open.
    """
    code = 1
    args = [str(a) for a in msg["args"]]
    lines = int(msg.get("ready_lines", 0))
    try:
        netns, out_fd, err_fd = fds[:3]
        ready = fds[3] if len(fds) > 3 else -1
        if libc.setns(netns, nsutil.CLONE_NEWNET) != 0:
            os.write(err_fd, f"setns: {os.strerror(ctypes.get_errno())}\n".encode())
            os._exit(126)
        null = os.open(os.devnull, os.O_RDONLY)
        for fd, target in ((null, 0), (out_fd, 1), (err_fd, 2)):
            os.dup2(fd, target)
        for fd in {null, netns, out_fd, err_fd, *fds[4:]} - {0, 1, 2, ready, *keep}:
            os.close(fd)
        # The host's stream objects point at its own 0/1/2 and buffers: new ones, unshared.
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        out = open(1, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        sys.stdout = ReadyTee(out, ready, lines) if ready >= 0 else out
        sys.stderr = open(  # noqa: SIM115
            2, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False
        )
        _write_sysctls([(str(k), str(v)) for k, v in msg.get("sysctls", [])])
        if msg.get("env") is not None:  # the caller's own RAWSTACK_* (the quirk overrides)
            for key in [k for k in os.environ if k.startswith(ENV_PREFIX)]:
                del os.environ[key]
            os.environ.update({str(k): str(v) for k, v in msg["env"].items()})
        if msg.get("cwd") is not None:
            try:
                os.chdir(str(msg["cwd"]))
            except OSError as exc:
                sys.stderr.write(f"peer host: cwd {msg['cwd']}: {exc.strerror}\n")
                return 1
        sys.argv = ["rawstack", *args]
        from rawstack.cli import main

        if args[:1] != ["serve-all"]:  # it ends by itself, its status said before the exit
            from rawstack.sockets.packet import close_at_exit

            close_at_exit()

        signal.signal(RECYCLE_SIGNAL, _on_recycle)  # sent only by a harness holding our socket
        code = main(args)
        if _Recycle.asked:
            return None
    except SystemExit as exc:  # argparse: --help, usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    return code


# What a ``rawstack`` child of the host is started with most: built, parsed and imported
# before forking, so no child pays for it (or copies the pages it would have written).
WARM_COMMANDS = (["serve-all", "--iface", "lo"], ["udp", "serve"], ["http", "serve"])


def warm_up() -> None:
    """Import all of rawstack and build the usual commands' parsers, as each child would."""
    import platform

    import rawstack
    import rawstack.cli

    for info in pkgutil.walk_packages(rawstack.__path__, "rawstack."):
        if info.name.endswith(".__main__"):  # importing it runs the command line
            continue
        with contextlib.suppress(ImportError):  # another OS's module
            importlib.import_module(info.name)
    platform.uname()  # cached: the BPF layout asks for platform.machine()
    codecs.lookup("ascii")  # a child's sysctl writes would import the codec from disk
    for argv in WARM_COMMANDS:
        rawstack.cli._cached_parser(argv[0]).parse_args(argv)


class Host:
    """The host's loop: requests from the harness, SIGCHLD reaping, EOF means kill all."""

    def __init__(self, ctl: socket.socket) -> None:
        self.ctl = ctl
        self.pid = os.getpid()
        self.libc = nsutil.libc()
        self.children: set[int] = set()  # assigned: their exits are reported
        self.spares: list[tuple[int, int, socket.socket]] = []  # (pid, pidfd, socket)
        self.shared: tuple[int, socket.socket] | None = None  # the shared-peers process
        self.poller = select.poll()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)

    def serve(self) -> None:
        signal.set_wakeup_fd(self._wake_w.fileno())
        signal.signal(signal.SIGCHLD, lambda *_: None)  # the wakeup fd does the work
        poller = self.poller
        poller.register(self.ctl, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        prefaulted = sum(length for _, length in _Learned.runs)
        send_msg(self.ctl, {"op": "hello", "pid": self.pid, "prefault_bytes": prefaulted})
        try:
            while True:
                # Idle (nothing asked for): fork the spares the next requests will take.
                idle = len(self.spares) < SPARES and not poller.poll(0)
                if idle:
                    self.add_spare()
                    continue
                ready = {fd for fd, _ in poller.poll()}
                if self._wake_r.fileno() in ready:
                    with contextlib.suppress(BlockingIOError):
                        while self._wake_r.recv(64):
                            pass
                    self.reap()
                if self.shared is not None and self.shared[1].fileno() in ready:
                    self.relay_shared()
                if self.ctl.fileno() in ready:
                    msg, fds = recv_msg(self.ctl)
                    if msg is None:
                        return  # the harness is gone
                    self.handle(msg, fds)
        except (BrokenPipeError, ConnectionResetError):
            return
        finally:
            self.kill_all()

    def _fork(
        self, become: Callable[[int, ctypes.CDLL, socket.socket], None]
    ) -> tuple[int, socket.socket]:
        """Fork a child that runs ``become`` (it never returns); its pid and our socket to it."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            mine.close()
            become(self.pid, self.libc, theirs)
        theirs.close()
        return pid, mine

    def add_spare(self) -> None:
        """Fork a spare and offer it to the harness, which assigns it itself (see below)."""
        pid, mine = self._fork(_become_spare)
        pidfd = os.pidfd_open(pid)
        self.spares.append((pid, pidfd, mine))
        offer = {"op": "spare", "pid": pid, "start": nsutil.proc_start_time(pid)}
        send_msg(self.ctl, offer, [pidfd, mine.fileno()])

    def assigned(self, pid: int) -> None:
        """The harness gave spare ``pid`` its request: a child now (its exit is reported)."""
        if self._drop_spare(pid):
            self.children.add(pid)

    def _drop_spare(self, pid: int) -> bool:
        """Forget spare ``pid`` (closing our pidfd and socket); whether it was one."""
        for spare in [s for s in self.spares if s[0] == pid]:
            self.spares.remove(spare)
            os.close(spare[1])
            spare[2].close()
            return True
        return False

    def handle(self, msg: dict[str, Any], fds: list[int]) -> None:
        try:
            if msg.get("op") == "signal":  # for a tenant of the shared process
                if self.shared is not None:
                    self._send_shared(msg)
                return
            if msg.get("op") == "assigned":
                self.assigned(int(msg["pid"]))
                return
            if msg.get("op") != "spawn" or len(fds) < 3:
                send_msg(self.ctl, {"op": "error", "id": msg.get("id"), "message": "bad request"})
                return
            if msg.get("shared"):
                self.share(msg, fds)
                return
            # Every spare is offered to the harness, which may be assigning it right now:
            # a request that reaches us gets a child forked for it.
            pid, sock = self._fork(_become_spare)
            pidfd = os.pidfd_open(pid)
            try:
                send_msg(sock, msg, fds)  # the spare becomes the node's peer
                self.children.add(pid)
                reply = {"op": "spawned", "id": msg["id"], "pid": pid}
                send_msg(self.ctl, {**reply, "start": nsutil.proc_start_time(pid)}, [pidfd])
            finally:
                os.close(pidfd)
                sock.close()
        except OSError as exc:
            send_msg(self.ctl, {"op": "error", "id": msg.get("id"), "message": str(exc)})
        finally:
            for fd in fds:
                os.close(fd)

    def share(self, msg: dict[str, Any], fds: list[int]) -> None:
        """Hand a spawn to the shared-peers process (forked on first use): a tenant there."""
        if self.shared is None:
            pid, mine = self._fork(_become_shared)
            self.children.add(pid)
            self.shared = (pid, mine)
            self.poller.register(mine, select.POLLIN)
        pid = self.shared[0]
        self._send_shared(msg, fds)
        reply = {"op": "spawned", "id": msg["id"], "pid": pid, "vid": msg["id"]}
        send_msg(self.ctl, {**reply, "start": nsutil.proc_start_time(pid)})

    def _send_shared(self, msg: dict[str, Any], fds: Sequence[int] = ()) -> None:
        assert self.shared is not None
        try:
            send_msg(self.shared[1], msg, fds)
        except OSError:  # it died: its exit report (SIGCHLD) ends every tenant
            self._drop_shared()

    def relay_shared(self) -> None:
        """A tenant's exit report from the shared process, on to the harness."""
        assert self.shared is not None
        try:
            msg, fds = recv_msg(self.shared[1])
        except OSError:
            msg, fds = None, []
        for fd in fds:
            os.close(fd)
        if msg is None:
            self._drop_shared()
            return
        send_msg(self.ctl, msg)

    def _drop_shared(self) -> None:
        if self.shared is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(self.shared[1])
            self.shared[1].close()
            self.shared = None

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            # A spare that died unassigned as far as we know (the harness may have assigned
            # it) is reported too.
            if not self._drop_spare(pid) and pid not in self.children:
                continue
            self.children.discard(pid)
            if self.shared is not None and pid == self.shared[0]:
                # Its tenants' last reports first (then EOF): the harness ends the rest.
                while self.shared is not None and select.select([self.shared[1]], [], [], 0)[0]:
                    self.relay_shared()
                self._drop_shared()
            send_msg(
                self.ctl, {"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)}
            )

    def kill_all(self) -> None:
        for pid, pidfd, sock in self.spares:
            self.children.add(pid)
            os.close(pidfd)
            sock.close()
        self.spares.clear()
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            # And by pid: killpg alone left spares alive when the host was closed soon
            # after its hello, and the wait below then lasted until the harness's timeout
            # SIGKILLed the host (5 s). Not reaped yet, so the pid is still that child's.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.children.clear()


def main(argv: Sequence[str]) -> int:
    """``python -m rawstack_harness.backends.linux.peerhost CONTROL_FD``."""
    ctl = socket.socket(fileno=int(argv[0]))
    os.set_inheritable(ctl.fileno(), False)
    # Ctrl-C reaches the harness's process group, not ours; SIGTERM ends the host at once.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    warm_up()
    # A namespace of our own (children setns into their node's anyway) for the rehearsals;
    # two of them here, so that what they run is imported, looked up and specialised once.
    if rehearsal.enter_private_netns():
        for _ in range(HOST_REHEARSALS):
            rehearsal.rehearse()
    gc.freeze()
    # What a spare will copy (see prefault.py): learned from a scout forked in this state.
    _Learned.runs = prefault.learn(rehearsal.scout)
    Host(ctl).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
