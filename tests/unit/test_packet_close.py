"""PacketSocket.close(), and close_at_exit(): the descriptor left for the process's exit."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from rawstack.sockets import packet
from rawstack.sockets.packet import PacketSocket, close_at_exit


@pytest.fixture(autouse=True)
def _fresh_policy(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(packet._AtExit, "on", False)
    monkeypatch.setattr(packet._AtExit, "held", [])
    yield
    for sock in packet._AtExit.held:
        sock.close()


def _packet_socket(sock: socket.socket) -> PacketSocket:
    """A PacketSocket around any socket (its __init__ needs a bound AF_PACKET one)."""
    ps = object.__new__(PacketSocket)
    ps.sock, ps._closed = sock, False
    return ps


def test_close_closes_the_descriptor() -> None:
    mine, other = socket.socketpair()
    with other:
        _packet_socket(mine).close()
        assert mine.fileno() == -1


def test_after_close_at_exit_the_descriptor_is_left_open_and_held() -> None:
    mine, other = socket.socketpair()
    with other:
        ps = _packet_socket(mine)
        close_at_exit()
        ps.close()
        ps.close()  # still idempotent
        assert mine.fileno() >= 0
        assert packet._AtExit.held == [mine]
