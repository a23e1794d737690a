"""A dress rehearsal of a peer's start, run by the warm peer host and by each of its spares.

Theory of operation: a forked child's first run of a code path is slow, and not because of
the Python it runs (a warm ``serve-all`` starts its four peers in under 2 ms). The first time
the child touches a page it shares with the host it takes a copy-on-write fault (a peer's
start touches ~1,200 of them: reference counts, the specialising interpreter's inline caches,
allocator free lists), and the first use of a codec or a lazily imported module goes to
disk. Measured from the harness, that was ~5 ms of a child's ~7 ms from spawn to ready.

So the same path runs before anyone waits for it: once in the host (so lazy imports and
codec lookups happen once, before ``gc.freeze()``, and every child shares the result), then
in every spare while it waits for its assignment (so the copy-on-write faults are taken
then, off the spawn's path; the pages are copied either way). The rehearsal starts HTTP,
UDP echo and the ICMP responder on loopback, does one exchange with each from a client
socket on the same loop, and closes everything.

It runs only in the host's own network namespace, one it unshared at start-up and that
holds nothing but a loopback interface: never in the namespace the harness was started in,
whose ports and traffic are the user's. CHAO is left out: closing an ``AF_PACKET`` socket
waits for an RCU grace period (5-30 ms) in the kernel, longer than the rest together.
A rehearsal that fails costs only its speed-up: :func:`rehearse` never raises.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import struct
import time
from collections.abc import Callable

from rawstack_harness.backends.linux import nsutil

from rawstack.codec.icmp import ECHO_REPLY, ECHO_REQUEST, IcmpEcho
from rawstack.peers.base import announce_all
from rawstack.peers.loop import Loop
from rawstack.peers.registry import BY_NAME
from rawstack.peers.serve_all import default_servers

# What runs here: every peer serve-all starts except CHAO (see the module docstring).
PEERS = ("http", "udp", "icmp")
TIMEOUT = 0.5  # per exchange; on loopback each takes well under a millisecond


class _State:
    private = False  # set once this process is in a namespace of its own


def enter_private_netns() -> bool:
    """Move this (single-threaded) process into a fresh network namespace with ``lo`` up.

    True if it is there now. A process without the privilege stays where it is (False), and
    then :func:`rehearse` does nothing.
    """
    if _State.private:
        return True
    try:
        nsutil.unshare_net()
        _set_lo_up()
    except OSError:
        return False
    _State.private = True
    return True


def _set_lo_up() -> None:
    import fcntl

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sh22x", b"lo", 0)
        flags = struct.unpack("16sh22x", fcntl.ioctl(sock, siocgifflags, ifreq))[1]
        fcntl.ioctl(sock, siocsifflags, struct.pack("16sh22x", b"lo", flags | iff_up))


def rehearse() -> bool:
    """Start, exercise and close the peers once on loopback; True if every exchange worked.

    Output the peers print (ready lines, logs) goes nowhere. Does nothing (False) outside a
    private namespace (:func:`enter_private_netns`).
    """
    if not _State.private:
        return False
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            return _run()
    except Exception:  # only speed is at stake
        return False


def _run() -> bool:
    loop = Loop()
    servers = default_servers("lo", peers=PEERS)
    started = []
    ok = True
    try:
        ready = []
        for server in servers:
            ready.append((server.name, server.start(loop)))
            started.append(server)
        announce_all(ready)  # as serve-all does
        for exchange in (_udp, _http, _icmp):
            ok = exchange(loop) and ok
    finally:
        for server in reversed(started):
            server.close()
        loop.close()
    return ok


def _until_reply(loop: Loop, sock: socket.socket, complete: Callable[[bytes], bool]) -> bool:
    """Run ``loop`` until what ``sock`` read satisfies ``complete`` (or the timeout).

    ``complete`` sees all the bytes so far on a stream, the last datagram otherwise.
    """
    got = bytearray()
    stream = sock.type == socket.SOCK_STREAM
    done: list[bool] = []

    def on_read() -> None:
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return
        if not stream:
            got.clear()
        got.extend(data)
        if not data or complete(bytes(got)):
            done.append(bool(data))
            loop.stop()

    sock.setblocking(False)
    loop.add_reader(sock, on_read)
    try:
        loop.run(until=time.monotonic() + TIMEOUT)
    finally:
        loop.remove_reader(sock)
    return bool(done and done[0])


def _udp(loop: Loop) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", _port("udp")))
        payload = b"rehearsal-" + os.urandom(4).hex().encode()
        sock.send(payload)
        return _until_reply(loop, sock, lambda data: data == payload)


def _http(loop: Loop) -> bool:
    # The listener is bound, so the kernel completes the handshake before any accept().
    with socket.create_connection(("127.0.0.1", _port("http")), TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return _until_reply(loop, sock, lambda data: data.startswith(b"HTTP/1.1 200"))


def _icmp(loop: Loop) -> bool:
    ident = os.getpid() & 0xFFFF
    request = IcmpEcho(ECHO_REQUEST, ident, 1, b"rehearsal").encode()
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.sendto(request, ("127.0.0.1", 0))
        # Our own request comes back on a raw socket too (type 8): wait for a reply (0).
        return _until_reply(loop, sock, lambda data: _is_reply(data, ident))


def _is_reply(data: bytes, ident: int) -> bool:
    icmp = data[(data[0] & 0x0F) * 4 :] if data else b""
    return len(icmp) >= 8 and icmp[0] == ECHO_REPLY and icmp[4:6] == ident.to_bytes(2, "big")


def _port(peer: str) -> int:
    port = BY_NAME[peer].default_port
    assert port is not None
    return port


def scout() -> None:
    """What a spare's peer will do first, for :func:`.prefault.learn`: parse serve-all's
    command line as a spawn would, then a rehearsal."""
    import rawstack.cli

    rawstack.cli._cached_parser("serve-all").parse_args(["serve-all", "--iface", "eth0"])
    rehearse()
