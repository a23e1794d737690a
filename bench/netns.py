"""Namespaces and processes for the benchmarks, always recorded in a harness run.

Theory of operation: every benchmark works inside a
:class:`rawstack_harness.backends.linux.runs.LinuxRun`, whose
manifest names each namespace and process *before* it exists and whose reaper process removes
whatever the manifest still lists if this process dies (SIGKILL included). The baseline
topologies (the ``ip`` script, plain pyroute2) are recorded in the same manifest by path, so
they are as safe to interrupt as the harness's own. Servers are started in a node through
:meth:`LinuxNode.popen` (own process group, killed with the namespace).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rawstack_harness.backends.linux.nodes import LinuxNetwork, LinuxNode, build
from rawstack_harness.backends.linux.runs import NETNS_DIR, LinuxRun
from rawstack_harness.clients import rawstack_argv
from rawstack_harness.supervise import ReadyFailed, ReadyTimeout, read_ready
from rawstack_harness.topology import pair

A_ADDR, B_ADDR = "10.0.0.1", "10.0.0.2"  # rawstack_harness.topology.pair(); the baselines copy it

# The same topology as rawstack_harness.topology.pair(), the kernel selftests' way: one `ip`
# per step.
IP_SETUP = """set -e
ip netns add {a}
ip netns add {b}
ip -n {a} link set lo up
ip -n {b} link set lo up
ip -n {a} link add eth0 type veth peer name eth0 netns {b}
ip -n {a} addr add 10.0.0.1/24 dev eth0
ip -n {a} addr add fd00::1/64 dev eth0 nodad
ip -n {b} addr add 10.0.0.2/24 dev eth0
ip -n {b} addr add fd00::2/64 dev eth0 nodad
ip -n {a} link set eth0 up
ip -n {b} link set eth0 up
"""
IP_TEARDOWN = "ip netns del {a}; ip netns del {b}"


class BenchError(Exception):
    """A benchmark could not measure (a server died, a tool failed); the report says why."""


@contextlib.contextmanager
def harness_pair(run: LinuxRun, name: str = "bench") -> Iterator[LinuxNetwork]:
    """``rawstack_harness.topology.pair()`` built by the harness backend, destroyed on exit."""
    net = build(pair(name), run)
    try:
        yield net
    finally:
        net.destroy()


def _names(run: LinuxRun) -> tuple[str, str]:
    prefix = run.next_prefix()
    return f"{prefix}-a", f"{prefix}-b"


def _record(run: LinuxRun, names: Sequence[str]) -> None:
    for name in names:
        run.manifest.add("netns", os.path.join(NETNS_DIR, name))


def _forget(run: LinuxRun, names: Sequence[str]) -> None:
    for name in names:
        run.manifest.remove("netns", os.path.join(NETNS_DIR, name))


def ip_script_pair(run: LinuxRun) -> tuple[float, float]:
    """Build and remove the pair with ``sh -c`` + ``ip``; return (setup, teardown) seconds."""
    a, b = _names(run)
    _record(run, (a, b))
    try:
        t0 = time.perf_counter()
        done = subprocess.run(
            ["sh", "-c", IP_SETUP.format(a=a, b=b)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        t1 = time.perf_counter()
        if done.returncode != 0:
            raise BenchError(f"ip script failed: {done.stderr.strip()[-200:]}")
        subprocess.run(
            ["sh", "-c", IP_TEARDOWN.format(a=a, b=b)],
            capture_output=True,
            timeout=30,
            check=True,
        )
        t2 = time.perf_counter()
    finally:
        for name in (a, b):
            if os.path.exists(os.path.join(NETNS_DIR, name)):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        _forget(run, (a, b))
    return t1 - t0, t2 - t1


def pyroute2_pair(run: LinuxRun) -> tuple[float, float]:
    """Build and remove the pair with plain pyroute2 calls; return (setup, teardown) seconds."""
    from pyroute2 import IPRoute, netns

    a, b = _names(run)
    _record(run, (a, b))
    handles: list[Any] = []
    try:
        t0 = time.perf_counter()
        netns.create(a)
        netns.create(b)
        ia, ib = IPRoute(netns=a), IPRoute(netns=b)
        handles += [ia, ib]
        ia.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": b})
        for ipr, v4, v6 in ((ia, A_ADDR, "fd00::1"), (ib, B_ADDR, "fd00::2")):
            ipr.link("set", index=1, state="up")
            idx = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=idx, address=v4, prefixlen=24)
            ipr.addr("add", index=idx, address=v6, prefixlen=64)
            ipr.link("set", index=idx, state="up")
        t1 = time.perf_counter()
        for ipr in handles:
            ipr.close()
        handles.clear()
        netns.remove(a)
        netns.remove(b)
        t2 = time.perf_counter()
    finally:
        for ipr in handles:
            with contextlib.suppress(Exception):
                ipr.close()
        for name in (a, b):
            if os.path.exists(os.path.join(NETNS_DIR, name)):
                with contextlib.suppress(OSError):
                    netns.remove(name)
        _forget(run, (a, b))
    return t1 - t0, t2 - t1


def unshare_floor() -> float:
    """Seconds for one ``unshare -n true``: create a namespace, exit, let the kernel drop it."""
    t0 = time.perf_counter()
    subprocess.run(["unshare", "-n", "true"], check=True, timeout=30)
    return time.perf_counter() - t0


def missing_command(*words: str) -> str | None:
    """None if ``rawstack WORDS --help`` works, else why not (the command not built yet)."""
    done = subprocess.run(
        [*rawstack_argv(*words), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode == 0:
        return None
    return f"`rawstack {' '.join(words)}` is not available on this checkout"


def start_ready(
    node: LinuxNode, argv: Sequence[str], peers: Sequence[str], log: Path, timeout: float = 20.0
) -> tuple[subprocess.Popen[bytes], dict[str, dict[str, Any]]]:
    """Start a rawstack server in ``node``; return once each of ``peers`` printed its ready line."""
    with open(log, "ab") as err:
        proc = node.popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    what = " ".join(argv[3:])
    try:
        events = read_ready(proc, len(peers), timeout, name=what, err_path=log)
    except ReadyTimeout:
        raise BenchError(f"{what} printed no ready line in {timeout:.0f} s") from None
    except ReadyFailed:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        raise BenchError(f"{what} exited: {' / '.join(tail) or 'no stderr'}") from None
    ready = {str(e.get("peer")): e for e in events}
    missing = [p for p in peers if p not in ready]
    if missing:
        raise BenchError(f"{what}: no ready line from {', '.join(missing)}")
    return proc, ready


def wait_tcp(
    node: LinuxNode, host: str, port: int, proc: subprocess.Popen[Any], timeout: float
) -> None:
    """Connect from ``node`` until a server accepts (nginx and http.server print no ready line)."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if proc.poll() is not None:
            raise BenchError(f"server exited with status {proc.returncode} before listening")
        with node.socket(socket.AF_INET, socket.SOCK_STREAM, 0) as sock:
            sock.settimeout(max(deadline - time.monotonic(), 0.01))
            code = sock.connect_ex((host, port))
        if code == 0:
            return
        if code not in (errno.ECONNREFUSED, errno.EAGAIN, errno.ETIMEDOUT):
            raise BenchError(f"connect {host}:{port}: {os.strerror(code)}")
        if time.monotonic() > deadline:
            raise BenchError(f"nothing listened on {host}:{port} within {timeout:.0f} s")
        # Nothing to wait on before the listener exists; back off instead of spinning.
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
