"""Independent protocol probes the supervisor uses to prove a peer really serves.

Each probe opens its socket inside a node (``node.socket``), does one exchange against a
peer on another node and returns the round-trip time in seconds, or raises
:class:`~rawstack_harness.errors.ProbeFailed`. They use plain sockets and the CHAO codec only,
so a bug in rawstack's own clients cannot make a broken server look ready. They work on any
backend whose nodes open sockets (``capabilities.node_sockets``); the FreeBSD backend runs
the same functions inside a jail instead.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

from rawstack_harness.backends.base import ReadyEvent
from rawstack_harness.errors import ProbeFailed

from rawstack.peers.registry import BY_NAME, ready_port

__all__ = ["PROBES", "PROBES6", "NodeLike", "ProbeFailed", "Target", "chao_request",
           "http_get", "icmp6_echo", "icmp_echo", "probe_peer", "udp_echo"]  # fmt: skip


class NodeLike(Protocol):
    """The part of :class:`rawstack_harness.backends.base.Node` a probe uses.

    Every node handle is one (the Linux backend passes its handles straight in, so mypy
    checks that); so is the FreeBSD in-jail stand-in for the process's own stack, which
    has no more than these three.
    """

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket: ...

    def mac(self, ifname: str = "eth0") -> str: ...

    def addr(self, version: int = 4, ifname: str | None = None) -> str: ...


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise ProbeFailed("timed out")
    return left


def http_get(node: NodeLike, host: str, port: int, timeout: float = 2.0) -> float:
    """``GET /`` over TCP; any ``HTTP/1.x 200`` status line counts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    start = time.monotonic()
    with node.socket(family, socket.SOCK_STREAM, 0) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((host, port))
            # An IPv6 literal goes in brackets (RFC 9112 §3.2, RFC 3986 §3.2.2): the server
            # answers a bare one with 400, as it must.
            field = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {field}\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError as exc:
            raise ProbeFailed(f"http {host}:{port}: {exc}") from None
    rtt = time.monotonic() - start
    status = data.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[0].startswith(b"HTTP/1.") or status[1] != b"200":
        raise ProbeFailed(f"http {host}:{port}: bad status line {data[:40]!r}")
    return rtt


def udp_echo(node: NodeLike, host: str, port: int, timeout: float = 1.0) -> float:
    """One datagram out, the same bytes back."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    payload = b"probe-" + os.urandom(8).hex().encode()
    with node.socket(family, socket.SOCK_DGRAM, 0) as sock:
        sock.connect((host, port))
        start = time.monotonic()
        deadline = start + timeout
        sock.send(payload)
        while True:
            sock.settimeout(_remaining(deadline))
            try:
                data = sock.recv(65535)
            except OSError as exc:
                raise ProbeFailed(f"udp {host}:{port}: {exc}") from None
            if data == payload:
                return time.monotonic() - start


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def icmp_echo(node: NodeLike, host: str, timeout: float = 1.0) -> float:
    """An IPv4 echo request from a raw socket; wait for the matching echo reply."""
    ident, seq = os.getpid() & 0xFFFF, int.from_bytes(os.urandom(2), "big")
    body = b"rawstack-harness-probe"
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, _checksum(header + body), ident, seq) + body
    with node.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        start = time.monotonic()
        deadline = start + timeout
        sock.sendto(packet, (host, 0))
        while True:
            sock.settimeout(_remaining(deadline))
            try:
                data, (src, _) = sock.recvfrom(65535)
            except OSError as exc:
                raise ProbeFailed(f"icmp {host}: {exc}") from None
            ihl = (data[0] & 0x0F) * 4
            icmp = data[ihl:]
            if src == host and len(icmp) >= 8 and icmp[0] == 0:
                _, _, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
                if (rid, rseq) == (ident, seq) and icmp[8:] == body:
                    return time.monotonic() - start


def icmp6_echo(node: NodeLike, host: str, timeout: float = 1.0) -> float:
    """An ICMPv6 echo request (type 128) from a raw ICMPv6 socket; wait for the matching
    reply (129). The kernel fills the checksum and strips the IPv6 header (RFC 3542 3)."""
    ident, seq = os.getpid() & 0xFFFF, int.from_bytes(os.urandom(2), "big")
    body = b"rawstack-harness-probe6"
    packet = struct.pack("!BBHHH", 128, 0, 0, ident, seq) + body
    with node.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6) as sock:
        start = time.monotonic()
        deadline = start + timeout
        sock.sendto(packet, (host, 0))
        while True:
            sock.settimeout(_remaining(deadline))
            try:
                data, addr = sock.recvfrom(65535)
            except OSError as exc:
                raise ProbeFailed(f"icmp6 {host}: {exc}") from None
            if addr[0] == host and len(data) >= 8 and data[0] == 129:
                _, _, _, rid, rseq = struct.unpack("!BBHHH", data[:8])
                if (rid, rseq) == (ident, seq) and data[8:] == body:
                    return time.monotonic() - start


def chao_request(node: NodeLike, ifname: str, dst_mac: str, timeout: float = 1.0) -> float:
    """A CHAO request frame to ``dst_mac``; wait for the reply with the same sequence number."""
    from rawstack.codec.chao import CHAO_REPLY, CHAO_REQUEST, Chao
    from rawstack.codec.ethernet import ETH_P_CHAO

    seq = int.from_bytes(os.urandom(2), "big")
    src = bytes.fromhex(node.mac(ifname).replace(":", ""))
    dst = bytes.fromhex(dst_mac.replace(":", ""))
    frame = dst + src + struct.pack("!H", ETH_P_CHAO)
    frame += Chao(CHAO_REQUEST, seq, b"harness-probe").encode()
    # Protocol 0 receives nothing until the bind names the interface and EtherType, as in
    # rawstack.sockets.packet (its open_packet cannot open a socket inside a node).
    with node.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((ifname, ETH_P_CHAO))
        start = time.monotonic()
        deadline = start + timeout
        sock.send(frame)
        rtt = None
        while rtt is None:
            ready, _, _ = select.select([sock], [], [], _remaining(deadline))
            if not ready:
                continue
            data = sock.recv(65535)
            if len(data) < 14 or data[:6] != src:
                continue
            try:
                reply = Chao.decode(data[14:])
            except Exception:
                continue
            if reply.type == CHAO_REPLY and reply.seq == seq:
                rtt = time.monotonic() - start
    return rtt


@dataclass(frozen=True)
class Target:
    """What a probe needs to know of the peer it probes, and the prober's own interface."""

    host: str
    port: int  # 0 for a peer without one
    mac: str  # "" unless the peer speaks link-layer frames
    src_ifname: str


# peer -> its probe: one exchange from a node to the target; the RTT in seconds.
PROBES: dict[str, Callable[[NodeLike, Target], float]] = {
    "http": lambda node, t: http_get(node, t.host, t.port),
    "udp": lambda node, t: udp_echo(node, t.host, t.port),
    "chao": lambda node, t: chao_request(node, t.src_ifname, t.mac),
    "icmp": lambda node, t: icmp_echo(node, t.host),
}
# The same peers over IPv6, probed too where the target has an IPv6 address.
PROBES6: dict[str, Callable[[NodeLike, Target], float]] = {
    "http": PROBES["http"],
    "udp": PROBES["udp"],
    "icmp": lambda node, t: icmp6_echo(node, t.host),
}


def probe_peer(
    peer: str,
    *,
    src: NodeLike,
    src_ifname: str,
    dst: NodeLike,
    dst_ifname: str,
    ready: Mapping[str, ReadyEvent],
) -> float:
    """One exchange with ``dst``'s ``peer`` (as announced in ``ready``) from ``src``."""
    if peer not in PROBES:
        raise ValueError(f"unknown peer {peer!r}")
    info = BY_NAME[peer]
    target = Target(
        host=dst.addr(4, dst_ifname),
        port=ready_port(ready[peer]) if info.default_port is not None else 0,
        mac=dst.mac(dst_ifname) if info.link else "",
        src_ifname=src_ifname,
    )
    rtt = PROBES[peer](src, target)
    if peer in PROBES6:
        try:
            host6 = dst.addr(6, dst_ifname)
        except LookupError:
            return rtt  # no IPv6 on that interface: nothing more to prove
        PROBES6[peer](src, replace(target, host=host6))
    return rtt
