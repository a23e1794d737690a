"""A bare-socket HTTP/1.1 client: one request, one response, driven by the one Loop.

Theory of operation: resolve, open a non-blocking TCP socket, ``connect`` (EINPROGRESS),
wait for writability, check SO_ERROR, send the serialized request, feed what arrives to a
:class:`~rawstack.engines.http.ResponseParser` until it yields the response (or EOF ends a
close-delimited body). One deadline covers the whole exchange. With a ``sink`` the body is
streamed: each piece is written to the sink as it arrives and none is held, so an endless
body costs no memory (``HttpResult.body`` is then empty).
"""

from __future__ import annotations

import base64
import errno
import os
import socket
import time
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from rawstack.engines.http import (
    Data,
    EndOfMessage,
    Headers,
    HttpError,
    Response,
    ResponseParser,
    serialize_request,
)
from rawstack.errors import ExchangeFailed, UsageError
from rawstack.peers.loop import Loop
from rawstack.sockets.inet import format_addr, open_tcp_client, resolve


@dataclass(frozen=True)
class HttpResult:
    """A response and how long it took (milliseconds from the start of the connect)."""

    status: int
    reason: str
    version: str
    headers: Headers
    body: bytes
    connect_ms: float
    ttfb_ms: float
    total_ms: float
    peer: str = ""

    @property
    def ok(self) -> bool:
        """Not an error: below 400, as curl ``--fail-with-body`` judges (a 3xx is a result)."""
        return self.status < 400

    def to_json(self) -> dict[str, Any]:
        try:
            body: Any = self.body.decode("utf-8")
        except UnicodeDecodeError:
            body = {"base64": _b64(self.body)}
        return {
            "status": self.status,
            "reason": self.reason,
            "headers": [[name, value] for name, value in self.headers],
            "body": body,
            "timing": {
                "connect_ms": round(self.connect_ms, 3),
                "ttfb_ms": round(self.ttfb_ms, 3),
                "total_ms": round(self.total_ms, 3),
            },
        }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def parse_url(url: str) -> tuple[str, int, str]:
    """``http://host[:port][/path][?query]`` -> (host, port, target); UsageError otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"bad URL {url!r}: {exc}") from None
    if parts.scheme != "http":
        raise UsageError(f"bad URL {url!r}: only http:// is supported")
    if not parts.hostname:
        raise UsageError(f"bad URL {url!r}: no host")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    if any(c <= " " or c >= "\x7f" for c in target):
        raise UsageError(f"bad URL {url!r}: the path must be visible ASCII (percent-encode it)")
    return parts.hostname, port if port is not None else 80, target


class _Exchange:
    """The state of one request/response on the loop."""

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        request: bytes,
        method: str,
        sink: IO[bytes] | None = None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.out = memoryview(request)
        self.parser = ResponseParser(method)
        self.sink = sink
        self.head: Response | None = None
        self.start = time.monotonic()
        self.connected_at = 0.0
        self.first_byte_at = 0.0
        self.result: Any = None
        self.error: ExchangeFailed | None = None

    def on_connected(self) -> None:
        self.loop.remove_writer(self.sock)
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self.fail(f"connect: {errno.errorcode.get(err, err)} ({_strerror(err)})")
            return
        self.connected_at = time.monotonic()
        self.loop.add_reader(self.sock, self.on_readable)
        self.on_writable()

    def on_writable(self) -> None:
        try:
            while self.out:
                sent = self.sock.send(self.out)
                self.out = self.out[sent:]
        except BlockingIOError:
            self.loop.add_writer(self.sock, self.on_writable)
            return
        except OSError as exc:
            self.fail(f"send: {exc.strerror or exc}")
            return
        self.loop.remove_writer(self.sock)

    def on_readable(self) -> None:
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError as exc:
            self.fail(f"recv: {exc.strerror or exc}")
            return
        if not self.first_byte_at:
            self.first_byte_at = time.monotonic()
        if data:
            self.parser.feed(data)
        else:
            self.parser.feed_eof()
        try:
            response = self._next()
        except HttpError as exc:
            self.fail(f"bad response: {exc.reason}")
            return
        except OSError as exc:
            self.fail(f"writing the body: {exc.strerror or exc}")
            return
        if response is not None:
            self.result = response
            self.loop.stop()
        elif not data:
            self.fail("connection closed before a response")

    def _next(self) -> Response | None:
        """The complete response (streamed: its head once the body has gone to the sink)."""
        if self.sink is None:
            return self.parser.next_response()
        while (event := self.parser.next_event()) is not None:
            if isinstance(event, Response):
                self.head = event
            elif isinstance(event, Data):
                self.sink.write(event.data)
            elif isinstance(event, EndOfMessage):
                return self.head
        return None

    def fail(self, message: str) -> None:
        self.error = ExchangeFailed(message)
        self.loop.stop()


def _strerror(err: int) -> str:
    return os.strerror(err)


def http_request(  # noqa: PLR0917 (the documented positional API)
    host: str,
    port: int,
    method: str = "GET",
    path: str = "/",
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    timeout: float = 5.0,
    sink: IO[bytes] | None = None,
) -> HttpResult:
    """One request over a new connection; the response, or ExchangeFailed (unresolvable,
    refused, timed out, broken response). A non-2xx status is a result, not an error.
    With ``sink`` the body is written there as it arrives instead of being held."""
    family, sockaddr = resolve(host, port, socket.SOCK_STREAM)
    host_field = host if port == 80 else f"{host}:{port}"
    if ":" in host and not host.startswith("["):
        host_field = f"[{host}]" if port == 80 else f"[{host}]:{port}"
    try:
        request = serialize_request(method, path, host_field, headers, body)
    except (ValueError, UnicodeError) as exc:
        raise UsageError(str(exc)) from None
    loop = Loop()
    sock = open_tcp_client(family)
    peer = format_addr(sockaddr)
    try:
        exchange = _Exchange(loop, sock, request, method, sink)
        code = sock.connect_ex(sockaddr)
        if code not in (0, errno.EINPROGRESS):
            raise ExchangeFailed(f"connect to {peer}: {_strerror(code)}")
        loop.add_writer(sock, exchange.on_connected)
        loop.run(until=exchange.start + timeout)
        if exchange.error is not None:
            raise ExchangeFailed(f"{peer}: {exchange.error}")
        if exchange.result is None:
            stage = "connect" if not exchange.connected_at else "response"
            raise ExchangeFailed(f"{peer}: timed out after {timeout:g} s waiting for the {stage}")
        end = time.monotonic()
        response = exchange.result
        return HttpResult(
            status=response.status,
            reason=response.reason,
            version=response.version,
            headers=response.headers,
            body=response.body,
            connect_ms=(exchange.connected_at - exchange.start) * 1000,
            ttfb_ms=(exchange.first_byte_at - exchange.start) * 1000,
            total_ms=(end - exchange.start) * 1000,
            peer=peer,
        )
    finally:
        loop.remove_reader(sock)
        loop.remove_writer(sock)
        sock.close()
        loop.close()


def http_get_url(  # noqa: PLR0917 (the documented positional API)
    url: str,
    method: str = "GET",
    body: bytes = b"",
    headers: tuple[tuple[str, str], ...] = (),
    timeout: float = 5.0,
    sink: IO[bytes] | None = None,
) -> HttpResult:
    """:func:`http_request` for a URL."""
    host, port, target = parse_url(url)
    return http_request(host, port, method, target, body, headers, timeout, sink)
