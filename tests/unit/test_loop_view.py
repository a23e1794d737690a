"""LoopView: a tenant's callbacks run in its scope, its failures are its own, close drops all."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from rawstack.peers.loop import Loop, LoopView


class Scope:
    def __init__(self) -> None:
        self.depth = 0
        self.seen: list[str] = []

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    r, w = socket.socketpair()
    r.setblocking(False)
    yield r, w
    r.close()
    w.close()


def test_a_callback_runs_in_the_scope_and_its_failure_does_not_end_the_loop(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    r, w = pair
    loop = Loop()
    scope = Scope()
    errors: list[Exception] = []
    view = LoopView(loop, scope, errors.append)

    def on_read() -> None:
        scope.seen.append(f"read in scope {scope.depth}")
        r.recv(16)
        raise ValueError("boom")

    later: list[int] = []

    def end() -> None:
        later.append(scope.depth)
        loop.stop()

    view.add_reader(r, on_read)
    view.call_later(0.0, lambda: scope.seen.append(f"timer in scope {scope.depth}"))
    loop.call_later(0.2, end)
    w.send(b"x")
    loop.run(until=loop.time() + 5)
    assert sorted(scope.seen) == ["read in scope 1", "timer in scope 1"]
    assert [str(e) for e in errors] == ["boom"]  # once: the reader read its byte
    assert later == [0]  # the loop ran on, and its own callbacks are outside the scope
    loop.close()


def test_close_drops_what_the_tenant_left_and_nothing_else(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    r, w = pair
    loop = Loop()
    view = LoopView(loop, Scope(), lambda exc: None)
    fired: list[str] = []
    view.add_reader(r, lambda: fired.append("tenant read"))
    view.add_writer(w, lambda: fired.append("tenant write"))
    view.call_later(0.0, lambda: fired.append("tenant timer"))
    other_r, other_w = socket.socketpair()

    def other_read() -> None:
        fired.append("other read")
        other_r.recv(16)

    loop.add_reader(other_r, other_read)
    loop.call_later(0.1, loop.stop)
    view.close()
    w.send(b"x")
    other_w.send(b"y")
    loop.run(until=loop.time() + 5)
    assert fired == ["other read"]
    with pytest.raises(RuntimeError, match="closed LoopView"):
        view.add_reader(r, lambda: None)
    with pytest.raises(RuntimeError, match="closed LoopView"):
        view.call_later(0.0, lambda: None)
    other_r.close()
    other_w.close()
    loop.close()


def test_close_leaves_an_fd_number_another_tenant_registered_since() -> None:
    loop = Loop()
    view = LoopView(loop, Scope(), lambda exc: None)
    first, peer = socket.socketpair()
    fd = first.fileno()
    view.add_reader(first, lambda: None)
    loop.remove_reader(fd)  # the tenant's socket went away (its server closed it)...
    first.close()
    peer.close()
    again, again_peer = socket.socketpair()  # ...and its number is reused by another
    fired: list[bytes] = []
    loop.add_reader(again, lambda: fired.append(again.recv(16)))
    assert again.fileno() == fd  # the lowest free number: the case this test is about
    view.close()
    again_peer.send(b"z")
    loop.call_later(0.1, loop.stop)
    loop.run(until=loop.time() + 5)
    assert fired == [b"z"]
    again.close()
    again_peer.close()
    loop.close()
