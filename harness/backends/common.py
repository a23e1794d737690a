"""What both backends' nodes and runs share: spec addresses, process groups, run directories.

A node's configured addresses come from the spec (the backend put them there), so
:class:`SpecNode` answers ``ifnames``/``addresses``/``addr`` the same on every backend.
:class:`ProcessNode` is ``run``/``popen``/``stop_process`` for a backend that only says how
a command enters the node (:meth:`ProcessNode._enter`: ``jexec`` on FreeBSD, a setns
``preexec_fn`` on Linux) and what to record when a process starts and ends. Every process
started with ``popen`` leads its own process group, so stopping it stops what it forked.
:func:`locked_run_dir` makes a run directory that no cleaner can ever see unlocked.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from rawstack_harness.backends.base import NodeProcess, ProcFile, signal_group

if TYPE_CHECKING:
    from rawstack_harness.topology.spec import Endpoint, Topology

STOP_TIMEOUT = 3.0
RUN_TIMEOUT = 60.0  # node.run's default: a hung command must not hang the test forever


class SpecNode:
    """``ifnames``/``addresses``/``addr`` from the topology spec (``name``, ``_topology``)."""

    name: str

    def _topology(self) -> Topology:
        raise NotImplementedError

    def endpoints(self) -> list[Endpoint]:
        return self._topology().endpoints(self.name)

    def ifnames(self) -> list[str]:
        return [e.ifname for e in self.endpoints()]

    def addresses(self, ifname: str | None = None, version: int | None = None) -> list[str]:
        """Configured addresses (no prefix) of one interface or of all, optionally v4/v6."""
        return [
            str(i.ip)
            for ep in self.endpoints()
            if ifname is None or ep.ifname == ifname
            for i in ep.interfaces()
            if version is None or i.version == version
        ]

    @property
    def peers(self) -> dict[str, str]:
        """Who answers what here: each declared peer -> ``"rawstack"``; ICMP -> ``"kernel"``
        unless ``icmp`` is declared (and rawstack answers it on this backend)."""
        from rawstack_harness.backends.base import KERNEL, RAWSTACK

        declared = self._topology().node(self.name).peers
        out = {p: RAWSTACK for p in declared}
        if "icmp" not in out or not self.rawstack_icmp:
            out["icmp"] = KERNEL
        return out

    rawstack_icmp = True  # FreeBSD: the kernel consumes echo requests (see backends/base.py)

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        """The first address of that IP version (the one a test usually wants)."""
        found = self.addresses(ifname, version)
        if not found:
            raise LookupError(f"node {self.name} has no IPv{version} address")
        return found[0]


def stop_group(proc: NodeProcess, timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM ``proc``'s process group, SIGKILL after ``timeout``; return its status."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            signal_group(proc, signal.SIGKILL)
        proc.wait()
    # The group may hold grandchildren even after its leader exited.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        signal_group(proc, signal.SIGKILL)
    return proc.returncode


class ProcessNode:
    """``run``/``popen``/``stop_process(es)`` given how a command enters the node."""

    procs: list[NodeProcess]

    def _enter(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """The argv to execute and the ``preexec_fn`` (if any) that puts it in the node."""
        raise NotImplementedError

    def _started(self, proc: NodeProcess) -> None:
        """Record a process :meth:`popen` started (Linux: in the run's manifest)."""

    def _stopped(self, proc: NodeProcess) -> None:
        """Forget a process :meth:`stop_process` stopped."""

    @overload
    def run(
        self,
        argv: Sequence[str],
        *,
        text: Literal[True],
        capture_output: bool = ...,
        input: str | None = ...,
        timeout: float | None = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.CompletedProcess[str]: ...

    @overload
    def run(
        self,
        argv: Sequence[str],
        *,
        text: Literal[False] = ...,
        capture_output: bool = ...,
        input: bytes | None = ...,
        timeout: float | None = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.CompletedProcess[bytes]: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        text: bool = False,
        capture_output: bool = False,
        input: str | bytes | None = None,
        timeout: float | None = RUN_TIMEOUT,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: ProcFile = None,
        stdout: ProcFile = None,
        stderr: ProcFile = None,
    ) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside the node (status not checked; 60 s timeout by default)."""
        args, preexec = self._enter(argv)
        return subprocess.run(
            args,
            preexec_fn=preexec,
            check=False,
            text=text,
            capture_output=capture_output,
            input=input,
            timeout=timeout,
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )

    @overload
    def popen(
        self,
        argv: Sequence[str],
        *,
        text: Literal[True],
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.Popen[str]: ...

    @overload
    def popen(
        self,
        argv: Sequence[str],
        *,
        text: Literal[False] = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.Popen[bytes]: ...

    def popen(
        self,
        argv: Sequence[str],
        *,
        text: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        stdin: ProcFile = None,
        stdout: ProcFile = None,
        stderr: ProcFile = None,
    ) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside the node, leading its own process group, recorded."""
        args, preexec = self._enter(argv)
        proc: subprocess.Popen[Any] = subprocess.Popen(
            args,
            preexec_fn=preexec,  # noqa: PLW1509 - only setns + prctl
            start_new_session=True,
            text=text,
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )
        self.procs.append(proc)
        self._started(proc)
        return proc

    def stop_process(self, proc: NodeProcess, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM one process :meth:`popen` started (its group), SIGKILL after ``timeout``."""
        code = stop_group(proc, timeout)
        if proc in self.procs:
            self.procs.remove(proc)
            self._stopped(proc)
        return code

    def signal_processes(self, sig: int) -> None:
        """Send ``sig`` to the group of every process :meth:`popen` started that still runs."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    signal_group(proc, sig)

    def stop_processes(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every process :meth:`popen` started, SIGKILL what outlives ``timeout``."""
        self.signal_processes(signal.SIGTERM)
        for proc in list(self.procs):
            self.stop_process(proc, timeout)


def locked_run_dir(root: str) -> tuple[Path, int]:
    """A fresh ``<root>/<id>`` with its ``lock`` flock'ed: (directory, lock fd).

    Built under a dot-name (which cleaners and reapers skip) and renamed once locked, so no
    cleaner can ever see the directory with its lock free.
    """
    os.makedirs(root, mode=0o755, exist_ok=True)
    while True:
        run_id = secrets.token_hex(3)
        final = Path(root) / run_id
        tmp = Path(root) / f".new-{run_id}"
        if final.exists():
            continue
        try:
            tmp.mkdir(mode=0o755)
        except FileExistsError:
            continue
        lock = os.open(tmp / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            os.rename(tmp, final)
        except OSError:  # someone took the id meanwhile
            os.close(lock)
            with contextlib.suppress(OSError):
                os.unlink(tmp / "lock")
                tmp.rmdir()
            continue
        return final, lock
