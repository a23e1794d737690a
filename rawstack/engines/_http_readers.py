"""Bytes in, messages out: the request parser (server side) and response parser (client).

Theory of operation: both parsers own one ``bytearray`` and a read offset. ``feed`` appends;
``next_request``/``next_response`` return a complete message or None ("need more data"),
advancing the offset, so several pipelined messages in one feed come out one call at a time
(RFC 9112 §9.3.2). A head (or trailer section) is read by :class:`HeadReader`; a body by the
reader that :data:`READERS` names for its :class:`Framing`, as h11's ``_readers`` does.

**The verdict never depends on segmentation.** Every rule fires at one byte of the stream:
a bare LF (RFC 9112 §2.2) at that LF, the header limit (431) at the first byte past it, a
too-long request-target (414, RFC 9112 §3) at its first byte past the limit, a malformed
line (400/505) at the LF that ends it. A parser reports the rule that fires first, so the
same bytes give the same status however they arrive: fed whole or one byte at a time
(a property test holds this). The common case, a whole head that fits and has no bare
LF, takes a fast path of one ``find`` and one ``split`` that gives the same answer; and a
head byte-identical to the last bodiless one that took it gives an equal Request without
being parsed again (a keep-alive client repeats its head), since a Request is a pure function
of those octets and the parser's limits.

A parser that raised :class:`HttpError` stays failed (the error latch): the framing of what
follows is unknown. Nothing blocks and nothing here knows about sockets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, Union

from rawstack.engines._http_events import (
    Data,
    EndOfMessage,
    Framing,
    Headers,
    HttpError,
    ParserState,
    Request,
    Response,
    header_tokens,
)
from rawstack.engines._http_fields import (
    keep_alive,
    parse_chunk_size,
    parse_field_line,
    parse_fields,
    parse_request_line,
    parse_status_line,
    request_framing,
    response_framing,
    valid_host,
)

DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# nginx's large_client_header_buffers (8 KiB) bounds its request line the same way.
DEFAULT_MAX_TARGET_BYTES = 8 * 1024
# A head remembered for the next one is at most this long, so what a connection keeps beyond
# its accounted input stays small (a longer head is parsed every time).
MEMO_MAX_HEAD = 2048
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

    def take_line(self, limit: int) -> bytes | None:
        """The next CRLF-terminated line; 400 once it is known to be longer than ``limit``."""
        end = self.data.find(b"\r\n", self.pos)
        if end < 0:
            if self.pending() > limit:
                raise HttpError(400, "line too long")
            return None
        if end - self.pos > limit:
            raise HttpError(400, "line too long")
        line = bytes(self.data[self.pos : end])
        self.pos = end + 2
        return line

    def take(self, count: int) -> bytes:
        out = bytes(self.data[self.pos : self.pos + count])
        self.pos += len(out)
        return out


def _target_overflow(data: bytearray, start: int, end: int, max_target: int) -> int:
    """The index of the first request-target byte past ``max_target`` in the request line
    ``data[start:end]``, or -1. The target runs from the first SP (if it comes before any
    CR/LF) to the next SP, CR or LF."""
    sp = data.find(b" ", start, end)
    if sp < 0:
        return -1
    cut = data.find(b"\r", start, sp)
    if cut >= 0 or data.find(b"\n", start, sp) >= 0:
        return -1
    first = sp + 1
    stop = min(end, first + max_target + 1)
    for sep in (b" ", b"\r", b"\n"):
        found = data.find(sep, first, stop)
        if found >= 0:
            stop = found
    return first + max_target if stop - first > max_target else -1


class HeadReader:
    """One head (start line, field lines, empty line) or trailer section.

    ``on_line`` is called with each complete line in order as soon as its CRLF has arrived,
    so a line's own verdict comes before any rule that fires later in the stream; on the
    fast path, ``on_lines`` (if given) takes all the lines of the section at once instead.
    ``limit`` counts every octet of the section, CRLFs included (431 past it).
    """

    __slots__ = ("limit", "max_target", "on_line", "on_lines", "size", "started")

    def __init__(
        self,
        limit: int,
        on_line: Callable[[bytes], None],
        max_target: int = 0,
        on_lines: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        self.limit = limit
        self.on_line = on_line
        self.on_lines = on_lines
        self.max_target = max_target  # > 0: the first line is a request line (414)
        self.size = 0  # octets of this section consumed so far
        self.started = False  # a line has been taken

    def reset(self) -> None:
        """Ready for the next section, of the same kind."""
        self.size = 0
        self.started = False

    def read(self, buf: _Buffer) -> bool:
        """True once the section's empty line has been consumed."""
        data, pos = buf.data, buf.pos
        if pos >= len(data):
            return False
        if not self.started:
            if data.startswith(b"\r\n", pos):  # an empty section (no trailer fields)
                buf.pos += 2
                self.size = 2
                self.started = True
                return True
            # Fast path: the whole section is here, fits, and has no bare LF or long target.
            end = data.find(b"\r\n\r\n", pos)
            if end >= 0 and end + 4 - pos <= self.limit:
                head = bytes(data[pos:end])
                lines = head.split(b"\r\n")
                if head.count(b"\n") == len(lines) - 1 and (
                    not self.max_target
                    or len(lines[0]) <= self.max_target
                    or _target_overflow(data, pos, pos + len(lines[0]), self.max_target) < 0
                ):
                    buf.pos = end + 4
                    self.started = True
                    if self.on_lines is not None:
                        self.on_lines(lines)
                    else:
                        for line in lines:
                            self.on_line(line)
                    return True
        while True:
            if self._read_line(buf):
                return True
            if buf.pos == pos:  # no complete line: wait for more bytes
                return False
            pos = buf.pos

    def _read_line(self, buf: _Buffer) -> bool:
        """Consume one line if its verdict is known; True if it was the empty line."""
        data, pos = buf.data, buf.pos
        crlf = data.find(b"\r\n", pos)
        end = crlf if crlf >= 0 else len(data)  # the line's content is data[pos:end]
        last = crlf + 1 if crlf >= 0 else len(data) - 1  # its last byte present
        # The candidate early rules, each at the byte where it fires; the first one wins.
        fired: list[tuple[int, int, str]] = []
        if self.max_target and not self.started:
            at = _target_overflow(data, pos, end, self.max_target)
            if at >= 0:
                fired.append((at, 414, "request-target too long"))
        over = pos + self.limit - self.size
        if over <= last:
            fired.append((over, 431, "header section too large"))
        # RFC 9112 §2.2 lets a recipient accept a bare LF as a line end; we refuse it (400)
        # rather than guess where a line ends.
        lf = data.find(b"\n", pos, end)
        if lf >= 0:
            fired.append((lf, 400, "bare LF line ending"))
        if fired:
            _at, status, reason = min(fired)
            raise HttpError(status, reason)
        if crlf < 0:
            return False
        line = bytes(data[pos:crlf])
        buf.pos = crlf + 2
        self.size += crlf + 2 - pos
        self.started = True
        if not line:
            return True
        self.on_line(line)
        return False


class _Reader(Protocol):
    """A body reader: ``read`` returns the body octets now available; ``done`` at the end."""

    done: bool
    trailers: Headers

    def read(self, buf: _Buffer) -> bytes: ...

    def eof(self) -> None: ...


class LengthReader:
    """``length`` octets (Content-Length, RFC 9112 §6.3 item 6; or none at all)."""

    __slots__ = ("done", "remaining", "trailers")

    def __init__(self, length: int, max_body: int, max_trailer: int) -> None:
        self.remaining = length
        self.done = length == 0
        self.trailers: Headers = ()

    def read(self, buf: _Buffer) -> bytes:
        data = buf.take(self.remaining)
        self.remaining -= len(data)
        self.done = self.remaining == 0
        return data

    def eof(self) -> None:
        raise HttpError(400, "connection closed in the middle of a body")


class ChunkedReader:
    """The chunked coding with its trailer section (RFC 9112 §7.1, §7.1.2)."""

    __slots__ = (
        "done",
        "left",
        "max_trailer",
        "remaining",
        "trailer",
        "trailer_fields",
        "trailers",
    )

    def __init__(self, length: int, max_body: int, max_trailer: int) -> None:
        self.left = max_body  # octets the chunks may still announce (413 past it)
        self.done = False
        self.remaining = 0  # octets left in the current chunk
        self.trailers: Headers = ()
        self.trailer_fields: list[tuple[str, str]] = []
        self.trailer: HeadReader | None = None
        self.max_trailer = max_trailer

    def _on_trailer_line(self, line: bytes) -> None:
        self.trailer_fields.append(parse_field_line(line))

    def read(self, buf: _Buffer) -> bytes:
        parts: list[bytes] = []
        while not self.done:
            if self.trailer is not None:
                if self.trailer.read(buf):
                    self.trailers = tuple(self.trailer_fields)
                    self.done = True
                break
            if self.remaining == 0:
                line = buf.take_line(_MAX_CHUNK_LINE)
                if line is None:
                    break
                size = parse_chunk_size(line)
                if size == 0:
                    self.trailer = HeadReader(self.max_trailer, self._on_trailer_line)
                    continue
                if size > self.left:  # known from the size line, before any chunk data
                    raise HttpError(413, "content too large")
                self.left -= size
                self.remaining = size
            # Chunk data and its CRLF are taken together, so a missing CRLF is seen at once.
            if buf.pending() < self.remaining + 2:
                # A wrong first footer byte is already an error; say so now, not later.
                start = buf.pos + self.remaining
                if buf.pending() > self.remaining and buf.data[start] != 0x0D:
                    raise HttpError(400, "chunk data not followed by CRLF")
                break
            parts.append(buf.take(self.remaining))
            if buf.take(2) != b"\r\n":
                raise HttpError(400, "chunk data not followed by CRLF")
            self.remaining = 0
        return b"".join(parts)

    def eof(self) -> None:
        raise HttpError(400, "connection closed in the middle of a body")


class CloseReader:
    """Everything until the connection closes (RFC 9112 §6.3 item 8; responses only)."""

    __slots__ = ("done", "trailers")

    def __init__(self, length: int, max_body: int, max_trailer: int) -> None:
        self.done = False
        self.trailers: Headers = ()

    def read(self, buf: _Buffer) -> bytes:
        return buf.take(buf.pending())

    def eof(self) -> None:
        self.done = True


# One reader per framing, chosen from this table (h11's READERS).
READERS: dict[Framing, Callable[[int, int, int], _Reader]] = {
    Framing.NONE: LengthReader,
    Framing.LENGTH: LengthReader,
    Framing.CHUNKED: ChunkedReader,
    Framing.CLOSE: CloseReader,
}


class _Body:
    """A body reader plus the octets it produced, held to ``max_body`` (413 past it)."""

    __slots__ = ("framing", "max_body", "parts", "reader", "size")

    def __init__(self, framing: Framing, length: int, max_body: int, max_trailer: int) -> None:
        if length > max_body:
            raise HttpError(413, "content too large")
        self.framing = framing
        self.reader = READERS[framing](length, max_body, max_trailer)
        self.max_body = max_body
        self.parts: list[bytes] = []
        self.size = 0

    def read(self, buf: _Buffer, eof: bool = False, keep: bool = True) -> bytes:
        """New body octets; kept in ``parts`` unless ``keep`` is False (streaming)."""
        data = self.reader.read(buf) if not self.reader.done else b""
        if data:
            self.size += len(data)
            if self.size > self.max_body:
                raise HttpError(413, "content too large")
            if keep:
                self.parts.append(data)
        if eof and not self.reader.done:
            self.reader.eof()
        return data

    def body(self) -> bytes:
        return b"".join(self.parts)


class _Latched:
    """The error latch both parsers share: once one raised, every call raises that error."""

    _error: HttpError | None = None

    def _fail(self, exc: HttpError) -> HttpError:
        self._error = exc
        return exc


def _copy(request: Request, _new: Callable[..., Request] = object.__new__) -> Request:
    """An equal but distinct Request, without ``__init__``'s eight frozen-field setattrs: a
    connection tells which request an answer is for by identity (``respond``)."""
    clone = _new(Request)
    clone.__dict__.update(request.__dict__)
    return clone


class RequestParser(_Latched):
    """Server side: bytes in, :class:`Request` out, :class:`HttpError` on a broken request."""

    def __init__(
        self,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_target_bytes: int = DEFAULT_MAX_TARGET_BYTES,
    ) -> None:
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.max_target_bytes = max(1, max_target_bytes)
        self._buf = _Buffer()
        self._start: tuple[str, str, str] | None = None
        self._fields: list[tuple[str, str]] = []
        self._head = self._new_head()
        self._request: tuple[str, str, str, Headers] | None = None
        self._body: _Body | None = None
        self._valid_host: str | None = None
        # The last bodiless request parsed from a head that arrived whole, with the head's
        # exact octets (leading empty lines excluded, its empty line included). A Request
        # is a pure function of those octets and this parser's limits, so the same octets
        # at the start of the next head give the same (immutable) Request without parsing.
        self._memo_head = b""
        self._memo_request: Request | None = None  # None: nothing remembered yet

    def _new_head(self) -> HeadReader:
        self._start = None
        self._fields = []
        return HeadReader(
            self.max_header_bytes, self._on_line, self.max_target_bytes, self._on_lines
        )

    def _next_head(self) -> None:
        self._start = None
        self._fields = []
        self._head.reset()

    def _on_line(self, line: bytes) -> None:
        if self._start is None:
            self._start = parse_request_line(line)
        else:
            self._fields.append(parse_field_line(line))

    def _on_lines(self, lines: list[bytes]) -> None:
        self._start = parse_request_line(lines[0])
        self._fields = parse_fields(lines[1:])

    def feed(self, data: bytes) -> None:
        self._buf.feed(data)

    @property
    def idle(self) -> bool:
        """Nothing of a next request is buffered (cheaper than :attr:`state`)."""
        return (
            self._body is None and not self._head.started and self._buf.pos >= len(self._buf.data)
        )

    @property
    def buffered(self) -> int:
        """Octets held: unparsed input plus the body read so far."""
        buf, body = self._buf, self._body
        return len(buf.data) - buf.pos + (body.size if body is not None else 0)

    @property
    def state(self) -> ParserState:
        if self._error is not None:
            return ParserState.ERROR
        if self._body is not None:
            return ParserState.BODY
        if self._buf.pending() or self._head.started:
            return ParserState.HEAD
        return ParserState.IDLE

    @property
    def expects_continue(self) -> bool:
        """A head asked for ``100-continue`` and its body has not begun (RFC 9110 §10.1.1).

        An HTTP/1.0 request's expectation is ignored, as that section requires."""
        if self._body is None or self._request is None or self._body.size:
            return False
        _, _, version, headers = self._request
        return (
            version == "1.1"
            and not self._body.reader.done
            and "100-continue" in header_tokens(headers, "expect")
        )

    def next_request(self) -> Request | None:
        """The next complete request, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if self._body is None and not self._head.started:
            if buf.pos >= len(buf.data):
                return None  # nothing buffered: no verdict can change
            memo = self._memo_request
            if memo is not None and buf.data.startswith(self._memo_head, buf.pos):
                buf.pos += len(self._memo_head)  # see _next: the same test, before empty lines
                return _copy(memo)
        try:
            return self._next()
        except HttpError as exc:
            raise self._fail(exc) from None

    def _next(self) -> Request | None:
        buf = self._buf
        if self._body is None:
            whole = not self._head.started
            if whole:
                # RFC 9112 §2.2: ignore empty lines received before the request-line.
                while buf.data.startswith(b"\r\n", buf.pos):
                    buf.pos += 2
                memo = self._memo_request
                if memo is not None and buf.data.startswith(self._memo_head, buf.pos):
                    buf.pos += len(self._memo_head)
                    return _copy(memo)
            first = buf.pos
            if not self._head.read(buf):
                return None
            assert self._start is not None
            method, target, version = self._start
            headers = tuple(self._fields)
            hosts = [value for name, value in headers if name == "host"]
            # RFC 9112 §3.2: exactly one Host in 1.1, never more than one, always valid.
            if len(hosts) > 1 or (not hosts and version == "1.1"):
                raise HttpError(400, "missing or repeated Host header")
            if hosts and hosts[0] != self._valid_host:
                if not valid_host(hosts[0].encode("latin-1")):
                    raise HttpError(400, "invalid Host header")
                self._valid_host = hosts[0]  # a connection repeats its Host: check it once
            framing, length = request_framing(version, headers)
            if not length and framing is not Framing.CHUNKED:  # no body: done (the common case)
                self._next_head()
                request = Request(
                    method, target, version, headers, framing=framing,
                    keep_alive=keep_alive(version, headers),
                )  # fmt: skip
                if whole and buf.pos - first <= MEMO_MAX_HEAD:  # it came whole: remember it
                    self._memo_head = bytes(buf.data[first : buf.pos])
                    self._memo_request = request
                return request
            self._request = (method, target, version, headers)
            self._body = _Body(framing, length, self.max_body_bytes, self.max_header_bytes)
        body = self._body
        body.read(buf)
        if not body.reader.done:
            return None
        assert self._request is not None
        method, target, version, headers = self._request
        self._request = None
        self._body = None
        self._next_head()
        return Request(
            method=method,
            target=target,
            version=version,
            headers=headers,
            body=body.body(),
            trailers=body.reader.trailers,
            framing=body.framing,
            keep_alive=keep_alive(version, headers),
        )


ResponseEvent = Union[Response, Data, EndOfMessage]


class ResponseParser(_Latched):
    """Client side: bytes in, the final :class:`Response` out (1xx interim ones skipped).

    :meth:`next_response` returns it whole; :meth:`next_event` streams it as a
    :class:`Response` head, :class:`Data` pieces and :class:`EndOfMessage`, holding no body.
    """

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
        self._start: tuple[str, int, str] | None = None
        self._fields: list[tuple[str, str]] = []
        self._head = self._new_head()
        self._response: Response | None = None
        self._body: _Body | None = None
        self._eof = False
        self.interim: list[int] = []  # statuses of the 1xx responses seen

    def _new_head(self) -> HeadReader:
        self._start = None
        self._fields = []
        return HeadReader(self.max_header_bytes, self._on_line)

    def _on_line(self, line: bytes) -> None:
        if self._start is None:
            self._start = parse_status_line(line)
        else:
            self._fields.append(parse_field_line(line))

    def feed(self, data: bytes) -> None:
        self._buf.feed(data)

    def feed_eof(self) -> None:
        self._eof = True

    @property
    def state(self) -> ParserState:
        if self._error is not None:
            return ParserState.ERROR
        if self._body is not None:
            return ParserState.BODY
        return ParserState.HEAD if self._buf.pending() or self._head.started else ParserState.IDLE

    @property
    def started(self) -> bool:
        """True once any byte of a response has arrived."""
        return self.state is not ParserState.IDLE or bool(self.interim)

    def next_response(self) -> Response | None:
        """The whole final response, body included, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        try:
            result = self._step(keep=True)
        except HttpError as exc:
            raise self._fail(exc) from None
        if not isinstance(result, EndOfMessage):
            return None
        head = self._response
        assert head is not None
        assert self._body is not None
        body = self._body.body()
        self._body = None
        return Response(
            head.status,
            head.reason,
            head.version,
            head.headers,
            body,
            result.trailers,
            result.keep_alive,
        )

    def next_event(self) -> ResponseEvent | None:
        """The next streaming event, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        try:
            result = self._step(keep=False)
        except HttpError as exc:
            raise self._fail(exc) from None
        if isinstance(result, EndOfMessage):
            self._body = None
        return result

    def _step(self, keep: bool) -> ResponseEvent | None:
        buf = self._buf
        if self._body is None:
            while True:
                if not self._head.read(buf):
                    if self._eof and (buf.pending() or self._head.started):
                        raise HttpError(400, "connection closed before a complete response head")
                    return None  # more bytes, or (at EOF) no further response
                assert self._start is not None
                version, status, reason = self._start
                headers = tuple(self._fields)
                self._head = self._new_head()
                # 101 switches protocols: the last HTTP/1.1 message on the connection.
                if 100 <= status < 200 and status != 101:
                    self.interim.append(status)
                    continue
                break
            framing, length = response_framing(self.request_method, status, headers)
            self._body = _Body(framing, length, self.max_body_bytes, self.max_header_bytes)
            self._response = Response(status, reason, version, headers)
            if not keep:
                return self._response
        body = self._body
        data = body.read(buf, self._eof, keep)
        if data and not keep:
            return Data(data)
        if not body.reader.done:
            return None
        head = self._response
        assert head is not None
        persistent = body.framing is not Framing.CLOSE and keep_alive(head.version, head.headers)
        return EndOfMessage(body.reader.trailers, persistent)
