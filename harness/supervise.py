"""Running ``rawstack serve-all`` in a node: start, wait for ready + a real probe, stop.

Theory of operation: the peer process starts inside the node's namespace (own process
group, SIGKILL if its parent thread dies, so every process is spawned from the caller's
thread). Ready means two things, both checked without sleeping: serve-all's JSON ready
lines on stdout (one per peer it runs, read by :func:`read_ready`, which any test can use on
its own servers), then one successful probe per expected peer from another node
(:mod:`rawstack_harness.probes`). :func:`start_peers` spawns every process first, then waits
for each in its own task of a :class:`Nursery` (the last in the calling thread), so the
processes boot in parallel and one
side is probed while another still boots; the first failure cancels the others (their
processes are stopped) and nothing outlives the call. Probes are retried until the deadline
because the first one may race the peer's socket setup on the far side (ARP, listen
backlog); each retry waits on a socket, never on a timer. After readiness stdout is copied
to ``<run dir>/<ns>.out`` by a thread, stderr goes straight to ``<ns>.err``; both are
attached to a failing test's report by the plugin.

Start-up cost: where the node can fork one (:class:`Forking`: the Linux backend's warm
peer host, :mod:`rawstack_harness.backends.linux.forked`), a peer is forked from an
interpreter that has imported rawstack already, in ~5 ms instead of ~100; it writes its own
``.out``/``.err`` and hands the ready lines over a pipe it then closes, so no copier thread
runs. Elsewhere (FreeBSD, or ``fork=False``) it is a fresh interpreter: ``ci/setup.sh``
compiles rawstack's bytecode once so that a spawn never compiles sources, even where
``PYTHONDONTWRITEBYTECODE`` is set.

What differs per OS comes from the backend's capabilities
(:class:`rawstack_harness.backends.base.Capabilities`): where rawstack answers ICMP the kernel's
echo is turned off and serve-all's responder answers; where the kernel is the ICMP peer
serve-all runs without its responder, no ICMP ready line is awaited, and the ICMP probe is
answered by the kernel (``PeerProcess.servers`` says who answers each peer). Probes go
through the backend too: FreeBSD runs them inside the probing jail, which has no setns.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, runtime_checkable

from rawstack_harness.backends import RAWSTACK, Backend, ReadyEvent, select_backend
from rawstack_harness.backends.base import (
    NodeProcess,
    ProbeNode,
    ProcFile,
    readable,
    signal_group,
)
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology.spec import Topology

from rawstack.peers.registry import ALL_PEERS, ready_event, ready_port

__all__ = [
    "ALL_PEERS",
    "Forking",
    "Nursery",
    "PeerDied",
    "PeerProcess",
    "ReadyFailed",
    "ReadyTimeout",
    "SupervisedNode",
    "read_lines",
    "read_ready",
    "serve_all_args",
    "serve_all_argv",
    "start_peers",
]

ECHO_SYSCTLS = ("net.ipv4.icmp_echo_ignore_all", "net.ipv6.icmp.echo_ignore_all")
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 3.0
TAIL_LINES = 20
# A probe in flight when the deadline passes still runs to its own timeout (2 s at most).
PROBE_GRACE = 5.0


class PeerDied(HarnessError):
    """A supervised peer process exited; the message carries its status and log tail."""


class ReadyFailed(PeerDied):
    """A process ended, or printed something else, before its ready lines.

    ``lines`` are the whole lines read until then; ``returncode`` is None while it runs.
    """

    def __init__(self, message: str, lines: list[bytes], returncode: int | None) -> None:
        super().__init__(message)
        self.lines = lines
        self.returncode = returncode

    @property
    def ready(self) -> list[dict[str, Any]]:
        """The ready events among :attr:`lines`."""
        return [dict(m) for m in map(ready_event, self.lines) if m is not None]


class ReadyTimeout(ReadyFailed):
    """The deadline passed before the process printed all its lines."""


def exit_status(code: int | None) -> str:
    """``exited with status N`` or ``was killed by signal N (NAME)``."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:  # a real-time signal has no name
            name = "?"
        return f"was killed by signal {-code} ({name})"
    return f"exited with status {code}"


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of ``text``, or ``(empty)``."""
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


def read_lines(
    proc: subprocess.Popen[Any],
    count: int,
    timeout: float,
    *,
    stream: IO[Any] | None = None,
    name: str | None = None,
    err_path: Path | None = None,
    copy: IO[bytes] | None = None,
    greedy: bool = False,
) -> list[bytes]:
    """``count`` lines from ``stream`` (default ``proc.stdout``) within ``timeout`` seconds.

    Read byte by byte from the fd, so nothing past the last line is consumed: a later
    ``communicate()`` (or stdout copier) still sees the rest; ``greedy`` reads in chunks
    instead, for a pipe nobody reads after (a forked peer's ready pipe) and returns only the
    first ``count`` lines. ``copy`` gets every byte read.
    EOF raises :class:`ReadyFailed` naming ``name`` (default: the argv), the exit status and
    the stderr tail (from ``err_path`` if stderr goes to a file, else from the pipe); the
    deadline raises :class:`ReadyTimeout`.
    """
    pipe = proc.stdout if stream is None else stream
    assert pipe is not None, "read_lines needs a pipe"
    who = name or _argv_text(proc)
    fd, buf = pipe.fileno(), b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < count:
        left = deadline - time.monotonic()
        if left <= 0 or not readable(fd, left):
            lines = buf.splitlines(keepends=True)
            whole = [line.rstrip(b"\n") for line in lines if line.endswith(b"\n")]
            raise ReadyTimeout(
                f"{who}: {len(whole)} of {count} lines in {timeout:g}s; read {buf[-300:]!r}",
                whole,
                None,
            )
        byte = os.read(fd, 65536 if greedy else 1)
        if not byte:
            code = _reap(proc)
            how = exit_status(code) if code is not None else "closed its output"
            err = _stderr_tail(proc, pipe, buf, err_path)
            raise ReadyFailed(f"{who} {how}; stderr tail:\n{err}", buf.splitlines(), code)
        if copy is not None:
            copy.write(byte)
        buf += byte
    return buf.splitlines()[:count]


def read_ready(
    proc: subprocess.Popen[Any], count: int, timeout: float, **kwargs: Any
) -> list[dict[str, Any]]:
    """``count`` JSON ready lines (``{"event": "ready", ...}``) from ``proc``'s stdout.

    Keyword arguments and failures as :func:`read_lines`; a line that is not a ready event
    raises :class:`ReadyFailed` too (``.ready`` has the ones before it).
    """
    lines = read_lines(proc, count, timeout, **kwargs)
    events: list[dict[str, Any]] = []
    for n, line in enumerate(lines):
        event = ready_event(line)
        if event is None:
            who = kwargs.get("name") or _argv_text(proc)
            raise ReadyFailed(f"{who}: not a ready line: {line[:200]!r}", lines[:n], None)
        events.append(event)
    return events


def _argv_text(proc: subprocess.Popen[Any]) -> str:
    args = proc.args
    text = " ".join(map(str, args)) if isinstance(args, (list, tuple)) else str(args)
    text = " ".join(text.split())  # a -c script on one line
    return text if len(text) <= 100 else text[:97] + "..."


def _reap(proc: subprocess.Popen[Any]) -> int | None:
    """The exit status after stdout's EOF; None if the process only closed the pipe."""
    try:
        return proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        return None


def _stderr_tail(
    proc: subprocess.Popen[Any], pipe: IO[Any], read: bytes, err_path: Path | None
) -> str:
    if err_path is not None:
        try:
            return tail(err_path.read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            return "(no log)"
    if proc.stderr is None:
        return "(stderr not captured)"
    if proc.stderr is pipe:
        return tail(read.decode("utf-8", "replace"))
    try:
        _, err = proc.communicate(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:  # a child of it still holds the pipe
        return "(stderr still open)"
    return tail(err.decode("utf-8", "replace") if isinstance(err, bytes) else err)


def serve_all_args(ifname: str, served: Sequence[str] | None = None) -> list[str]:
    """``serve-all``'s arguments; ``served`` None runs all four peers (the harness waits on
    and probes the chosen ones)."""
    args = ["serve-all", "--iface", ifname]
    return args if served is None else [*args, "--peers", ",".join(served)]


def serve_all_argv(ifname: str, served: Sequence[str] | None = None) -> list[str]:
    """``python -m rawstack serve-all ...`` (see :func:`serve_all_args`)."""
    return [sys.executable, "-m", "rawstack", *serve_all_args(ifname, served)]


@runtime_checkable
class Forking(Protocol):
    """A node that can fork ``rawstack ARGS`` from a warm host (the Linux backend's)."""

    def spawn_rawstack(
        self,
        args: Sequence[str],
        stdout_path: Path,
        stderr_path: Path,
        ready_lines: int = 0,
        sysctls: Sequence[tuple[str, str]] = (),
        *,
        shared: bool = False,
    ) -> subprocess.Popen[bytes]: ...


class SupervisedNode(ProbeNode, Protocol):
    """What supervision uses of the node a serve-all runs in (every backend's node has it)."""

    @property
    def netns(self) -> str: ...

    def sysctl(self, key: str, value: str | None = None) -> str: ...

    def popen(
        self,
        argv: Sequence[str],
        *,
        text: Literal[False] = ...,
        env: Mapping[str, str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.Popen[bytes]: ...

    def stop_process(self, proc: NodeProcess, timeout: float = STOP_TIMEOUT) -> int | None: ...


class Nursery:
    """Tasks in threads that end together: the first failure cancels the rest, and is raised.

    As a trio nursery: ``with Nursery(cancel) as n: n.start_soon(fn, name)``; leaving the
    block waits for every task. When one raises (or ``deadline`` + ``grace`` passes),
    ``cancel()`` is called once, at once, which must make every task return promptly
    (supervision stops the processes the tasks read from and probe); the block joins them
    all and raises that first failure. No task thread outlives the block unless it ignores
    ``cancel`` past ``grace``. :meth:`run_here` runs one more task in the calling thread (a
    thread's start costs ~0.2 ms here, more on a busy machine: the last task needs none).
    """

    def __init__(
        self,
        cancel: Callable[[], None],
        deadline: float | None = None,
        grace: float = PROBE_GRACE,
        on_timeout: Callable[[], BaseException] | None = None,
    ) -> None:
        self._cancel = cancel
        self._deadline = deadline
        self._grace = grace
        self._on_timeout = on_timeout or (lambda: PeerDied("tasks not done in time"))
        self._threads: list[threading.Thread] = []
        self._done = threading.Condition()
        self._failures: list[BaseException] = []
        self._running = 0
        self._cancelled = False

    def _cancel_once(self) -> None:
        with self._done:
            if self._cancelled:
                return
            self._cancelled = True
        self._cancel()

    def _failed(self, exc: BaseException) -> None:
        with self._done:
            self._failures.append(exc)
        self._cancel_once()  # now: a task run_here blocks in must not wait for the block's end

    def start_soon(self, fn: Callable[[], None], name: str) -> None:
        def task() -> None:
            try:
                fn()
            except BaseException as exc:
                self._failed(exc)
            finally:
                with self._done:
                    self._running -= 1
                    self._done.notify_all()

        thread = threading.Thread(target=task, name=name, daemon=True)
        with self._done:
            self._running += 1
        self._threads.append(thread)
        thread.start()

    def run_here(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` as one of the tasks, in the calling thread; returns when it ends.

        Its failure counts as a task's (the block cancels the others and raises the first).
        """
        try:
            fn()
        except BaseException as exc:
            self._failed(exc)

    def __enter__(self) -> Nursery:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        failure = exc
        if failure is None:
            try:
                failure = self._wait()
            except BaseException as interrupted:  # Ctrl-C while waiting: cancel all the same
                failure = interrupted
        if failure is None:
            return
        self._cancel_once()
        for thread in self._threads:
            thread.join(timeout=self._grace)
        if failure is not exc:
            raise failure

    def _wait(self) -> BaseException | None:
        """Until every task ended (None) or the first failure or the deadline (that error)."""
        with self._done:
            while self._running and not self._failures:
                left = None
                if self._deadline is not None:
                    left = self._deadline + self._grace - time.monotonic()
                    if left <= 0:
                        return self._on_timeout()
                self._done.wait(left)
            return self._failures[0] if self._failures else None


class PeerProcess:
    """One ``serve-all`` process in one node (a :class:`rawstack_harness.backends.Peer`)."""

    def __init__(
        self,
        node: SupervisedNode,
        ifname: str,
        peers: Sequence[str],
        log_dir: Path,
        backend: Backend | None = None,
        *,
        served: Sequence[str] | None = None,
        fork: bool = True,
        shared: bool = False,
    ) -> None:
        self.node = node
        self.fork = (fork or shared) and isinstance(node, Forking)
        self.shared = shared and self.fork
        self.ifname = ifname
        self.peers = tuple(peers)
        self.backend = backend or select_backend()
        caps = self.backend.capabilities
        self.servers = caps.servers(self.peers)  # peer -> "rawstack" | "kernel"
        self.awaited = tuple(p for p in self.peers if self.servers[p] == RAWSTACK)
        # What serve-all is told to run: a node's declared peers (those rawstack answers),
        # else None (all of them) unless the kernel answers one.
        self.served = caps.serve_all_peers()
        if served is not None:
            self.served = tuple(p for p in served if caps.servers([p])[p] == RAWSTACK)
        self.log_dir = log_dir
        self.out_path = log_dir / f"{node.netns}.out"
        self.err_path = log_dir / f"{node.netns}.err"
        self.ready: dict[str, ReadyEvent] = {}
        self.rtts: dict[str, float] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._copier: threading.Thread | None = None
        self.started_at = 0.0
        self.ready_after = 0.0

    @property
    def answers_icmp(self) -> bool:
        """Whether serve-all's responder (not the kernel) answers pings in this node."""
        caps = self.backend.capabilities
        return caps.icmp_responder == RAWSTACK and "icmp" in (self.served or ALL_PEERS)

    def start(self) -> None:
        # Kernel echo off exactly where our responder answers (one reply per ping); with icmp
        # not served, the kernel's echo stays the node's answer. It answers ICMPv6 too.
        echo_sysctls = [(key, "1") for key in ECHO_SYSCTLS] if self.answers_icmp else []
        self.started_at = time.monotonic()
        if self.fork:
            assert isinstance(self.node, Forking)
            self.proc = self.node.spawn_rawstack(
                serve_all_args(self.ifname, self.served),
                self.out_path,
                self.err_path,
                ready_lines=self._ready_count(),
                sysctls=echo_sysctls,
                shared=self.shared,
            )
            return
        for key, value in echo_sysctls:
            self.node.sysctl(key, value)
        with open(self.err_path, "ab") as err:
            self.proc = self.node.popen(
                serve_all_argv(self.ifname, self.served),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )

    def wait_ready_lines(self, deadline: float) -> None:
        """Read stdout until every peer serve-all answers for printed its ready line."""
        assert self.proc is not None
        # A forked peer writes its own .out; a spawned one's stdout is copied there.
        with contextlib.ExitStack() as stack:
            copy = None if self.fork else stack.enter_context(open(self.out_path, "ab"))
            try:
                events = read_ready(
                    self.proc,
                    self._ready_count(),
                    max(deadline - time.monotonic(), 0.0),
                    name=self.describe(),
                    err_path=self.err_path,
                    copy=copy,
                    greedy=self.fork,
                )
            except ReadyTimeout as exc:
                self._note_ready(exc.ready)
            else:
                self._note_ready(events)
        missing = ", ".join(p for p in self.awaited if p not in self.ready)
        if missing:
            raise PeerDied(f"{self.describe()}: no ready line from {missing} in time")
        if self.fork:  # the ready pipe is closed after the lines: nothing left to copy
            assert self.proc.stdout is not None
            self.proc.stdout.close()
        else:
            self._copier = threading.Thread(target=self._copy_stdout, daemon=True)
            self._copier.start()

    def _ready_count(self) -> int:
        # serve-all prints all its lines at once, once every peer serves (awaited ones too).
        return len(self.served or ALL_PEERS)

    def _note_ready(self, events: list[dict[str, Any]]) -> None:
        self.ready.update((str(e.get("peer")), e) for e in events)

    def _copy_stdout(self) -> None:
        assert self.proc is not None
        stdout = self.proc.stdout
        assert stdout is not None
        with open(self.out_path, "ab") as copy:
            for chunk in iter(lambda: os.read(stdout.fileno(), 65536), b""):
                copy.write(chunk)
                copy.flush()

    def port(self, peer: str) -> int:
        """The port ``peer`` announced in its ready line (HTTP and UDP)."""
        if peer not in self.ready:
            raise HarnessError(f"no ready line from the {peer} peer: cannot tell its port")
        return ready_port(self.ready[peer])

    def probe_from(self, other: ProbeNode, other_ifname: str, deadline: float) -> None:
        """Probe every peer from ``other`` until each answered once (or the deadline).

        All at once, through the backend (the Linux one drives every exchange from this
        thread on one poll set). A failed attempt is retried while this process lives and
        time is left. A peer the kernel answers (``servers``) is probed too: the fixture
        promises it works.
        """

        def on_failure(peer: str, exc: BaseException) -> None:
            self.check_alive()
            if time.monotonic() > deadline:
                raise PeerDied(f"{self.describe()}: {peer} probe never succeeded ({exc})")

        self.rtts.update(
            self.backend.probe_peers(
                [p for p in self.peers if p not in self.rtts],
                src=other,
                src_ifname=other_ifname,
                dst=self.node,
                dst_ifname=self.ifname,
                ready=self.ready,
                on_failure=on_failure,
            )
        )
        self.ready_after = time.monotonic() - self.started_at

    def describe(self) -> str:
        where = "shared serve-all" if self.shared else "serve-all"
        return f"{where} on node {self.node.name} ({self.ifname})"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def died(self) -> bool:
        """It was started and has exited (``stop`` was not called)."""
        return self.proc is not None and not self._stopped and self.proc.poll() is not None

    _stopped = False

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise PeerDied(self.death_message())

    def death_message(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        return f"{self.describe()} {exit_status(code)}; stderr tail:\n{self.log_tail()}"

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        try:
            return tail(self.err_path.read_text(encoding="utf-8", errors="replace"), lines)
        except FileNotFoundError:
            return "(no log)"

    def logs(self, since: Mapping[str, int] | None = None) -> str:
        parts = []
        for path in (self.out_path, self.err_path):
            start = (since or {}).get(str(path), 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    text = fh.read().decode("utf-8", "replace")
            except FileNotFoundError:
                continue
            note = f" (from byte {start}: this test's part)" if start else ""
            parts.append(f"--- {path.name}{note}\n{text}")
        return "\n".join(parts)

    def log_marks(self) -> dict[str, int]:
        marks = {}
        for path in (self.out_path, self.err_path):
            with contextlib.suppress(FileNotFoundError):
                marks[str(path)] = path.stat().st_size
        return marks

    def kill(self) -> None:
        """SIGKILL this process's group now: whatever waits on it or probes it returns."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                signal_group(self.proc, signal.SIGKILL)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM this serve-all (its group, nothing else), SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        self._stopped = True
        self.node.stop_process(self.proc, timeout)
        if self._copier is not None:
            self._copier.join(timeout=1.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def peer_plan(topology: Topology) -> list[tuple[str, str, str, str]]:
    """``(node, ifname, prober, prober_ifname)`` for each node that declares peers.

    The prober is the neighbour on the node's first link (else another member of its first
    segment); ``ifname`` is the node's own interface there, where serve-all runs CHAO and
    ICMP. Pure: the spec alone decides.
    """
    plan = []
    for node in topology.nodes:
        if not node.peers:
            continue
        found = next(
            (
                (mine.ifname, other.node, other.ifname)
                for link in topology.links
                for mine, other in ((link.a, link.b), (link.b, link.a))
                if mine.node == node.name and other.node != node.name
            ),
            None,
        ) or next(
            (
                (mine.ifname, other.node, other.ifname)
                for seg in topology.segments
                for mine in seg.members
                if mine.node == node.name
                for other in seg.members
                if other.node != node.name
            ),
            None,
        )
        if found is None:
            raise HarnessError(
                f"node {node.name} declares peers but has no neighbour to probe from"
            )
        plan.append((node.name, *found))
    return plan


def start_peers(
    pairs: Sequence[tuple[SupervisedNode, str, ProbeNode, str]],
    peers: Sequence[str] = ALL_PEERS,
    log_dir: Path | None = None,
    timeout: float = READY_TIMEOUT,
    backend: Backend | None = None,
    *,
    served: Mapping[str, Sequence[str]] | None = None,
    fork: bool = True,
    shared: bool = False,
) -> list[PeerProcess]:
    """Start serve-all on each ``(node, ifname, prober, prober_ifname)``; wait until ready.

    ``served`` (node name -> peers) limits what serve-all runs in a node; ``peers`` is what
    is awaited and probed (within what that node serves).

    Every process is started before any is awaited; then each is awaited and probed in its
    own task of one :class:`Nursery` (see the module docstring). The first failure stops
    them all and is raised. Logs go to ``log_dir`` (the run's directory, say). ``fork``
    False spawns fresh interpreters even where the node could fork them; ``shared`` serves
    every node from the run's one shared-peers process where the node can (see
    :mod:`rawstack_harness.backends.linux.sharedpeers`), a process per node elsewhere.
    """
    if log_dir is None:
        raise ValueError("start_peers needs log_dir (the run directory, for the peer logs)")
    backend = backend or select_backend()
    started: list[PeerProcess] = []
    deadline = time.monotonic() + timeout
    try:
        for node, ifname, _, _ in pairs:
            mine = None if served is None else served.get(node.name)
            awaited = peers if mine is None else [p for p in peers if p in mine]
            pp = PeerProcess(
                node, ifname, awaited, log_dir, backend, served=mine, fork=fork, shared=shared
            )
            started.append(pp)
            pp.start()

        def cancel() -> None:
            # Kill before anyone closes a pipe: a task reading a peer's stdout then sees
            # EOF and one probing it fails its liveness check, so every task ends promptly.
            for pp in started:
                pp.kill()

        def not_ready() -> PeerDied:
            names = ", ".join(pp.describe() for pp in started if not pp.ready_after)
            return PeerDied(f"not ready in time: {names}")

        with Nursery(cancel, deadline, PROBE_GRACE, not_ready) as nursery:
            tasks = [
                _await(pp, prober, prober_if, deadline)
                for pp, (_, _, prober, prober_if) in zip(started, pairs)
            ]
            for pp, task in zip(started[:-1], tasks):
                nursery.start_soon(task, f"ready-{pp.node.name}")
            if tasks:
                nursery.run_here(tasks[-1])
    except BaseException:
        for pp in started:
            pp.stop()
        raise
    return started


def _await(
    pp: PeerProcess, prober: ProbeNode, prober_if: str, deadline: float
) -> Callable[[], None]:
    def task() -> None:
        pp.wait_ready_lines(deadline)
        pp.probe_from(prober, prober_if, deadline)

    return task
