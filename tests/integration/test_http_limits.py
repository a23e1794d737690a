"""The HTTP server under hostile and unusual input, on the wire between two namespaces:
the server in node b (10.0.0.2), the clients in node a. Each test starts its own server
with the options it needs; every expectation is a status line or a byte count, and the
only clocks are generous deadlines."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from rawstack_harness.clients import rawstack, rawstack_argv
from rawstack_harness.supervise import read_ready

from rawstack.engines.http import ResponseParser

pytestmark = pytest.mark.netns
PORT = 8080
B = "10.0.0.2"


@contextmanager
def serving(net: Any, *options: str) -> Iterator[subprocess.Popen[bytes]]:
    """``rawstack http serve`` in node b with ``options``, stopped on exit."""
    proc = net["b"].popen(
        rawstack_argv("http", "serve", "--port", str(PORT), *options),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        read_ready(proc, 1, 20)
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        assert proc.stdout is not None
        proc.stdout.close()


def connect(net: Any, timeout: float = 10.0, rcvbuf: int = 0) -> socket.socket:
    sock: socket.socket = net["a"].socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # a small window, so the server's answers back up instead of being absorbed
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect((B, PORT))
    return sock


def read_all(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def exchange(net: Any, *parts: bytes, each_read: bool = False) -> bytes:
    """Send ``parts``, half-close, return all the server sends. With ``each_read``, a part
    goes only once the server has read all before it, so it really sees them apart."""
    with connect(net) as sock:
        for i, part in enumerate(parts):
            if i and each_read:
                wait_until_read(net, sock)
            sock.sendall(part)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def server_end(net: Any, sock: socket.socket) -> list[int]:
    """The unread bytes of the server's end of ``sock``'s connection, as ``ss`` in b shows
    it while ESTABLISHED: ``[n]``, or ``[]`` once the server has closed it."""
    port = sock.getsockname()[1]
    argv = ["ss", "-Htn", "state", "established", f"( sport = :{PORT} and dport = :{port} )"]
    rows = net["b"].run(argv, capture_output=True, text=True).stdout.split("\n")
    return [int(row.split()[0]) for row in rows if row.strip()]


def wait_until_read(net: Any, sock: socket.socket, timeout: float = 20.0) -> None:
    """Until the server's end of ``sock``'s connection has nothing unread, or has left
    ESTABLISHED: the server answered and closed it early, which is also an outcome."""
    deadline = time.monotonic() + timeout
    while (queues := server_end(net, sock)) not in ([0], []):
        assert time.monotonic() < deadline, f"the server left {queues} bytes unread"
        time.sleep(0.005)


def push_until_refused(sock: socket.socket, data: bytes, limit: int, stall: float) -> int:
    """Send ``data`` over and over on non-blocking ``sock`` (always resuming where the last
    send stopped), up to ``limit`` bytes, until ``stall`` seconds pass without a byte taken;
    the last try comes after that time, so a pusher the scheduler held up cannot stop early.
    Returns the bytes taken."""
    pushed, last_progress = 0, time.monotonic()
    while pushed < limit:
        try:
            pushed += sock.send(data[pushed % len(data) :])
            last_progress = time.monotonic()
        except BlockingIOError:
            if time.monotonic() - last_progress > stall:
                break
            time.sleep(0.01)
    return pushed


def status_line(reply: bytes) -> bytes:
    return reply.split(b"\r\n", 1)[0]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# -- item 1: memory is bounded, with backpressure --------------------------------------

# A server that reads takes a client's bytes at hundreds of MB/s; one that has stopped takes
# none. A second without a byte taken, checked by one more send after it, tells them apart
# even when the scheduler holds one of the two up for a while.
STALL = 1.0


def test_a_client_that_pipelines_without_reading_cannot_grow_the_server(net: Any) -> None:
    with serving(net) as proc:
        before = rss_kib(proc.pid)
        sock = connect(net, rcvbuf=4096)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3000)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            sock.setblocking(False)
            pushed = push_until_refused(sock, b"x" * 65536, 200 << 20, STALL)
            grown_mib = (rss_kib(proc.pid) - before) / 1024
        finally:
            sock.close()
        # Before the fix the server read and kept everything: RSS grew by what was pushed.
        # Now it either stops reading (answers backed up) or, once they are out, reads and
        # drops during its lingering close; either way nothing accumulates.
        assert pushed > 0
        assert grown_mib < 48, f"RSS grew {grown_mib:.0f} MiB while {pushed >> 20} MiB pushed"


def test_a_client_that_pipelines_without_end_is_not_read_while_its_answers_wait(
    net: Any,
) -> None:
    with serving(net) as proc:
        before = rss_kib(proc.pid)
        sock = connect(net, rcvbuf=4096)
        try:
            sock.setblocking(False)
            requests = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2400  # 64 KiB of GETs
            pushed = push_until_refused(sock, requests, 100 << 20, STALL)  # whole requests
            grown_mib = (rss_kib(proc.pid) - before) / 1024
            stats = rawstack(net["a"], "http", "get", f"http://{B}:{PORT}/status", "--json")
        finally:
            sock.close()
    # Reading stops once 1 MiB of answers wait: TCP then stops the client (a few MiB of
    # kernel buffers later). Reading on would have kept all 100 MiB of requests.
    assert pushed < (40 << 20), f"{pushed >> 20} MiB of requests were taken"
    assert grown_mib < 48, f"RSS grew {grown_mib:.0f} MiB"
    # Backpressure, not the last-resort drop of a connection holding too much, did it.
    doc = json.loads(json.loads(stats.stdout)["body"])
    assert (doc["connections_dropped"], doc["errors"]) == (0, {})


def test_the_total_held_across_connections_is_bounded(net: Any) -> None:
    # Eight clients pipeline answers they never read. Each connection alone may hold 4 MiB
    # of answers; the total may not pass 256 KiB by more than a read per connection.
    limit, count = 256 << 10, 8
    with serving(net, "--max-buffer-bytes", str(limit), "--max-output-bytes", "4194304") as _:
        socks = [connect(net, rcvbuf=4096) for _ in range(count)]
        try:
            request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 6000  # ~1 MB of answers each
            for sock in socks:
                sock.setblocking(False)
            deadline = time.monotonic() + 3
            sent = [0] * count
            while time.monotonic() < deadline and min(sent) < len(request):
                for i, sock in enumerate(socks):
                    with suppress(BlockingIOError):
                        sent[i] += sock.send(request[sent[i] :])
                time.sleep(0.01)
            time.sleep(0.5)
            stats = rawstack(net["a"], "http", "get", f"http://{B}:{PORT}/status", "--json")
        finally:
            for sock in socks:
                sock.close()
    peak = json.loads(json.loads(stats.stdout)["body"])["buffered_bytes_peak"]
    assert limit < peak < limit + count * 65536 + 65536, peak


def test_a_client_that_never_reads_its_answers_is_dropped(net: Any) -> None:
    with serving(net, "--idle-timeout", "0.4") as _:
        sock = connect(net, rcvbuf=4096)
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 3000)  # ~450 KB of answers
            time.sleep(0.2)
            start = time.monotonic()
            sock.settimeout(15)
            got = 0
            with suppress(ConnectionResetError):
                while chunk := sock.recv(65536):  # read now: the stream ends early
                    got += len(chunk)
                    if got == len(chunk):
                        # Stall once more, until the server lets go of the connection (its
                        # 0.4 s write timeout); one that never does fails here.
                        deadline = time.monotonic() + 15
                        while server_end(net, sock):
                            assert time.monotonic() < deadline, "the stalled client was kept"
                            time.sleep(0.01)
        finally:
            sock.close()
        assert got < 3000 * 100, "every answer arrived: the stalled client was never dropped"
        assert time.monotonic() - start < 20


# -- the connection rules, on the wire (the engine's unit tests pin them too) ------------


def test_a_5xx_answer_closes_the_connection(net: Any) -> None:
    with serving(net) as _:
        reply = exchange(
            net, b"BREW / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"
        )
    assert status_line(reply) == b"HTTP/1.1 501 Not Implemented"
    assert b"\r\nConnection: close\r\n" in reply
    assert reply.count(b"HTTP/1.1 ") == 1  # the pipelined GET after it is never answered


def test_http_1_0_keep_alive_is_confirmed_and_kept(net: Any) -> None:
    request = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    with serving(net) as _, connect(net) as sock:
        for _ in range(2):  # the same connection twice: it really stayed open
            sock.sendall(request)
            parser = ResponseParser()
            response = None
            while response is None:
                parser.feed(sock.recv(4096))
                response = parser.next_response()
            assert (response.status, response.header("connection")) == (200, "keep-alive")


def test_connection_close_is_the_last_answer(net: Any) -> None:
    with serving(net) as _:
        reply = exchange(
            net,
            b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
        )
    assert reply.count(b"HTTP/1.1 200 OK") == 1
    assert b"\r\nConnection: close\r\n" in reply


# -- item 2: whole-request deadline and a connection cap -------------------------------


def test_a_body_sent_one_byte_at_a_time_gets_408_at_the_request_deadline(net: Any) -> None:
    with serving(net, "--request-timeout", "0.3", "--idle-timeout", "30") as _:
        socks = [connect(net) for _ in range(5)]
        try:
            for sock in socks:
                sock.sendall(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
            start = time.monotonic()
            replies = {id(s): b"" for s in socks}
            while time.monotonic() - start < 8 and not all(replies.values()):
                for sock in socks:
                    sock.sendall(b"a")  # a byte every 0.2 s: the idle timer never fires
                    sock.settimeout(0.04)
                    with suppress(TimeoutError, socket.timeout):
                        replies[id(sock)] += sock.recv(4096)
            assert all(status_line(r) == b"HTTP/1.1 408 Request Timeout" for r in replies.values())
        finally:
            for sock in socks:
                sock.close()


def test_past_max_connections_a_connection_gets_503(net: Any) -> None:
    with serving(net, "--max-connections", "3") as _:
        held = [connect(net) for _ in range(3)]
        try:
            for sock in held:  # each is accepted and served
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                assert status_line(sock.recv(4096)) == b"HTTP/1.1 200 OK"
            with connect(net) as extra:
                assert status_line(read_all(extra)) == b"HTTP/1.1 503 Service Unavailable"
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while True:  # once they are gone, connections are accepted again
            reply = exchange(net, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            if status_line(reply) == b"HTTP/1.1 200 OK" or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert status_line(reply) == b"HTTP/1.1 200 OK"


# -- item 3: Expect: 100-continue ------------------------------------------------------


def test_expect_100_continue_is_answered_before_the_body(net: Any) -> None:
    with serving(net) as _, connect(net) as sock:
        sock.sendall(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        assert sock.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        parser = ResponseParser("POST")
        response = None
        while response is None:
            parser.feed(sock.recv(4096))
            response = parser.next_response()
        assert (response.status, response.body) == (200, b"hello")


def test_curl_does_not_wait_for_100_continue(net: Any, tmp_path: Any) -> None:
    if not any(os.access(os.path.join(d, "curl"), os.X_OK) for d in os.environ["PATH"].split(":")):
        pytest.skip("curl is not installed")
    data = tmp_path / "body"
    data.write_bytes(b"z" * 5000)
    with serving(net) as _:
        # curl waits --expect100-timeout (10 s here) for the 100 before sending the body.
        done = net["a"].run(
            ["curl", "-sS", "--expect100-timeout", "10", "-H", "Expect: 100-continue",
             "--data-binary", f"@{data}", "-w", "\n%{time_total}", f"http://{B}:{PORT}/echo"],
            capture_output=True, timeout=30,
        )  # fmt: skip
    body, _, total = done.stdout.rpartition(b"\n")
    assert done.returncode == 0, done.stderr
    assert body == b"z" * 5000
    assert float(total) < 5


# -- items 4-7: what nginx and the RFCs answer -----------------------------------------

WIRE = [
    (b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", b"414"),  # RFC 9112 §3
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", b"400"),  # RFC 9112 §3.2: invalid Host
    (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", b"400"),  # empty Host, as nginx
    (b"GET / HTTP/1.1\r\n\r\n", b"400"),  # no Host in 1.1
    (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", b"200"),
    (b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", b"400"),  # as nginx
    (b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", b"400"),  # as nginx: not a proxy
    (b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", b"400"),  # asterisk-form is for OPTIONS only
]


@pytest.mark.parametrize(("raw", "code"), WIRE, ids=range(len(WIRE)))
def test_statuses_on_the_wire(net: Any, raw: bytes, code: bytes) -> None:
    with serving(net) as _:
        assert status_line(exchange(net, raw)).split(b" ")[1] == code


@pytest.mark.parametrize(
    "raw",
    [
        b"GET / HTTP/2.1\r\nH: a\n\r\n\r\n",  # the example that once gave 505 whole, 400 split
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\n\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n",
    ],
)
def test_the_status_does_not_depend_on_how_the_bytes_arrive(net: Any, raw: bytes) -> None:
    with serving(net) as _:
        whole = status_line(exchange(net, raw))
        split = status_line(exchange(net, raw[:-2], raw[-2:], each_read=True))
        trickled = status_line(exchange(net, *(raw[i : i + 1] for i in range(len(raw)))))
    assert whole == split == trickled, (whole, split, trickled)


def test_a_connection_that_never_sends_a_byte_is_closed_without_a_reply(net: Any) -> None:
    with serving(net, "--header-timeout", "0.2") as _, connect(net) as sock:
        start = time.monotonic()
        assert read_all(sock) == b""  # no 408: nothing was asked
        assert time.monotonic() - start < 8
        with connect(net) as slow:  # a request that started and stalled still gets 408
            slow.sendall(b"GET / HTTP/1.1\r\n")
            assert status_line(read_all(slow)) == b"HTTP/1.1 408 Request Timeout"


# -- item 16: the client streams and exits like curl --fail-with-body ------------------

ENDLESS = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8090)); s.listen(); print("ready", flush=True)
c, _ = s.accept(); c.recv(65536)
c.sendall(b"HTTP/1.1 200 OK\\r\\n\\r\\n")  # close-delimited: the body ends at EOF
chunk = b"y" * 65536
for _ in range(int(sys.argv[1]) // 65536):
    c.sendall(chunk)
c.close()
"""


def test_http_get_streams_a_large_body_to_a_file(net: Any, tmp_path: Any) -> None:
    size = 300 << 20
    server = net["b"].popen([sys.executable, "-c", ENDLESS, str(size)], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert server.stdout.readline() == b"ready\n"
        out = tmp_path / "body.bin"
        script = (
            "import resource, subprocess, sys; "
            "r = subprocess.run(sys.argv[1:]).returncode; "
            "print(r, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
        )
        argv = rawstack_argv("http", "get", f"http://{B}:8090/", "-o", str(out), "--timeout", "60")
        done = net["a"].run([sys.executable, "-c", script, *argv], capture_output=True, timeout=90)
        code, maxrss_kib = done.stdout.split()
        assert int(code) == 0, done.stderr
        assert out.stat().st_size == size
        # Holding the body would need 300 MiB; streamed, the client stays small.
        assert int(maxrss_kib) < 120 * 1024, f"client max RSS {int(maxrss_kib) >> 10} MiB"
    finally:
        server.kill()
        server.wait(10)
        assert server.stdout is not None
        server.stdout.close()


def test_http_get_exits_like_curl_fail_with_body(net: Any, tmp_path: Any) -> None:
    (tmp_path / "dir").mkdir()
    server = net["b"].popen(
        [sys.executable, "-m", "http.server", "--bind", B, "8091"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 20
        while True:  # http.server prints nothing on stderr until a request; poll the port
            probe = rawstack(net["a"], "http", "get", f"http://{B}:8091/absent")
            if b"refused" not in probe.stderr.encode() or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        redirect = rawstack(net["a"], "http", "get", f"http://{B}:8091/dir")
        assert redirect.returncode == 0, redirect.stderr  # 301: a result, not a failure
        missing = rawstack(net["a"], "http", "get", f"http://{B}:8091/absent")
        assert missing.returncode == 1
        assert "404" in missing.stderr
        assert missing.stdout  # the error page is still written (--fail-with-body)
    finally:
        server.kill()
        server.wait(10)
        server.stderr.close()
