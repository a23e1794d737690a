"""rawstack's own clients run inside a node: one ``rawstack ... --json`` process per exchange.

Why a process rather than the Python API in a setns'd thread: the CLI is what users run, so
its options, JSON output and exit status get exercised too; a client that hangs or crashes is
killed by a timeout without taking the harness down; and the raw sockets get a real
process's namespace, capabilities and signal handling (a helper thread has none of its own).
Where the node can (:class:`RunsRawstack`: the Linux backend's, whose run's warm peer host
forks the command, already imported, into the node), a process costs a fork and the
exchange itself; elsewhere, or with ``--netns-peer-start=exec``, it is a fresh interpreter
(~60 ms more per exchange on this kind of machine).

Each client's JSON is checked for the reply itself (who answered, how many times), not only
its exit status, and the round-trip time is the one the client measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rawstack_harness.backends import Node, ReadyEvent
from rawstack_harness.errors import HarnessError

from rawstack.peers.registry import ALL_PEERS, ready_port

PROTOCOLS = ALL_PEERS  # one client per peer, in the registry's order
CLIENT_TIMEOUT = 30.0  # for the whole process, interpreter start included
REPLY_TIMEOUT = 2.0  # what each client waits for its reply


class ClientFailed(HarnessError):
    """A rawstack client exchange failed; the message has its argv, status and stderr."""


@dataclass(frozen=True)
class Exchange:
    """One client run for the demo table: protocol, direction, outcome, RTT in ms."""

    protocol: str
    direction: str
    ok: bool
    rtt_ms: float | None
    server: str = "rawstack"
    error: str | None = None

    def row(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "protocol": self.protocol,
            "direction": self.direction,
            "ok": self.ok,
            "rtt_ms": self.rtt_ms,
            "server": self.server,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


@runtime_checkable
class RunsRawstack(Protocol):
    """A node that runs ``rawstack ARGS`` without an interpreter start (the Linux backend's)."""

    def run_rawstack(
        self, args: Sequence[str], *, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]: ...


def rawstack_argv(*args: str) -> list[str]:
    """``python -m rawstack ARGS`` with this interpreter (the one rawstack is installed in)."""
    return [sys.executable, "-m", "rawstack", *args]


def rawstack(
    node: Node, *args: str, timeout: float = CLIENT_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``rawstack ARGS`` in ``node``: text stdout/stderr captured, status not checked.

    Forked where the node can (:class:`RunsRawstack`), else ``python -m rawstack ARGS``;
    either way the same parser, output and exit status. A timeout raises
    ``subprocess.TimeoutExpired`` once the process is killed.
    """
    if isinstance(node, RunsRawstack):
        return node.run_rawstack(args, timeout=timeout)
    return node.run(rawstack_argv(*args), capture_output=True, text=True, timeout=timeout)


def _port(ready: Mapping[str, ReadyEvent] | None, peer: str) -> str:
    if ready is None or peer not in ready:
        raise HarnessError(f"no ready line from the {peer} peer: cannot tell its port")
    return str(ready_port(ready[peer]))


def client_args(
    protocol: str,
    *,
    host: str,
    iface: str,
    mac: str,
    ready: Mapping[str, ReadyEvent] | None,
) -> list[str]:
    """The ``rawstack`` arguments of one exchange with a peer at ``host``/``mac``."""
    wait = f"{REPLY_TIMEOUT:g}"
    if protocol == "chao":
        return ["chao", "send", "--iface", iface, "--to", mac, "-c", "1",
                "--timeout", wait, "--json"]  # fmt: skip
    if protocol == "icmp":
        return ["ping", host, "-c", "1", "-W", wait, "--json"]
    if protocol == "http":
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal in a URL (RFC 3986)
        url = f"http://{name}:{_port(ready, 'http')}/"
        return ["http", "get", url, "--timeout", wait, "--json"]
    if protocol == "udp":
        return ["udp", "send", host, _port(ready, "udp"), "-c", "1",
                "--timeout", wait, "--json"]  # fmt: skip
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def check_reply(protocol: str, data: Mapping[str, Any], host: str, mac: str) -> float:
    """The RTT (ms) from a client's JSON, after checking the right peer answered once."""
    if protocol == "chao":
        replies = data.get("replies") or []
        if len(replies) != 1 or str(replies[0].get("from", "")).lower() != mac.lower():
            raise ValueError(f"expected one reply from {mac}, got {replies}")
        return float(replies[0]["rtt_ms"])
    if protocol == "icmp":
        replies = data.get("replies") or []
        if len(replies) != 1 or replies[0].get("from") != host:
            raise ValueError(f"expected one echo reply from {host}, got {replies}")
        if data.get("duplicates"):
            raise ValueError(f"{data['duplicates']} duplicate replies: two responders?")
        return float(replies[0]["rtt_ms"])
    if protocol == "http":
        if data.get("status") != 200:
            raise ValueError(f"status {data.get('status')} {data.get('reason')}")
        return float(data["timing"]["total_ms"])
    if protocol == "udp":
        if data.get("received") != 1 or data.get("mismatched"):
            raise ValueError(f"{data.get('received')} of 1 echoes back")
        return float(data["rtt_ms"]["avg"])
    raise ValueError(f"unknown protocol {protocol!r}")


def run_client(
    protocol: str,
    src: Node,
    dst: Node,
    *,
    ready: Mapping[str, ReadyEvent] | None = None,
    src_ifname: str = "eth0",
    dst_ifname: str = "eth0",
    host: str | None = None,
) -> float:
    """Run rawstack's ``protocol`` client in ``src`` against ``dst``; return the RTT in ms.

    ``ready`` is the peer's ready lines (``PeerProcess.ready``), for the HTTP and UDP ports;
    ``host`` defaults to ``dst``'s first IPv4 address on ``dst_ifname``. CHAO needs the two
    nodes on one link. Raises :class:`ClientFailed` with the client's status and stderr.
    """
    host = host or dst.addr(4, dst_ifname)
    mac = dst.mac(dst_ifname) if protocol == "chao" else ""
    args = client_args(protocol, host=host, iface=src_ifname, mac=mac, ready=ready)
    shown = "rawstack " + " ".join(args)
    where = f"{shown!r} in node {src.name}"
    try:
        done = rawstack(src, *args, timeout=CLIENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ClientFailed(f"{where}: no result in {CLIENT_TIMEOUT:g}s") from None
    err = done.stderr.strip().splitlines()
    if done.returncode != 0:
        tail = "; ".join(err[-3:]) or "(no stderr)"
        raise ClientFailed(f"{where}: exit status {done.returncode}: {tail}")
    try:
        return check_reply(protocol, json.loads(done.stdout), host, mac)
    except (ValueError, KeyError, TypeError) as exc:
        raise ClientFailed(f"{where}: {exc}; stdout: {done.stdout.strip()[:300]}") from None


def try_client(
    protocol: str,
    src: Node,
    dst: Node,
    *,
    direction: str | None = None,
    server: str = "rawstack",
    **kwargs: Any,
) -> Exchange:
    """:func:`run_client` as a table row: a failure becomes ``ok=False`` with its reason."""
    direction = direction or f"{src.name}->{dst.name}"
    try:
        rtt = run_client(protocol, src, dst, **kwargs)
    except HarnessError as exc:
        return Exchange(protocol, direction, False, None, server, str(exc))
    return Exchange(protocol, direction, True, round(rtt, 3), server)
