"""Supervision probes on FreeBSD: one short process inside the probing node's jail.

The Linux backend's probes open sockets in the source node from the test process; a jail
has no setns, so here each probe is a process in the source jail (``jexec``) that runs the
same plain-socket probes from :mod:`rawstack_harness.probes` (CHAO over ``/dev/bpf`` instead of
AF_PACKET) and prints its RTT as JSON (:func:`probe_main`).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

from rawstack_harness.backends.base import ReadyEvent
from rawstack_harness.errors import ProbeFailed
from rawstack_harness.probes import http_get, icmp_echo, udp_echo

from rawstack.errors import RawstackError
from rawstack.peers.registry import BY_NAME, ready_port

PROBE_TIMEOUT = 15.0  # the whole probe process, interpreter start included
_PROBE_CODE = (
    "import sys; from rawstack_harness.backends.freebsd.probes import probe_main; "
    "sys.exit(probe_main(sys.argv[1:]))"
)


class JailLike(Protocol):
    """What :func:`probe_peer` uses of a node (every ``NodeHandle`` has it)."""

    @property
    def name(self) -> str: ...

    def addr(self, version: int = 4, ifname: str | None = None) -> str: ...

    def mac(self, ifname: str = "eth0") -> str: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        text: Literal[True],
        capture_output: bool = ...,
        timeout: float | None = ...,
    ) -> subprocess.CompletedProcess[str]: ...


def probe_argv(
    peer: str, *, ifname: str, target: str, dst_mac: str, ready: Mapping[str, ReadyEvent]
) -> list[str]:
    """The command a jail runs to probe ``peer`` at ``target`` (``dst_mac`` for CHAO)."""
    if peer not in BY_NAME:
        raise ValueError(f"unknown peer {peer!r}")
    info = BY_NAME[peer]
    # The one argument the probe needs besides the target: its port, or the link address.
    arg = str(ready_port(ready[peer])) if info.default_port else dst_mac if info.link else "-"
    return [sys.executable, "-c", _PROBE_CODE, peer, ifname, target, arg]


def probe_peer(
    peer: str,
    *,
    src: JailLike,
    src_ifname: str,
    dst: JailLike,
    dst_ifname: str,
    ready: Mapping[str, ReadyEvent],
) -> float:
    """One exchange with ``dst``'s ``peer`` from inside ``src``'s jail; RTT in seconds."""
    target = dst.addr(4, dst_ifname)
    mac = dst.mac(dst_ifname) if peer in BY_NAME and BY_NAME[peer].link else ""
    argv = probe_argv(peer, ifname=src_ifname, target=target, dst_mac=mac, ready=ready)
    try:
        done = src.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ProbeFailed(
            f"{peer} probe from {src.name}: no result in {PROBE_TIMEOUT:g}s"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise ProbeFailed(lines[-1] if lines else f"probe exited with status {done.returncode}")
    try:
        return float(json.loads(done.stdout)["rtt"])
    except (ValueError, KeyError, TypeError):
        raise ProbeFailed(f"{peer} probe printed {done.stdout.strip()[:100]!r}") from None


class _Here:
    """The probes' node for the process's own network stack (inside the jail)."""

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        return socket.socket(family, type, proto)

    def mac(self, ifname: str = "eth0") -> str:
        raise LookupError("not needed by the socket probes")

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        raise LookupError("not needed by the socket probes")


def chao_probe(ifname: str, dst_mac: str, timeout: float = 1.0) -> float:
    """A CHAO request to ``dst_mac`` over the link socket (BPF here); wait for its reply."""
    # Imported here: only CHAO needs the codec and the link-socket layer.
    from rawstack.codec.chao import CHAO_REPLY, CHAO_REQUEST, Chao
    from rawstack.codec.ethernet import ETH_P_CHAO
    from rawstack.sockets.link import open_link

    seq = int.from_bytes(os.urandom(2), "big")
    sock = open_link(ifname, ETH_P_CHAO)
    try:
        frame = bytes.fromhex(dst_mac.replace(":", "")) + sock.mac
        frame += ETH_P_CHAO.to_bytes(2, "big") + Chao(CHAO_REQUEST, seq, b"harness-probe").encode()
        start = time.monotonic()
        deadline = start + timeout
        sock.send(frame)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProbeFailed(f"chao {dst_mac}: timed out")
            select.select([sock], [], [], left)
            for got in sock.recv_frames():
                if got[:6] != sock.mac:
                    continue
                with contextlib.suppress(Exception):
                    reply = Chao.decode(got[14:])
                    if reply.type == CHAO_REPLY and reply.seq == seq:
                        return time.monotonic() - start
    finally:
        sock.close()


# peer -> its probe from this process's own stack, given (ifname, target, arg).
HERE: dict[str, Callable[[str, str, str], float]] = {
    "http": lambda _ifname, target, port: http_get(_Here(), target, int(port)),
    "udp": lambda _ifname, target, port: udp_echo(_Here(), target, int(port)),
    "chao": lambda ifname, _target, mac: chao_probe(ifname, mac),
    "icmp": lambda _ifname, target, _arg: icmp_echo(_Here(), target),
}


def probe_here(peer: str, ifname: str, target: str, arg: str) -> float:
    """Run one probe from this process's own stack (what :func:`probe_argv` executes)."""
    if peer not in HERE:
        raise ValueError(f"unknown peer {peer!r}")
    return HERE[peer](ifname, target, arg)


def probe_main(argv: Sequence[str]) -> int:
    """``PEER IFNAME TARGET ARG``: print ``{"rtt": seconds}``, or one error line and exit 1."""
    peer, ifname, target, arg = argv
    try:
        rtt = probe_here(peer, ifname, target, arg)
    except (ProbeFailed, OSError, RawstackError) as exc:
        print(f"{peer} probe of {target}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"rtt": rtt}))
    return 0
