"""A stand-in node for supervision tests: ``popen`` runs a local stand-in for serve-all.

It implements :class:`rawstack_harness.supervise.SupervisedNode` (mypy checks that where the
tests pass it), so the tests need no ``type: ignore``; what it cannot do raises.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Mapping, Sequence
from typing import Literal

from rawstack_harness.backends.base import NodeProcess, ProcFile


class StandIn:
    """A node whose ``popen`` ignores ``argv`` and starts ``stand_in`` here instead."""

    def __init__(self, name: str, stand_in: list[str]) -> None:
        self.name = name
        self.netns = f"fake-{name}"
        self.stand_in = stand_in
        self.argv: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        return "127.0.0.1"

    def mac(self, ifname: str = "eth0") -> str:
        return "02:00:00:00:00:01"

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        raise OSError("a stand-in node opens no sockets")

    def run(
        self,
        argv: Sequence[str],
        *,
        text: Literal[True],
        capture_output: bool = False,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        raise OSError("a stand-in node runs no commands")

    def sysctl(self, key: str, value: str | None = None) -> str:
        return value or ""

    def popen(
        self,
        argv: Sequence[str],
        *,
        text: Literal[False] = False,
        env: Mapping[str, str] | None = None,
        stdin: ProcFile = None,
        stdout: ProcFile = None,
        stderr: ProcFile = None,
    ) -> subprocess.Popen[bytes]:
        self.argv = list(argv)
        proc = subprocess.Popen(self.stand_in, env=env, stdin=stdin, stdout=stdout, stderr=stderr)
        self.procs.append(proc)
        return proc

    def stop_process(self, proc: NodeProcess, timeout: float = 3.0) -> int | None:
        if proc.poll() is None:
            proc.kill()
        return proc.wait()
