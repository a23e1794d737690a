"""The HTTP/1.1 server: bare non-blocking sockets on the one Loop, the sans-IO engine inside.

Theory of operation: the server only moves bytes. Each connection owns a
:class:`~rawstack.engines.http.ServerConnection`, which holds every HTTP rule (keep-alive,
``Connection`` fields, 100 (Continue), error answers, deadlines, when to close), and an
output buffer. Bytes read go to the engine; each complete request is routed and the
engine's answer appended to the buffer (pipelining, RFC 9112 §9.3.2), written as far as the
socket takes it; the rest waits for writability. Once the engine says ``must_close`` and the
buffer is empty, the write side is shut first with a short linger, so the client reads the
answer instead of a reset (RFC 9112 §9.6). Every ready connection is served in one loop
wakeup, every answer a read produced goes out in one send, and the Date/Server fields are one
tuple per second, so the engine can reuse the page's serialized octets (docs/http.md, "What
a request costs").

Memory is bounded, with backpressure rather than buffering (docs/architecture.md):
a connection is read only while its unsent output is under ``max_output_bytes`` (so a
client that pipelines without reading stops being read, and TCP flow control stops it),
the engine is never asked for a request while that output is backed up, nothing is read
after a closing answer, and reading pauses on every connection while the total held across
connections (input held by the engines plus unsent output) is over ``max_buffer_bytes``.
A connection past ``max_connections`` gets 503 and is closed. One sweep timer asks each
engine what its deadlines require and drops a connection whose client has not read its
answers for ``idle_timeout``.

Routes: ``GET``/``HEAD /`` -> the hello page; ``POST``/``PUT /echo`` -> the body (411
without Content-Length or chunked: our choice, RFC 9110 §15.5.12, since RFC 9112 §6.3
would read an empty body); ``GET /status`` -> JSON counters; 404, 405 (with Allow), 501;
``OPTIONS *`` and ``CONNECT`` -> 400, as nginx answers: this origin server is no proxy
(CONNECT, RFC 9110 §9.3.6) and advertises nothing server-wide (RFC 9110 §9.3.7 leaves the
answer to ``OPTIONS *`` to the server).
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from typing import Any, Callable

from rawstack.engines.http import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_TARGET_BYTES,
    Expiry,
    Framing,
    HttpError,
    Request,
    ServerConnection,
    ServerLimits,
)
from rawstack.peers.base import log
from rawstack.peers.loop import Reactor, Timer
from rawstack.sockets.inet import format_addr, open_tcp_listener, raise_nofile_limit

HELLO_PAGE = b"<h1>hello world</h1>"
HTML = "text/html; charset=utf-8"
ROUTES: dict[str, tuple[str, ...]] = {
    "/": ("GET", "HEAD"),
    "/echo": ("POST", "PUT"),
    "/status": ("GET", "HEAD"),
}
# RFC 9110 §9: methods we recognise; any other method is 501 (§15.6.2), a known one on the
# wrong resource is 405.
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
READ_SIZE = 65536
DEFAULT_MAX_OUTPUT_BYTES = 1 << 20  # per connection: stop reading while more is unsent
DEFAULT_MAX_BUFFER_BYTES = 256 << 20  # all connections: input held plus unsent output
DEFAULT_MAX_CONNECTIONS = 4096
LINGER_SECONDS = 2.0
_monotonic = time.monotonic  # Loop.time(), one call cheaper on the hot path
ACCEPT_BATCH = 128


Answer = tuple[int, tuple[tuple[str, str], ...], bytes]
# The page's answer is one immutable value, so the engine can reuse its serialized octets.
_HELLO: Answer = (200, (("Content-Type", HTML),), HELLO_PAGE)


def _no_status() -> bytes:
    return b"{}"


def route(
    request: Request, status_json: Callable[[], bytes] = _no_status
) -> tuple[int, Sequence[tuple[str, str]], bytes]:
    """The application: (status, header fields, body) for one request. Pure, for tests;
    ``status_json`` is only called for /status."""
    path = request.target
    if path == "/" and request.method in ROUTES["/"]:
        return _HELLO  # the page, what the rules below give for it, without walking them
    if path.startswith(("http://", "https://")):  # absolute-form, RFC 9112 §3.2.2
        slash = path.find("/", path.find("//") + 2)
        path = path[slash:] if slash >= 0 else "/"
    path = path.split("?", 1)[0]
    if request.target == "*" or request.method == "CONNECT":
        return 400, [("Content-Type", "text/plain")], b"not a proxy\n"
    allowed = ROUTES.get(path)
    if request.method not in KNOWN_METHODS:
        return 501, [("Content-Type", "text/plain")], b"method not implemented\n"
    if allowed is None:
        return 404, [("Content-Type", "text/plain")], b"not found\n"
    if request.method not in allowed:
        return (
            405,
            [("Allow", ", ".join(allowed)), ("Content-Type", "text/plain")],
            b"method not allowed\n",
        )
    if path == "/":
        return _HELLO
    if path == "/status":
        return 200, [("Content-Type", "application/json")], status_json()
    if request.framing is Framing.NONE:
        return 411, [("Content-Type", "text/plain")], b"length required\n"
    ctype = request.header("content-type") or "application/octet-stream"
    return 200, [("Content-Type", ctype)], request.body


class _Date:
    """RFC 9110 §6.6.1: an origin server with a clock sends Date; formatted once a second."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._value = ""
        self._fields: tuple[tuple[str, str], ...] = ()

    def now(self) -> str:
        second = int(self._clock())
        if second != self._second:
            self._second = second
            self._value = http_date(second)
            self._fields = (("Date", self._value), ("Server", "rawstack"))
        return self._value

    def fields(self) -> tuple[tuple[str, str], ...]:
        """The fields every response starts with: one tuple per second, so a response's
        serialized octets can be reused until the Date changes."""
        if int(self._clock()) != self._second:
            self.now()
        return self._fields


# email.utils.formatdate would do, but importing it costs serve-all's start-up ~8 ms.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(seconds: float) -> str:
    """RFC 9110 §5.6.7 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(seconds)
    return (
        f"{_DAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


def _nothing() -> None:
    pass


class _Conn:
    """One connection's socket-side state; every HTTP decision is in ``engine``."""

    __slots__ = (
        "accounted",
        "engine",
        "last_sent",
        "linger_since",
        "on_read",
        "on_writable",
        "peer",
        "reading",
        "sock",
        "wbuf",
        "writing",
    )

    def __init__(self, sock: socket.socket, peer: str, engine: ServerConnection, now: float):
        self.on_read: Callable[[], None] = _nothing  # the loop's callbacks, made once
        self.on_writable: Callable[[], None] = _nothing
        self.sock = sock
        self.peer = peer
        self.engine = engine
        self.wbuf = bytearray()
        self.reading = False  # registered for readability
        self.writing = False  # registered for writability
        self.linger_since = 0.0  # write side shut: reading and dropping until the client closes
        self.last_sent = now  # last time the client took bytes (or the output began)
        self.accounted = 0  # what this connection adds to HttpServer._held


class HttpServer:
    """HTTP/1.1 server implementing :class:`rawstack.peers.base.Server`."""

    name = "http"

    def __init__(
        self,
        bind: str = "::",  # dual-stack (sockets.inet.DUAL_STACK)
        port: int = 8080,
        *,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_target_bytes: int = DEFAULT_MAX_TARGET_BYTES,
        header_timeout: float = 10.0,
        request_timeout: float = 60.0,
        idle_timeout: float = 60.0,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
        verbose: bool = False,
    ) -> None:
        self.bind = bind
        self.port = port
        self.limits = ServerLimits(
            max_header_bytes=max_header_bytes,
            max_body_bytes=max_body_bytes,
            max_target_bytes=max_target_bytes,
            header_timeout=header_timeout,
            request_timeout=request_timeout,
            idle_timeout=idle_timeout,
        )
        self.max_connections = max_connections
        self.max_output_bytes = max_output_bytes
        self.max_buffer_bytes = max_buffer_bytes
        # A connection holds at most one head, one body and one read beyond its output
        # limit plus one answer; past this something is wrong and it is dropped.
        self.max_conn_bytes = max_output_bytes + 3 * (max_header_bytes + max_body_bytes + READ_SIZE)
        self.verbose = verbose
        self._loop: Reactor | None = None
        self._listener: socket.socket | None = None
        self._conns: dict[int, _Conn] = {}
        self._starved: dict[int, _Conn] = {}  # paused while the total is over the limit
        self._held = 0  # octets held across connections (engines' input + unsent output)
        self._held_peak = 0
        self._sweeper: Timer | None = None
        self._date = _Date()
        self._started = 0.0
        self._requests = 0
        self._total = 0
        self._refused = 0
        self._dropped = 0
        self._errors: Counter[int] = Counter()
        self.addr = ""

    # -- Server protocol ---------------------------------------------------------------
    def start(self, loop: Reactor) -> dict[str, Any]:
        raise_nofile_limit()
        self._listener = open_tcp_listener(self.bind, self.port)
        self._loop = loop
        self._started = loop.time()
        self.addr = format_addr(self._listener.getsockname())
        loop.add_reader(self._listener, self._accept)
        self._schedule_sweep()
        return {"addr": self.addr}

    def close(self) -> None:
        loop = self._loop
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._conns.values()):
            self._destroy(conn)
        if self._listener is not None:
            if loop is not None:
                loop.remove_reader(self._listener)
            # Closing a listener resets the connections still in its accept queue; accept
            # and close them first so every client sees an orderly FIN, not an RST.
            while True:
                try:
                    pending, _ = self._listener.accept()
                except OSError:
                    break
                pending.close()
            self._listener.close()
            self._listener = None

    def stats(self) -> dict[str, Any]:
        now = self._loop.time() if self._loop is not None else self._started
        return {
            "requests": self._requests,
            "connections_open": len(self._conns),
            "connections_total": self._total,
            "connections_refused": self._refused,
            "connections_dropped": self._dropped,
            "buffered_bytes": self._held,
            "buffered_bytes_peak": self._held_peak,
            "errors": {str(code): n for code, n in sorted(self._errors.items())},
            "uptime_s": round(now - self._started, 3),
        }

    # -- accepting ---------------------------------------------------------------------
    def _accept(self) -> None:
        listener, loop = self._listener, self._loop
        assert listener is not None
        assert loop is not None
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # EMFILE/ENFILE: back off instead of spinning
                log("http", f"accept: {exc.strerror or exc}; pausing accepts for 100 ms")
                loop.remove_reader(listener)
                loop.call_later(0.1, self._resume_accept)
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = loop.time()
            engine = ServerConnection(self.limits, now, self._date.fields)
            conn = _Conn(sock, format_addr(peer), engine, now)
            conn.on_read = partial(self._on_read, conn)
            conn.on_writable = partial(self._on_writable, conn)
            self._total += 1
            if len(self._conns) >= self.max_connections:
                self._refused += 1
                if len(self._conns) >= self.max_connections + self.max_connections // 8 + 8:
                    sock.close()  # a flood: even the 503 costs too much
                    continue
                self._conns[sock.fileno()] = conn
                self._reject(conn, HttpError(503, "too many connections"))
                self._flush(conn)
                continue
            self._conns[sock.fileno()] = conn
            self._set_reading(conn, True)

    def _resume_accept(self) -> None:
        if self._listener is not None and self._loop is not None:
            self._loop.add_reader(self._listener, self._accept)

    # -- reading and answering ---------------------------------------------------------
    def _set_reading(self, conn: _Conn, on: bool) -> None:
        if on != conn.reading and self._loop is not None:
            conn.reading = on
            if on:
                self._loop.add_reader(conn.sock, conn.on_read)
            else:
                self._loop.remove_reader(conn.sock)

    def _on_read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._destroy(conn)
            return
        if conn.linger_since:
            if not data:
                self._destroy(conn)
            return  # read and dropped: the answer is out, nothing more is read
        conn.engine.receive_data(data, _monotonic())
        self._answer(conn)

    def _answer(self, conn: _Conn) -> None:
        engine = conn.engine
        wbuf = conn.wbuf
        # Answer while this connection's output and the total held stay under their limits;
        # one answer is always allowed when nothing is waiting, so every connection whose
        # client reads makes progress even when the total is over.
        limit = min(self.max_output_bytes, self.max_buffer_bytes - (self._held - conn.accounted))
        try:
            while not wbuf or len(wbuf) < limit:
                request = engine.next_request()
                if request is None:
                    break
                self._requests += 1
                status, headers, body = route(request, self._status_json)
                if status >= 400 or self.verbose:
                    self._note(conn, status, request.method, request.target)
                wbuf += engine.respond(request, status, headers, body)
            if not wbuf and engine.expects_continue:
                wbuf += engine.respond_continue()
        except HttpError as exc:
            self._reject(conn, exc)
        self._flush(conn)

    def _reject(self, conn: _Conn, error: HttpError) -> None:
        self._note(conn, error.status, "", error.reason)
        conn.wbuf += conn.engine.respond_error(error)

    def _note(self, conn: _Conn, status: int, method: str, what: str) -> None:
        if status >= 400:
            self._errors[status] += 1
        if self.verbose:
            log("http", f"{conn.peer} {method} {what} -> {status}".replace("  ", " "))

    def _status_json(self) -> bytes:
        return json.dumps(self.stats(), sort_keys=True).encode() + b"\n"

    # -- writing, accounting and closing -----------------------------------------------
    def _flush(self, conn: _Conn) -> None:
        """Send what the socket takes, in one send for every answer so far."""
        wbuf = conn.wbuf
        if wbuf:
            try:
                sent = conn.sock.send(wbuf)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._destroy(conn)
                return
            if sent:
                del wbuf[:sent]
                conn.last_sent = _monotonic()
        if wbuf:
            if not conn.writing:
                conn.writing = True
                assert self._loop is not None
                self._loop.add_writer(conn.sock, conn.on_writable)
        elif conn.writing:
            conn.writing = False
            assert self._loop is not None
            self._loop.remove_writer(conn.sock)
        self._account(conn)

    def _on_writable(self, conn: _Conn) -> None:
        self._flush(conn)
        if not conn.wbuf and conn.sock.fileno() >= 0 and not conn.linger_since:
            self._answer(conn)  # requests held back while the output was backed up

    def _account(self, conn: _Conn) -> None:
        """Update the totals, then decide whether this connection is read or closed."""
        if conn.sock.fileno() < 0:
            return
        engine = conn.engine
        unsent = len(conn.wbuf)
        held = unsent + engine.buffered
        total = self._held
        if held != conn.accounted:
            total = self._held = total + held - conn.accounted
            conn.accounted = held
            if total > self._held_peak:  # noqa: PLR1730 - the hot path; max() is a call
                self._held_peak = total
            if held > self.max_conn_bytes:
                log("http", f"{conn.peer}: dropped, holding {held} bytes")
                self._dropped += 1
                self._destroy(conn)
                return
        if engine.must_close:
            if not unsent:
                self._linger(conn)
                return
            want = False
        else:
            want = unsent < self.max_output_bytes and engine.wants_input
        if want and total > self.max_buffer_bytes:
            self._starved[conn.sock.fileno()] = conn
            want = False
        if want != conn.reading:
            self._set_reading(conn, want)
        if self._starved and total <= self.max_buffer_bytes // 2:
            self._feed_starved()

    def _feed_starved(self) -> None:
        starved, self._starved = self._starved, {}
        for conn in starved.values():
            if conn.sock.fileno() >= 0 and not conn.linger_since:
                self._answer(conn)  # requests held back while the total was over

    def _linger(self, conn: _Conn) -> None:
        """Shut our side, then read and drop until the client closes or LINGER_SECONDS."""
        if conn.linger_since:
            return
        assert self._loop is not None
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._destroy(conn)
            return
        conn.linger_since = self._loop.time()
        self._set_reading(conn, True)

    def _destroy(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0 or self._conns.pop(fd, None) is None:
            return
        self._starved.pop(fd, None)
        self._held -= conn.accounted
        conn.accounted = 0
        if self._loop is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        conn.sock.close()
        if self._starved and self._held <= self.max_buffer_bytes // 2:
            self._feed_starved()

    # -- timeouts ----------------------------------------------------------------------
    def _schedule_sweep(self) -> None:
        assert self._loop is not None
        limits = self.limits
        shortest = min(limits.header_timeout, limits.request_timeout, limits.idle_timeout)
        self._sweeper = self._loop.call_later(min(1.0, max(0.05, shortest / 4)), self._sweep)

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for conn in list(self._conns.values()):
            if conn.linger_since:
                if now - conn.linger_since > LINGER_SECONDS:
                    self._destroy(conn)
            elif conn.wbuf:
                if now - conn.last_sent > self.limits.idle_timeout:
                    self._destroy(conn)  # the client stopped reading its answers
            else:
                expiry = conn.engine.expired(now)
                if expiry is Expiry.CLOSE:
                    self._destroy(conn)
                elif expiry is Expiry.TIMEOUT:
                    self._reject(conn, HttpError(408, "request timeout"))
                    self._flush(conn)
        self._schedule_sweep()
