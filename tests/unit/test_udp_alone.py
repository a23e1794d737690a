"""``UdpEchoServer.run_alone``: the selector-free echo loop, on loopback, stopped by a signal.

The signal comes from a helper thread (handlers run in the main thread, where pytest runs
the test), after it has had its echoes back, so the test also proves the blocked
``recvfrom_into`` is interrupted rather than retried. A loop that never stops fails on the
timeout marker (pytest-timeout's SIGALRM raises out of the blocked call) instead of hanging.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import Callable

import pytest

from rawstack.peers.loop import Loop
from rawstack.peers.udp import UdpEchoServer


def _client(
    port: int, payloads: list[bytes], echoes: list[bytes], then: Callable[[], None]
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        for data in payloads:
            sock.send(data)
            echoes.append(sock.recv(65536))
    then()


pytestmark = pytest.mark.timeout(15)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_echoes_until_a_signal_then_restores_handlers(sig: signal.Signals) -> None:
    loop = Loop()
    loop.install_signal_handlers()
    before = signal.getsignal(sig)
    server = UdpEchoServer("127.0.0.1", 0)
    port = int(server.start(loop)["addr"].rsplit(":", 1)[1])
    payloads = [b"one", b"", b"x" * 65507]
    echoes: list[bytes] = []
    client = threading.Thread(
        target=_client, args=(port, payloads, echoes, lambda: os.kill(os.getpid(), sig))
    )
    client.start()
    try:
        server.run_alone(loop)
    finally:
        client.join(5)
        server.close()
        loop.close()
    assert echoes == payloads
    assert loop.stop_signal == sig
    assert server.stats() == {"datagrams": 3, "bytes": 65510, "send_errors": 0}
    assert signal.getsignal(sig) is before


def test_a_signal_before_it_starts_stops_it_at_once() -> None:
    loop = Loop()
    loop.install_signal_handlers()
    server = UdpEchoServer("127.0.0.1", 0)
    server.start(loop)
    os.kill(os.getpid(), signal.SIGTERM)  # the loop's handler records it
    try:
        server.run_alone(loop)  # would block forever without the check
    finally:
        server.close()
        loop.close()
    assert loop.stop_signal == signal.SIGTERM
