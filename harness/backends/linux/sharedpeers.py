"""Shared peers: one process serves every node's ``serve-all`` (``--netns-peer-start=shared``).

Theory of operation: a forked peer costs ~4.5 MB of private memory however little it does,
because CPython 3.11 writes to every object it touches (reference counts, the specialising
interpreter's caches) and so copies the host's pages. Here one process, forked once per run
by the warm peer host (:mod:`.peerhost`), holds every node's servers on one
:class:`~rawstack.peers.loop.Loop`: a node costs its sockets and a few objects.

A node's servers are a *tenant*. Starting one (a ``spawn`` request the host forwards, with
the node's namespace fd, its log files and ready pipe) enters the node's namespace
(``setns``), writes its ``net.*`` sysctls, opens its servers' sockets, which stay in that
namespace for good, and comes back to this process's own namespace. Everything a tenant's
callbacks print goes to that node's ``.out``/``.err`` (its :class:`Tenant` swaps
``sys.stdout``/``sys.stderr`` around each one, through a
:class:`~rawstack.peers.loop.LoopView`), and the first lines of its stdout to its ready pipe,
exactly as a forked serve-all writes them. A tenant ends with an exit status of its own,
reported to the harness as ``{"op": "exit", "vid", "code"}``:

- a ``signal`` request stands for the signal serve-all would get: SIGTERM or SIGINT close
  the node's servers, log their stats and end it with status 0; any other terminating
  signal closes them at once with status ``-signal``; SIGSTOP, SIGCONT and the signals
  whose default is to be ignored do nothing;
- a server that cannot start ends it as serve-all would exit (``rawstack: error: ...`` and
  that error's status); a callback that raises ends it with its traceback and status 1.
  Other tenants go on in both cases.

What is shared is the process: a crash of the interpreter itself, or a signal sent to this
process's pid, ends every tenant (each then reports this process's status). The crash
safety is the forked peers': death signal with the host, the host's kill on EOF, and the
run's manifest.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import traceback
from types import TracebackType
from typing import Any, TextIO

from rawstack_harness.backends.linux import nsutil
from rawstack_harness.backends.linux.peerhost import ReadyTee, recv_msg, send_msg, socket_family
from rawstack_harness.probes import Closer

from rawstack.errors import EXIT_FAILED, EXIT_USAGE, RawstackError
from rawstack.peers.base import Server, announce_all, log
from rawstack.peers.loop import Loop, LoopView
from rawstack.sockets.inet import raise_nofile_limit

# serve-all's loop handles these (closes its servers, exits 0); other signals' defaults apply.
GRACEFUL = frozenset({signal.SIGTERM, signal.SIGINT})
NO_EFFECT = frozenset(
    {0, signal.SIGSTOP, signal.SIGCONT, signal.SIGCHLD, signal.SIGWINCH, signal.SIGURG}
)


class Tenant:
    """One node's servers in the shared process: its streams, its servers, its status."""

    def __init__(self, server: SharedServer, vid: int, fds: list[int], ready_lines: int) -> None:
        self.server = server
        self.vid = vid
        out_fd, err_fd = fds[1], fds[2]
        self._fds = [out_fd, err_fd]
        out = open(out_fd, "w", encoding="utf-8", buffering=1, closefd=False)  # noqa: SIM115
        self._ready: ReadyTee | None = None
        self.stdout: TextIO = out
        if len(fds) > 3:  # the tee owns it: closed after the ready lines, or at the end
            self._ready = ReadyTee(out, fds[3], ready_lines)
            self.stdout = self._ready  # type: ignore[assignment]  # a text stream by duck typing
        self.stderr: TextIO = open(  # noqa: SIM115
            err_fd, "w", encoding="utf-8", errors="backslashreplace", buffering=1, closefd=False
        )
        self.view = LoopView(server.loop, self.scope, self.crashed)
        self.servers: list[Server] = []
        self.code: int | None = None
        self._saved: list[tuple[TextIO, TextIO]] = []

    # -- the tenant's streams as sys.stdout/sys.stderr while its code runs ----------------
    def scope(self) -> Tenant:
        return self

    def __enter__(self) -> Tenant:
        self._saved.append((sys.stdout, sys.stderr))
        sys.stdout, sys.stderr = self.stdout, self.stderr
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        sys.stdout, sys.stderr = self._saved.pop()

    # -- life ----------------------------------------------------------------------------
    def start(self, argv: list[str], netns: int, sysctls: list[tuple[str, str]]) -> None:
        """Parse ``serve-all ARGS``, start the servers in the node, print the ready lines.

        A failure ends the tenant as it ends serve-all: the command line's error line and
        status (:func:`rawstack.cli.reported`), argparse's usage error, or a traceback and
        status 1. ``netns`` is closed before the ready lines: once they are read, this
        process holds nothing of the node but its servers' sockets and its logs.
        """
        from rawstack.cli import reported

        with self:
            try:
                code = reported(lambda: self._start(argv, netns, sysctls))
            except SystemExit as exc:  # argparse: its usage error is on our stderr
                code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
            except Exception:
                traceback.print_exc()
                code = EXIT_FAILED
            if code != 0:
                self.end(code, graceful=False)

    def _start(self, argv: list[str], netns: int, sysctls: list[tuple[str, str]]) -> int:
        from rawstack.cli import _cached_parser
        from rawstack.cli import serve_all as command

        try:
            if not argv or argv[0] != "serve-all":
                raise RawstackError("shared peers run serve-all only")
            wanted = command.servers(_cached_parser("serve-all").parse_args(argv))
            ready: list[tuple[str, dict[str, Any]]] = []
            self.server.enter(netns)
            try:
                for key, value in sysctls:
                    _write_sysctl(key, value)
                for srv in wanted:
                    fields = srv.start(self.view)
                    self.servers.append(srv)
                    ready.append((srv.name, fields))
            finally:
                self.server.leave()
        finally:
            os.close(netns)
        announce_all(ready)
        return 0

    def signal(self, sig: int) -> None:
        """What serve-all would do on ``sig`` (see the module docstring)."""
        if sig in NO_EFFECT:
            return
        with self:
            self.end(0 if sig in GRACEFUL else -sig, graceful=sig in GRACEFUL)

    def crashed(self, exc: Exception) -> None:
        """A callback of this tenant raised (called inside :meth:`scope`)."""
        traceback.print_exception(exc)
        self.end(EXIT_FAILED, graceful=False)

    def end(self, code: int, *, graceful: bool) -> None:
        """Close the servers (logging their stats if ``graceful``), report ``code``. Once."""
        if self.code is not None:
            return
        self.code = code
        # The last close of a packet socket waits for an RCU grace period (5-30 ms): a
        # copy of each goes to the closer's threads, so the servers' own closes are not the
        # last and this loop, serving every other node, does not wait. Only those: a port
        # must be free again when the call returns, for a tenant started next.
        held = [os.dup(fd) for fd in self.view.fds() if socket_family(fd) == socket.AF_PACKET]
        for srv in reversed(self.servers):
            try:
                srv.close()
            except Exception:
                traceback.print_exc()
            if graceful:
                log(srv.name, "stopped " + json.dumps(srv.stats(), sort_keys=True))
        self.view.close()
        self.server.closer.put(held)
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
            sys.stderr.flush()
        if self._ready is not None:
            self._ready.close_pipe()
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.server.ended(self)


def _write_sysctl(key: str, value: str) -> None:
    try:
        nsutil.write_sysctl(key, value)
    except OSError as exc:
        raise RawstackError(f"sysctl {key}={value}: {exc.strerror}") from None


class SharedServer:
    """The shared process's loop: requests from the host, every tenant's servers."""

    def __init__(self, sock: socket.socket, libc: ctypes.CDLL) -> None:
        self.sock = sock
        self.libc = libc
        self.loop = Loop()
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self.tenants: dict[int, Tenant] = {}
        self.closer = Closer()
        # Every tenant holds its logs and its servers' sockets here: a hundred pairs are
        # past the usual soft limit of 1,024 descriptors. The loop is epoll: no FD_SETSIZE.
        raise_nofile_limit()

    def serve(self) -> None:
        self.loop.add_reader(self.sock, self._on_request)
        self.loop.run()

    def _on_request(self) -> None:
        msg, fds = recv_msg(self.sock)
        if msg is None:  # the host is gone: so is every tenant
            os._exit(0)
        op = msg.get("op")
        if op == "spawn" and len(fds) >= 3:
            self._spawn(msg, fds)  # the tenant owns the fds now
            return
        for fd in fds:
            os.close(fd)
        if op == "signal":
            tenant = self.tenants.get(int(msg["vid"]))
            if tenant is not None:
                tenant.signal(int(msg["sig"]))

    def _spawn(self, msg: dict[str, Any], fds: list[int]) -> None:
        vid = int(msg["id"])
        tenant = Tenant(self, vid, fds, int(msg.get("ready_lines", 0)))
        self.tenants[vid] = tenant
        sysctls = [(str(k), str(v)) for k, v in msg.get("sysctls", [])]
        tenant.start([str(a) for a in msg["args"]], fds[0], sysctls)

    def enter(self, netns: int) -> None:
        if self.libc.setns(netns, nsutil.CLONE_NEWNET) != 0:
            raise RawstackError(f"setns: {os.strerror(ctypes.get_errno())}")

    def leave(self) -> None:
        if self.libc.setns(self.home, nsutil.CLONE_NEWNET) != 0:
            # Every later tenant would open its sockets in the wrong namespace: end them all.
            os.write(2, f"shared peers: setns back: {os.strerror(ctypes.get_errno())}\n".encode())
            os._exit(EXIT_FAILED)

    def ended(self, tenant: Tenant) -> None:
        self.tenants.pop(tenant.vid, None)
        send_msg(self.sock, {"op": "exit", "vid": tenant.vid, "code": tenant.code})
