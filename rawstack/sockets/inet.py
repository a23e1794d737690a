"""Plain TCP and UDP sockets for the HTTP and UDP peers.

Each socket is made on bare system calls: ``socket(family, type, proto)`` with the
protocol spelled out (IPPROTO_TCP / IPPROTO_UDP), then options, bind, listen or connect.
All of them are non-blocking: the peers drive them from the one
:class:`rawstack.peers.loop.Loop`. Kernel refusals become one-line errors via
:func:`rawstack.sockets.translated`.
"""

from __future__ import annotations

import ipaddress
import resource
import socket
from typing import Any

from rawstack.errors import ExchangeFailed, UsageError
from rawstack.sockets import translated

Sockaddr = tuple[Any, ...]  # (host, port) or (host, port, flowinfo, scope_id)
# The servers' default bind: one IPv6 socket with IPV6_V6ONLY off takes IPv4 too (as
# IPv4-mapped addresses, RFC 4291 2.5.5.2; RFC 3493 5.3), so a server listens dual-stack.
DUAL_STACK = "::"
LISTEN_BACKLOG = 4096  # the kernel clamps it to net.core.somaxconn


def family_of(address: str) -> int:
    """AF_INET or AF_INET6 for a literal address; UsageError otherwise."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(f"{address!r} is not an IPv4 or IPv6 address") from None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


def check_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise UsageError(f"port {port} is out of range 0-65535")
    return port


def format_addr(sockaddr: Sockaddr) -> str:
    """``1.2.3.4:80`` or ``[::1]:80``."""
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bound(kind: int, bind: str, port: int, what: str) -> socket.socket:
    family = family_of(bind)
    check_port(port)
    proto = socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP
    try:
        sock = socket.socket(family, kind, proto)
    except OSError:
        if bind != DUAL_STACK:
            raise
        # A kernel without IPv6 (EAFNOSUPPORT): dual-stack is IPv4 alone there.
        return _bound(kind, "0.0.0.0", port, what.replace(f"[{DUAL_STACK}]", "0.0.0.0"))
    try:
        with translated(what, "CAP_NET_BIND_SERVICE"):
            sock.setblocking(False)
            if kind == socket.SOCK_STREAM:
                # A restarted server must be able to bind while old connections sit in
                # TIME_WAIT; this does not allow two live listeners on one port on Linux.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                # "::" listens for both families; any other IPv6 address for IPv6 only.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, int(bind != DUAL_STACK))
            sock.bind((bind, port))
            if kind == socket.SOCK_STREAM:
                sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def open_tcp_listener(bind: str, port: int) -> socket.socket:
    """A non-blocking listening TCP socket on ``bind:port`` (port 0: the kernel picks)."""
    return _bound(socket.SOCK_STREAM, bind, port, f"tcp listen on {format_addr((bind, port))}")


def open_udp_server(bind: str, port: int) -> socket.socket:
    """A non-blocking UDP socket bound to ``bind:port`` for recvfrom/sendto."""
    return _bound(socket.SOCK_DGRAM, bind, port, f"udp bind on {format_addr((bind, port))}")


def resolve(host: str, port: int, kind: int) -> tuple[int, Sockaddr]:
    """The first address of ``host`` for TCP or UDP; unresolvable is an ExchangeFailed."""
    check_port(port)
    proto = socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, kind, proto)
    except (socket.gaierror, UnicodeError) as exc:
        raise ExchangeFailed(f"cannot resolve {host!r}: {exc}") from None
    infos.sort(key=lambda info: info[0] != socket.AF_INET)  # prefer IPv4, like the seeds
    family, _, _, _, sockaddr = infos[0]
    return int(family), tuple(sockaddr)


def open_tcp_client(family: int) -> socket.socket:
    """A non-blocking TCP socket, Nagle off (a request is written in one send)."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def open_udp_client(family: int, peer: Sockaddr) -> socket.socket:
    """A non-blocking UDP socket connected to ``peer``.

    Connecting makes the kernel drop datagrams from anyone else and report an ICMP port
    unreachable as ECONNREFUSED on the next call, instead of a silent timeout.
    """
    sock = socket.socket(family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    try:
        sock.setblocking(False)
        with translated(f"udp connect to {format_addr(peer)}"):
            sock.connect(peer)
    except BaseException:
        sock.close()
        raise
    return sock


def raise_nofile_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit; return the new soft limit.

    One descriptor per connection: the default soft limit (1024 on many systems) would
    cap a server below the 1000 concurrent connections it must hold.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft
