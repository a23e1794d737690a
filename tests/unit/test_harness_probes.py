"""The probes' exchange runner, on loopback sockets of this process (no root needed).

The servers here are threads with plain sockets; what is under test is that every exchange
is in flight at once, that a timed-out attempt names what it probed, and that the caller's
``on_failure`` decides between another attempt and giving up.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from rawstack_harness import probes
from rawstack_harness.errors import ProbeFailed


class Here:
    """A probe node for this process's own stack."""

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        return socket.socket(family, type, proto)

    def mac(self, ifname: str = "eth0") -> str:
        raise LookupError(ifname)

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        return "127.0.0.1"


HERE = Here()


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock


def _port(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def test_every_exchange_is_in_flight_at_once(udp: socket.socket) -> None:
    # The echo answers only once it holds all three requests: run one after another, the
    # first would time out waiting for an answer that needs the other two.
    def serve() -> None:
        held = [udp.recvfrom(2048) for _ in range(3)]
        for data, peer in held:
            udp.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    jobs = {n: (lambda: probes.udp_exchange(HERE, "127.0.0.1", _port(udp)), 2.0) for n in range(3)}
    results = probes.exchange_all(jobs)
    thread.join(5)
    assert sorted(results) == [0, 1, 2]
    assert all(isinstance(rtt, float) and 0 < rtt < 2 for rtt in results.values())


def test_a_timed_out_attempt_names_what_it_probed(udp: socket.socket) -> None:
    with pytest.raises(ProbeFailed, match=rf"^udp 127\.0\.0\.1:{_port(udp)}: timed out$"):
        probes.udp_echo(HERE, "127.0.0.1", _port(udp), timeout=0.05)


def test_on_failure_true_tries_again_until_an_answer(udp: socket.socket) -> None:
    # The first datagram is dropped; the second attempt's is echoed.
    def serve() -> None:
        udp.recvfrom(2048)
        data, peer = udp.recvfrom(2048)
        udp.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    failures: list[str] = []

    def on_failure(key: str, exc: BaseException) -> bool:
        failures.append(f"{key}: {exc}")
        return len(failures) < 5

    job = (lambda: probes.udp_exchange(HERE, "127.0.0.1", _port(udp)), 0.1)
    results = probes.exchange_all({"udp": job}, on_failure)
    thread.join(5)
    assert isinstance(results["udp"], float)
    assert failures == [f"udp: udp 127.0.0.1:{_port(udp)}: timed out"]


def test_on_failure_false_keeps_the_error_and_the_others_still_finish(
    udp: socket.socket,
) -> None:
    def serve() -> None:
        data, peer = udp.recvfrom(2048)
        udp.sendto(data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        jobs = {
            "echo": (lambda: probes.udp_exchange(HERE, "127.0.0.1", _port(udp)), 2.0),
            "silent": (lambda: probes.udp_exchange(HERE, "127.0.0.1", _port(silent)), 0.05),
        }
        results = probes.exchange_all(jobs, lambda key, exc: False)
    thread.join(5)
    assert isinstance(results["echo"], float)
    assert isinstance(results["silent"], ProbeFailed)


def test_on_failure_raising_stops_all_and_closes_every_socket(udp: socket.socket) -> None:
    opened: list[socket.socket] = []

    class Recording(Here):
        def socket(
            self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
        ) -> socket.socket:
            sock = super().socket(family, type, proto)
            opened.append(sock)
            return sock

    node = Recording()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        jobs = {
            "slow": (lambda: probes.udp_exchange(node, "127.0.0.1", _port(udp)), 5.0),
            "fast": (lambda: probes.udp_exchange(node, "127.0.0.1", _port(silent)), 0.05),
        }

        def give_up(key: str, exc: BaseException) -> bool:
            raise RuntimeError(f"gave up on {key}")

        with pytest.raises(RuntimeError, match="gave up on fast") as raised:
            probes.exchange_all(jobs, give_up)
        # Checked while the traceback (and so anything the runner left open) is alive:
        # closed by the runner itself, not by the garbage collector later.
        assert raised.traceback
        assert len(opened) == 2
        assert all(sock.fileno() == -1 for sock in opened)


def test_a_refused_connection_is_a_probe_failure_that_can_be_retried() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = _port(unused)  # bound, never listening: connect() is refused
        tries: list[BaseException] = []

        def again(key: str, exc: BaseException) -> bool:
            tries.append(exc)
            return len(tries) < 3

        job = (lambda: probes.http_exchange(HERE, "127.0.0.1", port), 1.0)
        results = probes.exchange_all({"http": job}, again)
    assert len(tries) == 3
    assert isinstance(results["http"], ProbeFailed)
    assert f"http 127.0.0.1:{port}:" in str(results["http"])
