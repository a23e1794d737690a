"""`rawstack udp serve` and `rawstack udp send` on loopback, against each other and socat.

No root needed: servers bind 127.0.0.1 with ``--port 0`` and are used once their ready line
(or socat's "receiving on" line) has arrived; every process is stopped in a ``finally``.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from _loopback import RAWSTACK, loopback_server, need, read_line, stop

from rawstack.peers.udp import MAX_DATAGRAM, udp_round_trips


def udp_server() -> AbstractContextManager[tuple[subprocess.Popen[bytes], int]]:
    """A `rawstack udp serve` subprocess on 127.0.0.1 and its port."""
    return loopback_server("udp")


@pytest.fixture
def server() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Our echo server; it must still be alive after the test."""
    with udp_server() as running:
        yield running
        assert running[0].poll() is None, "the server died"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*RAWSTACK, *args], capture_output=True, check=False, timeout=60)


def test_our_client_against_our_server(server: tuple[subprocess.Popen[bytes], int]) -> None:
    result = udp_round_trips("127.0.0.1", server[1], b"ping", count=20, timeout=2.0)
    assert (result.sent, result.received, result.lost) == (20, 20, 0)
    assert [r.seq for r in result.replies] == list(range(20))
    assert result.min_ms is not None
    assert result.p99_ms is not None
    assert 0 < result.min_ms <= result.p50_ms <= result.p99_ms <= result.max_ms  # type: ignore[operator]


def test_cli_send_json(server: tuple[subprocess.Popen[bytes], int]) -> None:
    run = cli("udp", "send", "127.0.0.1", str(server[1]), "hello", "-c", "3", "-i", "0", "--json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert (doc["sent"], doc["received"], doc["loss_pct"]) == (3, 3, 0.0)
    assert set(doc["rtt_ms"]) == {"min", "avg", "max", "p50", "p99"}


def test_largest_datagram_round_trip(server: tuple[subprocess.Popen[bytes], int]) -> None:
    result = udp_round_trips("127.0.0.1", server[1], b"", count=2, size=MAX_DATAGRAM, timeout=2.0)
    assert [r.size for r in result.replies] == [MAX_DATAGRAM, MAX_DATAGRAM]


def test_socat_client_against_our_server(server: tuple[subprocess.Popen[bytes], int]) -> None:
    socat = need("socat")
    run = subprocess.run(
        [socat, "-T", "2", "-", f"UDP:127.0.0.1:{server[1]}"],
        input=b"through socat\n",
        capture_output=True,
        check=False,
        timeout=20,
    )
    assert run.stdout == b"through socat\n", run.stderr


def test_our_client_against_socat_echo() -> None:
    socat = need("socat")
    port = free_udp_port()
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"UDP-RECVFROM:{port},bind=127.0.0.1,fork", "EXEC:cat"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert proc.stderr is not None
        line = read_line(proc.stderr, 15)
        while b"receiving on" not in line:  # socat's own readiness line (-d -d)
            assert line, "socat exited before listening"
            line = read_line(proc.stderr, 15)
        result = udp_round_trips(
            "127.0.0.1", port, b"via socat", count=5, timeout=3.0, interval=0.05
        )
        assert (result.received, result.lost) == (5, 0)
    finally:
        stop(proc, group=True)


def test_random_datagrams_never_stop_the_server(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    rng = random.Random(7)
    sizes = [0, 1, MAX_DATAGRAM] + [rng.randint(0, 4000) for _ in range(200)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        sock.settimeout(5)
        for size in sizes:
            data = rng.randbytes(size)
            sock.sendto(data, ("127.0.0.1", server[1]))
            echoed, _ = sock.recvfrom(65536)
            assert echoed == data
    assert udp_round_trips("127.0.0.1", server[1], b"still there", timeout=2.0).lost == 0


def test_loss_exits_1() -> None:
    run = cli(
        "udp",
        "send",
        "127.0.0.1",
        str(free_udp_port()),
        "-c",
        "2",
        "-i",
        "0.05",
        "-W",
        "0.3",
        "--json",
    )
    assert run.returncode == 1
    assert json.loads(run.stdout)["lost"] == 2
    assert len(run.stderr.splitlines()) == 1


def test_bad_arguments_exit_2() -> None:
    assert cli("udp", "send", "127.0.0.1", "9", "-s", str(MAX_DATAGRAM + 1)).returncode == 2
    assert cli("udp", "serve", "--bind", "not-an-ip").returncode == 2
    unresolvable = cli("udp", "send", "no-such-host.invalid", "9")
    assert unresolvable.returncode == 1
    assert len(unresolvable.stderr.splitlines()) == 1


def test_sigterm_exits_0_and_port_in_use_exits_2() -> None:
    with udp_server() as (proc, port):
        busy = cli("udp", "serve", "--bind", "127.0.0.1", "--port", str(port))
        assert busy.returncode == 2
        assert busy.stdout == b""
        assert busy.stderr.count(b"\n") == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_sigterm_ends_serve_with_status_0_and_its_counters() -> None:
    with udp_server() as (proc, port):
        result = udp_round_trips("127.0.0.1", port, b"abcd", count=5, timeout=2.0)
        assert result.received == 5
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    # 5 probes of a 24-byte tag ("rsu:<session>:<seq>:") + "abcd" each.
    assert b'stopping: {"bytes": 140, "datagrams": 5, "send_errors": 0}' in err, err
