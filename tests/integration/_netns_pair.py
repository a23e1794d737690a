"""Two private network namespaces joined by one veth pair, for task D's tests.

A stop-gap until the harness lands. Each namespace is held open by an ``unshare -n``
process reading its stdin; nothing is named under /run/netns, so closing stdin (or this
process dying, which closes it too) destroys the namespace and the veth in it. Commands
run inside with ``nsenter --net=/proc/PID/ns/net``, so the root namespace is never touched.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

PYTHON = sys.executable
# Runs inside the new namespace; exits (and frees it) when our end of its stdin closes.
HOLD = "ip link set lo up && echo ready && exec cat >/dev/null"
SUBNET = "10.77.0"


def require_root() -> None:
    """Skip (never fail) when this environment cannot build namespaces."""
    if os.geteuid() != 0:
        pytest.skip("needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces)")
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs the {tool} command (util-linux / iproute2)")


@dataclass
class Netns:
    """One private network namespace and the processes started in it."""

    holder: subprocess.Popen[str]
    procs: list[subprocess.Popen[str]] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.holder.pid

    def argv(self, args: Sequence[str]) -> list[str]:
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *args]

    def run(
        self, args: Sequence[str], check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(args), capture_output=True, text=True, check=check, timeout=timeout
        )

    def popen(self, args: Sequence[str], **kw: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(args),
            stdout=kw.pop("stdout", subprocess.PIPE),
            stderr=kw.pop("stderr", subprocess.PIPE),
            text=True,
            **kw,
        )
        self.procs.append(proc)
        return proc

    def rawstack(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return self.run([PYTHON, "-m", "rawstack", *args], check=False, timeout=timeout)

    def sysctl(self, name: str, value: str) -> None:
        # /proc/sys/net/* resolves to the netns of the process that opens it: this one.
        self.run(["sysctl", "-q", "-w", f"{name}={value}"])

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate(timeout=10)
        self.procs.clear()
        if self.holder.poll() is None:
            assert self.holder.stdin is not None
            self.holder.stdin.close()
            try:
                self.holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait()


def _new_netns() -> Netns:
    holder = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", HOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    line = holder.stdout.readline()
    if line.strip() != "ready":
        holder.kill()
        _, err = holder.communicate()
        raise RuntimeError(f"could not create a network namespace: {err.strip()}")
    return Netns(holder)


@dataclass
class NetnsPair:
    """Namespace ``a`` (iface ``rsd-a``, 10.77.0.1) <-veth-> namespace ``b`` (``rsd-b``, .2)."""

    a: Netns
    b: Netns
    iface_a: str = "rsd-a"
    iface_b: str = "rsd-b"
    addr_a: str = f"{SUBNET}.1"
    addr_b: str = f"{SUBNET}.2"
    absent: str = f"{SUBNET}.99"  # on the subnet, nobody answers ARP: a silent host
    mac_a: str = ""
    mac_b: str = ""


@contextmanager
def netns_pair() -> Iterator[NetnsPair]:
    """Build the pair, yield it, and tear everything down even on failure."""
    require_root()
    made: list[Netns] = []
    try:
        a = _new_netns()
        made.append(a)
        b = _new_netns()
        made.append(b)
        pair = NetnsPair(a, b)
        a.run(
            [
                "ip",
                "link",
                "add",
                pair.iface_a,
                "type",
                "veth",
                "peer",
                "name",
                pair.iface_b,
                "netns",
                str(b.pid),
            ]
        )
        for ns, iface, addr in ((a, pair.iface_a, pair.addr_a), (b, pair.iface_b, pair.addr_b)):
            ns.run(["ip", "addr", "add", f"{addr}/24", "dev", iface])
            ns.run(["ip", "link", "set", iface, "up"])
        pair.mac_a = _mac(a, pair.iface_a)
        pair.mac_b = _mac(b, pair.iface_b)
        yield pair
    finally:
        for ns in made:
            ns.close()


def _mac(ns: Netns, iface: str) -> str:
    out = ns.run(["ip", "-j", "link", "show", "dev", iface]).stdout
    mac: str = json.loads(out)[0]["address"]
    return mac


# Bytes read past the ready lines, per process, handed back by stop().
_LEFTOVER: dict[int, bytes] = {}


def wait_ready(
    proc: subprocess.Popen[str], count: int = 1, timeout: float = 20
) -> list[dict[str, Any]]:
    """Read ``count`` JSON ready lines from a server's stdout (its real readiness signal).

    Reads the pipe's fd directly: a buffered readline could hide a line from select().
    """
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = _LEFTOVER.pop(proc.pid, b"")
    ready: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while len(ready) < count:
            if b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                event = json.loads(line)
                if event.get("event") == "ready":
                    ready.append(event)
                continue
            left = deadline - time.monotonic()
            readable, _, _ = select.select([fd], [], [], max(0.0, left))
            if not readable:
                raise AssertionError(f"server not ready after {timeout}s: {ready}")
            chunk = os.read(fd, 65536)
            if not chunk:
                proc.wait(timeout=10)
                err = proc.stderr.read() if proc.stderr is not None else ""
                raise AssertionError(f"server exited with {proc.returncode} before ready: {err}")
            buf += chunk
    finally:
        _LEFTOVER[proc.pid] = buf
    return ready


def stop(proc: subprocess.Popen[str], timeout: float = 10) -> tuple[int, str, str]:
    """SIGTERM a server and collect ``(exit status, stdout after the ready lines, stderr)``."""
    proc.terminate()
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, _LEFTOVER.pop(proc.pid, b"").decode() + out, err
