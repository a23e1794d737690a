"""`rawstack http serve` and `rawstack http get` on loopback (127.0.0.1, ephemeral ports).

No root needed: every server is a subprocess started with ``--port 0`` and is used only
once its JSON ready line has arrived; every process is stopped in a ``finally``.
"""

from __future__ import annotations

import json
import random
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import h11
import pytest
from _loopback import RAWSTACK, loopback_server, need, read_line, stop

from rawstack.engines.http import ResponseParser
from rawstack.errors import ExchangeFailed
from rawstack.peers.http_client import http_request


def http_server(*options: str) -> AbstractContextManager[tuple[subprocess.Popen[bytes], int]]:
    """A `rawstack http serve` subprocess on 127.0.0.1 and its port, stopped on exit."""
    return loopback_server("http", *options)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """One shared server for the tests that do not stop it."""
    with http_server() as running:
        yield running


@pytest.fixture
def port(server: tuple[subprocess.Popen[bytes], int]) -> Iterator[int]:
    """The shared server's port; the server must still be alive after each test."""
    yield server[1]
    assert server[0].poll() is None, "the server died"


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [need("curl"), "-sS", "--max-time", "10", *args],
        capture_output=True,
        check=True,
        timeout=20,
    )


def status(port: int) -> dict[str, Any]:
    result = http_request("127.0.0.1", port, path="/status")
    doc: dict[str, Any] = json.loads(result.body)
    return doc


def exchange(port: int, raw: bytes, method: str = "GET", timeout: float = 5.0) -> bytes:
    """Send raw bytes, half-close, return everything the server sends before closing."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


# -- curl ------------------------------------------------------------------------------


def test_curl_reuses_one_connection_for_two_urls(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    out = (
        curl(
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}\n",
            f"{base}/",
            f"{base}/status",
        )
        .stdout.decode()
        .split("\n")
    )
    assert out[:2] == ["200 1", "200 0"]  # the second URL used the first connection


def test_curl_get_and_head(port: int) -> None:
    got = curl("-i", f"http://127.0.0.1:{port}/").stdout
    head, body = got.split(b"\r\n\r\n", 1)
    assert body == b"<h1>hello world</h1>"
    assert b"Content-Type: text/html; charset=utf-8" in head
    head_only = curl("-I", f"http://127.0.0.1:{port}/").stdout
    assert b"Content-Length: 20" in head_only
    assert head_only.endswith(b"\r\n\r\n")


def test_curl_post_echo(port: int) -> None:
    assert curl("--data-binary", "hello there", f"http://127.0.0.1:{port}/echo").stdout == (
        b"hello there"
    )


def test_curl_chunked_upload(port: int, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(300_000)
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    got = curl(
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        f"@{src}",
        f"http://127.0.0.1:{port}/echo",
    ).stdout
    assert got == data


def test_curl_http10(port: int) -> None:
    got = curl("-0", "-i", f"http://127.0.0.1:{port}/").stdout
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Connection: close" in got


# -- other clients ---------------------------------------------------------------------


def test_h11_client_two_requests_on_one_connection(port: int) -> None:
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for method, target, body in (("GET", "/", b""), ("PUT", "/echo", b"from h11")):
            headers = [("Host", "t"), ("Content-Length", str(len(body)))]
            sock.sendall(conn.send(h11.Request(method=method, target=target, headers=headers)))
            sock.sendall(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
            response, got = None, b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    got += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert response is not None
            assert response.status_code == 200
            assert got == (b"<h1>hello world</h1>" if method == "GET" else body)
            conn.start_next_cycle()


def test_pipelined_requests_answered_in_order(port: int) -> None:
    raw = (
        b"".join(b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n" % p for p in (b"", b"status", b"missing"))
        + b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: close\r\n\r\nend"
    )
    parser = ResponseParser()
    parser.feed(exchange(port, raw))
    parser.feed_eof()
    statuses = []
    while (response := parser.next_response()) is not None:
        statuses.append((response.status, response.body if response.status != 200 else b""))
        if not response.keep_alive:
            break
    assert [s for s, _ in statuses] == [200, 200, 404, 200]


# -- our client ------------------------------------------------------------------------


def test_our_client_against_our_server(port: int) -> None:
    hello = http_request("127.0.0.1", port)
    assert (hello.status, hello.body) == (200, b"<h1>hello world</h1>")
    assert 0 <= hello.connect_ms <= hello.ttfb_ms <= hello.total_ms
    echo = http_request("127.0.0.1", port, "POST", "/echo", b"\x00\xffbinary")
    assert echo.body == b"\x00\xffbinary"
    assert http_request("127.0.0.1", port, path="/nope").status == 404
    assert http_request("127.0.0.1", port, "DELETE", "/").status == 405


def test_cli_get_json_and_exit_codes(port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    ok = subprocess.run(
        [*RAWSTACK, "http", "get", f"{base}/echo", "-d", "hi", "--json"],
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert (doc["status"], doc["body"]) == (200, "hi")
    assert set(doc["timing"]) == {"connect_ms", "ttfb_ms", "total_ms"}
    missing = subprocess.run(
        [*RAWSTACK, "http", "get", f"{base}/nope"], capture_output=True, check=False, timeout=30
    )
    assert (missing.returncode, missing.stdout) == (1, b"not found\n")
    bad = subprocess.run(
        [*RAWSTACK, "http", "get", "ftp://x/"], capture_output=True, check=False, timeout=30
    )
    assert bad.returncode == 2
    assert len(bad.stderr.splitlines()) == 1


def test_cli_get_refused_is_one_line_exit_1() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # bound, never listening: connect is refused
        run = subprocess.run(
            [*RAWSTACK, "http", "get", f"http://127.0.0.1:{closed_port}/"],
            capture_output=True,
            check=False,
            timeout=30,
        )
    assert run.returncode == 1
    assert len(run.stderr.splitlines()) == 1
    assert b"refused" in run.stderr.lower()


def test_our_client_against_python_http_server(tmp_path: Path) -> None:
    (tmp_path / "file.bin").write_bytes(b"served by http.server\n" * 100)
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "--bind", "127.0.0.1", "0"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = read_line(proc.stdout, 15).decode()  # "Serving HTTP on 127.0.0.1 port N ..."
        http_port = int(line.split(" port ")[1].split()[0])
        got = http_request("127.0.0.1", http_port, path="/file.bin")
        assert (got.status, got.body) == (200, b"served by http.server\n" * 100)
        assert http_request("127.0.0.1", http_port, "HEAD", "/file.bin").body == b""
        assert http_request("127.0.0.1", http_port, path="/absent").status == 404
    finally:
        stop(proc)


# -- load and abuse --------------------------------------------------------------------


def test_1000_concurrent_keep_alive_connections(port: int) -> None:
    count = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 100:  # this test process holds the client ends
        if hard != resource.RLIM_INFINITY and hard < count + 100:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {count + 100}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count + 100, hard))
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(sock)
        for round_ in range(2):  # two requests each: the connections really are kept alive
            for sock in socks:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            for sock in socks:
                parser = ResponseParser()
                response = None
                while response is None:
                    parser.feed(sock.recv(4096))
                    response = parser.next_response()
                assert (response.status, response.body) == (200, b"<h1>hello world</h1>")
            if round_ == 0:
                assert status(port)["connections_open"] >= count + 1
    finally:
        for sock in socks:
            sock.close()


MALFORMED = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\nHost: t\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n", 413),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 20000 + b"\r\n\r\n", 431),
    (b"POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", 411),
    (b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: br, chunked\r\n\r\n", 501),
]


@pytest.mark.parametrize(("raw", "code"), MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_requests_get_their_status(port: int, raw: bytes, code: int) -> None:
    reply = exchange(port, raw)
    assert reply.startswith(b"HTTP/1.1 %d " % code), reply[:80]


def test_random_requests_never_stop_the_server(port: int) -> None:
    rng = random.Random(2024)
    base = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
    for _ in range(150):
        if rng.random() < 0.5:
            raw = rng.randbytes(rng.randint(0, 300))
        else:  # a valid request with a few bytes flipped
            flipped = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                flipped[rng.randrange(len(flipped))] = rng.randrange(256)
            raw = bytes(flipped)
        reply = exchange(port, raw)
        assert reply == b"" or reply.startswith(b"HTTP/1.1 "), reply[:80]
    assert http_request("127.0.0.1", port).status == 200
    assert sum(status(port)["errors"].values()) > 0


def test_slow_headers_get_408() -> None:
    with http_server("--header-timeout", "0.5") as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            start = time.monotonic()
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # the head never ends
            reply = b""
            while chunk := sock.recv(4096):
                reply += chunk
            elapsed = time.monotonic() - start
        assert reply.startswith(b"HTTP/1.1 408 ")
        assert 0.4 <= elapsed < 5
        assert http_request("127.0.0.1", port).status == 200


def test_limits_are_options() -> None:
    with http_server("--max-body-bytes", "10", "--max-header-bytes", "200") as (_, port):
        assert http_request("127.0.0.1", port, "POST", "/echo", b"x" * 10).status == 200
        assert http_request("127.0.0.1", port, "POST", "/echo", b"x" * 11).status == 413
        big = (("X-Big", "y" * 300),)
        assert http_request("127.0.0.1", port, headers=big).status == 431


# -- lifecycle -------------------------------------------------------------------------


def test_sigterm_exits_0_after_one_ready_line() -> None:
    with http_server() as (proc, port):
        assert http_request("127.0.0.1", port).status == 200
        idle = socket.create_connection(("127.0.0.1", port))  # an open connection at stop
        try:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert proc.stdout is not None
            assert proc.stdout.read() == b""  # nothing after the one ready line
            assert idle.recv(10) == b""  # the server closed it
        finally:
            idle.close()


def test_port_in_use_is_one_line_exit_2() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        run = subprocess.run(
            [*RAWSTACK, "http", "serve", "--bind", "127.0.0.1", "--port", str(busy)],
            capture_output=True,
            check=False,
            timeout=30,
        )
    assert run.returncode == 2
    assert run.stdout == b""
    assert run.stderr.count(b"\n") == 1
    assert b"in use" in run.stderr


def test_timeout_is_an_exchange_failure() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as mute:
        mute.bind(("127.0.0.1", 0))
        mute.listen()  # accepts (in the kernel) but never answers
        with pytest.raises(ExchangeFailed, match="timed out"):
            http_request("127.0.0.1", mute.getsockname()[1], timeout=0.3)
