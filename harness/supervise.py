"""Running ``rawstack serve-all`` in a node: start, wait for ready + a real probe, stop.

Theory of operation: the peer process starts inside the node's namespace (own process
group, SIGKILL if its parent thread dies, so every process is spawned from the caller's
thread). Ready means two things, both checked without sleeping: one JSON ready line per
expected peer on stdout, then one successful probe per peer from another node
(:mod:`harness.probes`). :func:`start_peers` spawns every process first, then gives each
one a thread that waits for its lines and probes it, so the processes boot in parallel and
one side is probed while another still boots. Probes are retried until the deadline
because the first one may race the peer's socket setup on the far side (ARP, listen
backlog); each retry waits on a socket, never on a timer. After readiness stdout is copied
to ``<run dir>/<ns>.out`` by a thread, stderr goes straight to ``<ns>.err``; both are
attached to a failing test's report by the plugin.

Start-up cost: a peer process is a fresh interpreter, so what it imports and compiles is
paid on every spawn (see :func:`child_env` for the bytecode cache).

What differs per OS comes from the backend (:func:`harness.backends.select_backend`): on
Linux the kernel's echo is turned off and serve-all's ICMP responder answers; on FreeBSD
the kernel consumes echo requests before raw sockets see them, so serve-all runs without
its responder, no ICMP ready line is awaited, and the ICMP probe is answered by the kernel
(``PeerProcess.servers`` says who answers each peer). Probes go through the backend too:
FreeBSD runs them inside the probing jail, which has no setns.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness import probes
from harness.backends import RAWSTACK, Backend, NodeHandle, select_backend
from harness.runstate import HarnessError

ALL_PEERS = ("http", "udp", "chao", "icmp")
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 3.0
# A probe in flight when the deadline passes still runs to its own timeout (2 s at most).
PROBE_GRACE = 5.0


class PeerDied(HarnessError):
    """A supervised peer process exited; the message carries its status and log tail."""


def serve_all_argv(ifname: str, served: Sequence[str] | None = None) -> list[str]:
    """``served`` None runs all four peers (the harness waits on and probes the chosen ones)."""
    argv = [sys.executable, "-m", "rawstack", "serve-all", "--iface", ifname]
    return argv if served is None else [*argv, "--peers", ",".join(served)]


def child_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a peer process: unbuffered stdout, and bytecode it can reuse.

    With ``PYTHONDONTWRITEBYTECODE`` set (and no ``PYTHONPYCACHEPREFIX``), nothing is ever
    cached next to the sources, so every spawn compiled rawstack from source again (~40 ms
    of a ~100 ms start on a 2-core VM). The peers then cache bytecode in ``cache_dir``
    instead: the source tree stays untouched and the directory goes with the run's (or the
    benchmark's) log directory. The price is paid once per run: the prefix hides the
    standard library's own caches, so the first spawn compiles all it imports (~0.3 s).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if env.get("PYTHONDONTWRITEBYTECODE") and not env.get("PYTHONPYCACHEPREFIX"):
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = str(cache_dir)
    return env


class PeerProcess:
    """One ``serve-all`` process in one node."""

    def __init__(
        self,
        node: NodeHandle,
        ifname: str,
        peers: Sequence[str],
        log_dir: Path,
        backend: Backend | None = None,
    ) -> None:
        self.node = node
        self.ifname = ifname
        self.peers = tuple(peers)
        self.backend = backend or select_backend()
        self.servers = self.backend.servers(self.peers)  # peer -> "rawstack" | "kernel"
        self.awaited = tuple(p for p in self.peers if self.servers[p] == RAWSTACK)
        self.log_dir = log_dir
        self.out_path = log_dir / f"{node.netns}.out"
        self.err_path = log_dir / f"{node.netns}.err"
        self.ready: dict[str, dict[str, Any]] = {}
        self.rtts: dict[str, float] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._copier: threading.Thread | None = None
        self.started_at = 0.0
        self.ready_after = 0.0

    def start(self) -> None:
        if self.backend.icmp_responder == RAWSTACK:
            # Kernel echo off so our responder's replies are the only ones (one reply per
            # ping); serve-all runs its responder even when icmp is not a chosen peer.
            self.node.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
        self.started_at = time.monotonic()
        with open(self.err_path, "ab") as err:
            self.proc = self.node.popen(
                serve_all_argv(self.ifname, self.backend.serve_all_peers()),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=child_env(self.log_dir / "pycache"),
            )

    def wait_ready_lines(self, deadline: float) -> None:
        """Read stdout until every peer serve-all answers for printed its ready line."""
        assert self.proc is not None
        assert self.proc.stdout is not None
        out = self.proc.stdout
        buf = b""
        with open(self.out_path, "ab") as copy:
            while set(self.awaited) - set(self.ready):
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = ", ".join(sorted(set(self.awaited) - set(self.ready)))
                    raise PeerDied(f"{self.describe()}: no ready line from {missing} in time")
                readable, _, _ = select.select([out], [], [], left)
                if not readable:
                    continue
                chunk = os.read(out.fileno(), 65536)
                if not chunk:
                    self.proc.wait()
                    raise PeerDied(self.death_message())
                copy.write(chunk)
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with contextlib.suppress(ValueError):
                        msg = json.loads(line)
                        if isinstance(msg, dict) and msg.get("event") == "ready":
                            self.ready[str(msg.get("peer"))] = msg
        self._copier = threading.Thread(target=self._copy_stdout, daemon=True)
        self._copier.start()

    def _copy_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        with open(self.out_path, "ab") as copy:
            for chunk in iter(lambda: os.read(self.proc.stdout.fileno(), 65536), b""):  # type: ignore[union-attr]
                copy.write(chunk)
                copy.flush()

    def probe_from(self, other: NodeHandle, other_ifname: str, deadline: float) -> None:
        """Probe every peer from ``other`` until each answered once (or the deadline).

        A peer the kernel answers (``servers``) is probed too: the fixture promises it works.
        """
        for peer in self.peers:
            last = "not tried"
            while peer not in self.rtts:
                self.check_alive()
                if time.monotonic() > deadline:
                    raise PeerDied(f"{self.describe()}: {peer} probe never succeeded ({last})")
                try:
                    self.rtts[peer] = self.backend.probe_peer(
                        peer,
                        src=other,
                        src_ifname=other_ifname,
                        dst=self.node,
                        dst_ifname=self.ifname,
                        ready=self.ready,
                    )
                except (probes.ProbeFailed, OSError) as exc:
                    last = str(exc)
        self.ready_after = time.monotonic() - self.started_at

    def describe(self) -> str:
        return f"serve-all on node {self.node.name} ({self.ifname})"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise PeerDied(self.death_message())

    def death_message(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        if code is not None and code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:  # a real-time signal has no name
                name = "?"
            how = f"was killed by signal {-code} ({name})"
        else:
            how = f"exited with status {code}"
        return f"{self.describe()} {how}; stderr tail:\n{self.log_tail()}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.err_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def logs(self) -> str:
        parts = []
        for path in (self.out_path, self.err_path):
            try:
                parts.append(
                    f"--- {path.name}\n{path.read_text(encoding='utf-8', errors='replace')}"
                )
            except FileNotFoundError:
                continue
        return "\n".join(parts)

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM, SIGKILL after ``timeout``; return the exit status."""
        if self.proc is None:
            return None
        self.node.stop_processes(timeout)
        if self._copier is not None:
            self._copier.join(timeout=1.0)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


def start_peers(
    pairs: Sequence[tuple[NodeHandle, str, NodeHandle, str]],
    peers: Sequence[str] = ALL_PEERS,
    log_dir: Path | None = None,
    timeout: float = READY_TIMEOUT,
    backend: Backend | None = None,
) -> list[PeerProcess]:
    """Start serve-all on each ``(node, ifname, prober, prober_ifname)``; wait until ready.

    Every process is spawned before any is awaited; then each is awaited and probed in its
    own thread (see the module docstring). The first failure stops them all and is raised.
    """
    started: list[PeerProcess] = []
    deadline = time.monotonic() + timeout
    try:
        for node, ifname, _, _ in pairs:
            pp = PeerProcess(node, ifname, peers, log_dir or node.net.run.dir, backend)
            started.append(pp)
            pp.start()
        _await_all(
            [(pp, prober, prober_if) for pp, (_, _, prober, prober_if) in zip(started, pairs)],
            deadline,
        )
    except BaseException:
        for pp in started:
            pp.stop()
        raise
    return started


def _await_all(jobs: Sequence[tuple[PeerProcess, NodeHandle, str]], deadline: float) -> None:
    """Ready lines, then probes, for every process at once; raise the first failure."""
    done: queue.SimpleQueue[tuple[PeerProcess, BaseException | None]] = queue.SimpleQueue()

    def await_one(pp: PeerProcess, prober: NodeHandle, prober_if: str) -> None:
        try:
            pp.wait_ready_lines(deadline)
            pp.probe_from(prober, prober_if, deadline)
        except BaseException as exc:
            done.put((pp, exc))
        else:
            done.put((pp, None))

    threads = [
        threading.Thread(target=await_one, args=job, name=f"ready-{job[0].node.name}", daemon=True)
        for job in jobs
    ]
    for t in threads:
        t.start()
    pending = {id(pp): pp for pp, _, _ in jobs}
    try:
        while pending:
            try:
                pp, exc = done.get(timeout=max(deadline - time.monotonic(), 0.0) + PROBE_GRACE)
            except queue.Empty:
                names = ", ".join(p.describe() for p in pending.values())
                raise PeerDied(f"not ready in time: {names}") from None
            del pending[id(pp)]
            if exc is not None:
                raise exc
    except BaseException:
        # Kill before anyone closes a pipe: a thread reading a peer's stdout then sees EOF
        # and one probing it fails its liveness check, so every thread ends promptly.
        for pp, _, _ in jobs:
            pp.node.stop_processes(STOP_TIMEOUT)
        for t in threads:
            t.join(timeout=PROBE_GRACE)
        raise
