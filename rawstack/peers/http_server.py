"""The HTTP/1.1 server: bare non-blocking sockets on the one Loop, the sans-IO engine inside.

Theory of operation: the listener's reader accepts in batches; each connection owns a
:class:`~rawstack.engines.http.RequestParser` and an output buffer. Bytes read are fed to
the parser, every complete request is answered in order (pipelining, RFC 9112 §9.3.2) and
the answers are written as far as the socket takes them; the rest waits for writability.
A parser error is answered with its status and the connection is closed, write side first
with a short linger so the client reads the answer instead of a reset (RFC 9112 §9.6).
One sweep timer enforces the header timeout (408) and the idle timeout.

Routes: ``GET``/``HEAD /`` -> seed 003's page; ``POST``/``PUT /echo`` -> the body (411
without Content-Length or chunked: our choice, RFC 9110 §15.5.12, since RFC 9112 §6.3
would read an empty body); ``GET /status`` -> JSON counters; 404, 405 (with Allow), 501.
"""

from __future__ import annotations

import json
import socket
import time
from collections import Counter
from typing import Any, Callable

from rawstack.engines.http import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    HttpError,
    Request,
    RequestParser,
    serialize_response,
)
from rawstack.peers.base import log
from rawstack.peers.loop import Loop, Timer
from rawstack.sockets.inet import format_addr, open_tcp_listener, raise_nofile_limit

HELLO_PAGE = b"<h1>hello world</h1>"  # seed 003
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
MAX_PENDING_OUTPUT = 1 << 20  # stop reading a pipelining client until its answers drain
LINGER_SECONDS = 2.0
ACCEPT_BATCH = 128


def _no_status() -> bytes:
    return b"{}"


def route(
    request: Request, status_json: Callable[[], bytes] = _no_status
) -> tuple[int, list[tuple[str, str]], bytes]:
    """The application: (status, header fields, body) for one request. Pure, for tests;
    ``status_json`` is only called for /status."""
    path = request.target
    if path.startswith(("http://", "https://")):  # absolute-form, RFC 9112 §3.2.2
        slash = path.find("/", path.find("//") + 2)
        path = path[slash:] if slash >= 0 else "/"
    path = path.split("?", 1)[0]
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
        return 200, [("Content-Type", HTML)], HELLO_PAGE
    if path == "/status":
        return 200, [("Content-Type", "application/json")], status_json()
    if request.framing == "none":
        return 411, [("Content-Type", "text/plain")], b"length required\n"
    ctype = request.header("content-type") or "application/octet-stream"
    return 200, [("Content-Type", ctype)], request.body


class _Date:
    """RFC 9110 §6.6.1: an origin server with a clock sends Date; formatted once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = http_date(second)
        return self._value


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


class _Conn:
    __slots__ = (
        "closing",
        "last_io",
        "linger_since",
        "parser",
        "paused",
        "peer",
        "request_start",
        "served",
        "sock",
        "wbuf",
        "writing",
    )

    def __init__(self, sock: socket.socket, peer: str, parser: RequestParser, now: float) -> None:
        self.sock = sock
        self.peer = peer
        self.parser = parser
        self.wbuf = bytearray()
        self.closing = False  # answer pending, then close
        self.linger_since = 0.0  # write side shut, draining the read side
        self.paused = False
        self.writing = False
        self.served = 0
        self.last_io = now
        self.request_start: float | None = now  # None: idle between keep-alive requests


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
        header_timeout: float = 10.0,
        idle_timeout: float = 60.0,
        verbose: bool = False,
    ) -> None:
        self.bind = bind
        self.port = port
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.verbose = verbose
        self._loop: Loop | None = None
        self._listener: socket.socket | None = None
        self._conns: dict[int, _Conn] = {}
        self._sweeper: Timer | None = None
        self._date = _Date()
        self._started = 0.0
        self._requests = 0
        self._total = 0
        self._errors: Counter[int] = Counter()
        self.addr = ""

    # -- Server protocol ---------------------------------------------------------------
    def start(self, loop: Loop) -> dict[str, Any]:
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
            conn = _Conn(
                sock,
                format_addr(peer),
                RequestParser(self.max_header_bytes, self.max_body_bytes),
                loop.time(),
            )
            self._conns[sock.fileno()] = conn
            self._total += 1
            loop.add_reader(sock, self._reader(conn))

    def _reader(self, conn: _Conn) -> Callable[[], None]:
        return lambda: self._on_read(conn)

    def _resume_accept(self) -> None:
        if self._listener is not None and self._loop is not None:
            self._loop.add_reader(self._listener, self._accept)

    # -- reading and answering ---------------------------------------------------------
    def _on_read(self, conn: _Conn) -> None:
        try:
            data = conn.sock.recv(READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self._destroy(conn)
            return
        assert self._loop is not None
        conn.last_io = self._loop.time()
        if conn.linger_since:
            if not data:
                self._destroy(conn)
            return
        if not data:
            # The client half-closed: what it sent is still answered, then we close.
            conn.closing = True
            self._loop.remove_reader(conn.sock)
            self._flush(conn)
            return
        if conn.request_start is None:
            conn.request_start = conn.last_io
        conn.parser.feed(data)
        self._answer(conn)

    def _answer(self, conn: _Conn) -> None:
        while not conn.closing:
            try:
                request = conn.parser.next_request()
            except HttpError as exc:
                self._reply_error(conn, exc.status, exc.reason)
                break
            if request is None:
                break
            self._requests += 1
            status, headers, body = route(request, self._status_json)
            close = not request.keep_alive or status >= 500
            self._queue(
                conn,
                status,
                headers,
                body,
                send_body=request.method != "HEAD",
                close=close,
                request=request,
            )
            conn.served += 1
            conn.request_start = None if conn.parser.state == "idle" else conn.last_io
        self._flush(conn)
        if not conn.closing and len(conn.wbuf) > MAX_PENDING_OUTPUT and self._loop is not None:
            conn.paused = True
            self._loop.remove_reader(conn.sock)

    def _queue(
        self,
        conn: _Conn,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        send_body: bool,
        close: bool,
        request: Request | None,
    ) -> None:
        if status >= 400:
            self._errors[status] += 1
        fields = [("Date", self._date.now()), ("Server", "rawstack"), *headers]
        if close:
            connection = "close"
        elif request is not None and request.version == "1.0":
            connection = "keep-alive"  # RFC 9112 §9.3: an HTTP/1.0 client asked for it
        else:
            connection = ""
        conn.wbuf += serialize_response(
            status, fields, body, send_body=send_body, connection=connection
        )
        if close:
            conn.closing = True
        if self.verbose and request is not None:
            log("http", f"{conn.peer} {request.method} {request.target} -> {status}")

    def _reply_error(self, conn: _Conn, status: int, reason: str) -> None:
        if self.verbose:
            log("http", f"{conn.peer} -> {status} ({reason})")
        body = f"{status} {reason}\n".encode()
        self._queue(
            conn,
            status,
            [("Content-Type", "text/plain")],
            body,
            send_body=True,
            close=True,
            request=None,
        )

    def _status_json(self) -> bytes:
        return json.dumps(self.stats(), sort_keys=True).encode() + b"\n"

    # -- writing and closing -----------------------------------------------------------
    def _flush(self, conn: _Conn) -> None:
        loop = self._loop
        assert loop is not None
        while conn.wbuf:
            try:
                sent = conn.sock.send(conn.wbuf)
            except BlockingIOError:
                break
            except OSError:
                self._destroy(conn)
                return
            del conn.wbuf[:sent]
            conn.last_io = loop.time()
        if conn.wbuf:
            if not conn.writing:
                conn.writing = True
                loop.add_writer(conn.sock, lambda: self._flush(conn))
            return
        if conn.writing:
            conn.writing = False
            loop.remove_writer(conn.sock)
        if conn.closing:
            self._linger(conn)
        elif conn.paused:
            conn.paused = False
            loop.add_reader(conn.sock, self._reader(conn))
            self._answer(conn)

    def _linger(self, conn: _Conn) -> None:
        """Shut our side, then read and drop until the client closes or LINGER_SECONDS."""
        assert self._loop is not None
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._destroy(conn)
            return
        conn.linger_since = self._loop.time()
        self._loop.add_reader(conn.sock, self._reader(conn))

    def _destroy(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if fd < 0 or self._conns.pop(fd, None) is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
        conn.sock.close()

    # -- timeouts ----------------------------------------------------------------------
    def _schedule_sweep(self) -> None:
        assert self._loop is not None
        interval = min(1.0, max(0.05, min(self.header_timeout, self.idle_timeout) / 4))
        self._sweeper = self._loop.call_later(interval, self._sweep)

    def _sweep(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        for conn in list(self._conns.values()):
            if conn.linger_since:
                if now - conn.linger_since > LINGER_SECONDS:
                    self._destroy(conn)
            elif conn.closing or conn.wbuf:
                if now - conn.last_io > self.idle_timeout:
                    self._destroy(conn)
            elif conn.request_start is None:
                if now - conn.last_io > self.idle_timeout:
                    self._destroy(conn)  # idle keep-alive: close quietly (RFC 9112 §9.8)
            elif conn.parser.state == "body":
                if now - conn.last_io > self.idle_timeout:
                    self._timeout(conn)
            elif now - conn.request_start > self.header_timeout:
                self._timeout(conn)
        self._schedule_sweep()

    def _timeout(self, conn: _Conn) -> None:
        self._reply_error(conn, 408, "request timeout")
        self._flush(conn)
