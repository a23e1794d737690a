"""The shared selectors loop: timers, readers/writers, and signal-driven stop."""

from __future__ import annotations

import os
import signal
import socket
import threading

import pytest

from rawstack.peers.loop import Loop


def test_timers_fire_in_deadline_order_and_cancel_is_honoured() -> None:
    loop = Loop()
    fired: list[str] = []
    loop.call_later(0.02, lambda: fired.append("late"))
    loop.call_later(0.0, lambda: fired.append("first"))
    cancelled = loop.call_later(0.01, lambda: fired.append("cancelled"))
    cancelled.cancel()
    loop.call_later(0.03, loop.stop)
    loop.run()
    loop.close()
    assert fired == ["first", "late"]


def test_reader_callback_runs_when_data_arrives() -> None:
    loop = Loop()
    a, b = socket.socketpair()
    got: list[bytes] = []

    def on_read() -> None:
        got.append(a.recv(100))
        loop.stop()

    loop.add_reader(a, on_read)
    loop.call_later(0.01, lambda: b.send(b"ping"))
    loop.run(until=loop.time() + 5)
    loop.remove_reader(a)
    loop.close()
    a.close()
    b.close()
    assert got == [b"ping"]


def test_reader_and_writer_on_one_fd_and_removal() -> None:
    loop = Loop()
    a, b = socket.socketpair()
    events: list[str] = []

    def on_write() -> None:
        events.append("w")
        loop.remove_writer(a)
        b.send(b"x")

    def on_read() -> None:
        events.append("r")
        a.recv(10)
        loop.remove_reader(a)

    loop.add_reader(a, on_read)
    loop.add_writer(a, on_write)
    loop.run(until=loop.time() + 5)  # returns once nothing is registered
    loop.close()
    a.close()
    b.close()
    assert events == ["w", "r"]


def test_run_until_returns_at_deadline() -> None:
    loop = Loop()
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    start = loop.time()
    loop.run(until=start + 0.05)
    assert loop.time() - start >= 0.05
    loop.close()
    a.close()
    b.close()


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_sigterm_stops_a_blocked_loop() -> None:
    loop = Loop()
    loop.install_signal_handlers((signal.SIGUSR1,))
    a, b = socket.socketpair()
    loop.add_reader(a, lambda: None)
    timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.start()
    try:
        loop.run(until=loop.time() + 10)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    assert loop.stop_signal == signal.SIGUSR1
    loop.close()
    a.close()
    b.close()
