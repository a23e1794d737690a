"""Bytes in, messages out: the request parser (server side) and response parser (client).

Theory of operation: both parsers own one ``bytearray`` and a read offset. ``feed`` appends;
``next_request``/``next_response`` return a complete message or None ("need more data"),
advancing the offset, so several pipelined messages in one feed come out one call at a time
(RFC 9112 §9.3.2). A head is found with one ``find(b"\\r\\n\\r\\n")`` and split into lines; a
body is read by :class:`BodyReader` (Content-Length, chunked with trailers, or until EOF).
Nothing blocks and nothing here knows about sockets.
"""

from __future__ import annotations

from rawstack.engines._http_events import Headers, HttpError, Request, Response, header_tokens
from rawstack.engines._http_fields import (
    keep_alive,
    parse_chunk_size,
    parse_fields,
    parse_request_line,
    parse_status_line,
    request_framing,
    response_framing,
)

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_MAX_CHUNK_LINE = 4096  # a chunk-size line with extensions; longer is an attack, not data


class _Buffer:
    """A bytearray with a read offset; consumed bytes are dropped lazily on the next feed."""

    __slots__ = ("data", "pos")

    def __init__(self) -> None:
        self.data = bytearray()
        self.pos = 0

    def feed(self, data: bytes) -> None:
        if self.pos:
            del self.data[: self.pos]
            self.pos = 0
        self.data += data

    def pending(self) -> int:
        return len(self.data) - self.pos

    def take_head(self, limit: int) -> list[bytes] | None:
        """The lines of the next head (start line first), or None if incomplete."""
        data, pos = self.data, self.pos
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            if len(data) - pos > limit:
                raise HttpError(431, "header section too large")
            # RFC 9112 §2.2 lets a recipient accept a bare LF as a line end; we refuse it
            # (400) rather than wait forever for a CRLF CRLF that will never come.
            if data.find(b"\n\n", pos) >= 0 or data.find(b"\n\r\n", pos) >= 0:
                raise HttpError(400, "bare LF line ending")
            return None
        if end + 4 - pos > limit:
            raise HttpError(431, "header section too large")
        self.pos = end + 4
        return bytes(data[pos:end]).split(b"\r\n")

    def take_line(self, limit: int) -> bytes | None:
        end = self.data.find(b"\r\n", self.pos)
        if end < 0:
            if self.pending() > limit:
                raise HttpError(400, "line too long")
            return None
        line = bytes(self.data[self.pos : end])
        self.pos = end + 2
        return line

    def take(self, count: int) -> bytes:
        out = bytes(self.data[self.pos : self.pos + count])
        self.pos += len(out)
        return out


class BodyReader:
    """One body: ``kind`` "length" (``length`` octets), "chunked" (RFC 9112 §7.1) or
    "close" (until EOF, responses only, RFC 9112 §6.3 item 8)."""

    def __init__(self, kind: str, length: int, max_body: int, max_trailer: int) -> None:
        self.kind = kind
        self.max_body = max_body
        self.max_trailer = max_trailer
        self.parts: list[bytes] = []
        self.size = 0
        self.trailers: Headers = ()
        self.done = kind == "length" and length == 0
        self._remaining = length if kind == "length" else 0
        self._in_trailer = False
        if kind == "length" and length > max_body:
            raise HttpError(413, "content too large")

    def _add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.max_body:
            raise HttpError(413, "content too large")
        self.parts.append(data)

    def read(self, buf: _Buffer) -> None:
        if self.kind == "length":
            data = buf.take(self._remaining)
            self._remaining -= len(data)
            self.parts.append(data)
            self.done = self._remaining == 0
        elif self.kind == "close":
            self._add(buf.take(buf.pending()))
        else:
            self._read_chunked(buf)

    def _read_chunked(self, buf: _Buffer) -> None:
        while not self.done:
            if self._in_trailer:
                self._read_trailer(buf)
                return
            if self._remaining == 0:
                line = buf.take_line(_MAX_CHUNK_LINE)
                if line is None:
                    return
                size = parse_chunk_size(line)
                if size == 0:
                    self._in_trailer = True
                    continue
                if self.size + size > self.max_body:
                    raise HttpError(413, "content too large")
                self._remaining = size
            # Chunk data and its CRLF are taken together, so a missing CRLF is seen at once.
            if buf.pending() < self._remaining + 2:
                # A wrong first footer byte is already an error; say so now, not later.
                start = buf.pos + self._remaining
                if buf.pending() > self._remaining and buf.data[start] != 0x0D:
                    raise HttpError(400, "chunk data not followed by CRLF")
                return
            data = buf.take(self._remaining)
            if buf.take(2) != b"\r\n":
                raise HttpError(400, "chunk data not followed by CRLF")
            self._remaining = 0
            self._add(data)

    def _read_trailer(self, buf: _Buffer) -> None:
        if buf.pending() < 2:
            return
        if buf.data.startswith(b"\r\n", buf.pos):
            buf.pos += 2
            self.done = True
            return
        lines = buf.take_head(self.max_trailer)
        if lines is not None:
            self.trailers = parse_fields(lines)
            self.done = True

    def eof(self) -> None:
        if self.kind != "close":
            raise HttpError(400, "connection closed in the middle of a body")
        self.done = True

    def body(self) -> bytes:
        return b"".join(self.parts)


def _completed(body: BodyReader | None, buf: _Buffer, eof: bool = False) -> BodyReader | None:
    """``body`` once it has all its bytes from ``buf`` (or ends at ``eof``), else None."""
    assert body is not None
    if not body.done:
        body.read(buf)
        if not body.done:
            if not eof:
                return None
            body.eof()
    return body


class RequestParser:
    """Server side: bytes in, :class:`Request` out, :class:`HttpError` on a broken request."""

    def __init__(
        self,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buf = _Buffer()
        self._head: tuple[str, str, str, Headers, str] | None = None
        self._body: BodyReader | None = None
        self._error: HttpError | None = None

    def feed(self, data: bytes) -> None:
        self._buf.feed(data)

    @property
    def state(self) -> str:
        """ "idle" (nothing buffered), "head" (a head in progress) or "body"."""
        if self._body is not None:
            return "body"
        return "head" if self._buf.pending() else "idle"

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except HttpError as exc:
            self._error = exc
            raise

    def _next(self) -> Request | None:
        buf = self._buf
        if self._head is None:
            # RFC 9112 §2.2: ignore empty lines received before the request-line.
            while buf.data.startswith(b"\r\n", buf.pos):
                buf.pos += 2
            lines = buf.take_head(self.max_header_bytes)
            if lines is None:
                return None
            method, target, version = parse_request_line(lines[0])
            headers = parse_fields(lines[1:])
            hosts = sum(1 for name, _ in headers if name == "host")
            # RFC 9112 §3.2: exactly one Host in 1.1, never more than one.
            if hosts > 1 or (hosts == 0 and version == "1.1"):
                raise HttpError(400, "missing or repeated Host header")
            framing, length = request_framing(version, headers)
            self._head = (method, target, version, headers, framing)
            self._body = BodyReader(
                "chunked" if framing == "chunked" else "length",
                length,
                self.max_body_bytes,
                self.max_header_bytes,
            )
        body = _completed(self._body, buf)
        if body is None:
            return None
        method, target, version, headers, framing = self._head
        self._head = None
        self._body = None
        return Request(
            method=method,
            target=target,
            version=version,
            headers=headers,
            body=body.body(),
            trailers=body.trailers,
            framing=framing,
            keep_alive=keep_alive(version, headers),
        )


class ResponseParser:
    """Client side: bytes in, the final :class:`Response` out (1xx interim ones skipped)."""

    def __init__(
        self,
        request_method: str = "GET",
        max_header_bytes: int = 64 * 1024,
        max_body_bytes: int = 1 << 30,
    ) -> None:
        self.request_method = request_method
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self._buf = _Buffer()
        self._head: tuple[str, int, str, Headers] | None = None
        self._body: BodyReader | None = None
        self._eof = False
        self.interim: list[int] = []  # statuses of the 1xx responses seen

    def feed(self, data: bytes) -> None:
        self._buf.feed(data)

    def feed_eof(self) -> None:
        self._eof = True

    @property
    def started(self) -> bool:
        """True once any byte of a response has arrived."""
        return self._head is not None or self._buf.pending() > 0 or bool(self.interim)

    def next_response(self) -> Response | None:
        buf = self._buf
        while self._head is None:
            lines = buf.take_head(self.max_header_bytes)
            if lines is None:
                if self._eof:
                    raise HttpError(400, "connection closed before a complete response head")
                return None
            version, status, reason = parse_status_line(lines[0])
            headers = parse_fields(lines[1:])
            # 101 switches protocols: it is the last HTTP/1.1 message on the connection.
            if 100 <= status < 200 and status != 101:
                self.interim.append(status)
                continue
            kind, length = response_framing(self.request_method, status, headers)
            self._head = (version, status, reason, headers)
            self._body = BodyReader(kind, length, self.max_body_bytes, self.max_header_bytes)
        body = _completed(self._body, buf, self._eof)
        if body is None:
            return None
        version, status, reason, headers = self._head
        self._head = None
        self._body = None
        persistent = (
            body.kind != "close"
            and ("close" not in header_tokens(headers, "connection"))
            and (version == "1.1" or "keep-alive" in header_tokens(headers, "connection"))
        )
        return Response(
            status=status,
            reason=reason,
            version=version,
            headers=headers,
            body=body.body(),
            trailers=body.trailers,
            keep_alive=persistent,
        )
