"""The server side of one HTTP/1.1 connection: every rule about answering, keeping the
connection alive and closing it.

Theory of operation (h11's ``Connection``): the caller feeds received bytes with
:meth:`ServerConnection.receive_data` (``b""`` is the client's EOF), takes complete requests
from :meth:`~ServerConnection.next_request`, and for each one calls
:meth:`~ServerConnection.respond`, which returns the bytes to send. A broken request raises
:class:`HttpError`; :meth:`~ServerConnection.respond_error` turns it into the answer. The
caller writes the bytes and, once :attr:`~ServerConnection.must_close` is set and they are
sent, closes. It also asks :meth:`~ServerConnection.expired` on a timer what a deadline
requires. No socket anywhere; the clock is the caller's.

The rules, each in one place below:

- a response closes the connection when the request said ``Connection: close`` or was an
  HTTP/1.0 request without keep-alive (RFC 9112 §9.3), when it is a 5xx (the server is in
  trouble; a fresh connection is the safer start), and after every error answer
  (RFC 9112 §9.6: the framing of what follows is unknown);
- an HTTP/1.0 client that asked for keep-alive gets ``Connection: keep-alive`` back, since
  for 1.0 persistence must be confirmed (RFC 9112 §9.3, RFC 7230 §A.1.2);
- ``Expect: 100-continue`` is answered with 100 (Continue) while the body has not begun
  (RFC 9110 §10.1.1), once;
- a HEAD response carries the GET's fields without content (RFC 9110 §9.3.2);
- deadlines: a connection that never sent a byte, or is idle between requests, is closed
  quietly (RFC 9112 §9.8); a request whose head has not arrived within ``header_timeout`` of
  its first byte, or that is not complete (body included) within ``request_timeout``, gets
  408 and a close;
- after the client's EOF the requests already complete are answered, then the connection
  closes; what follows a closing response is never read.

An answer whose inputs (status, the leading fields with their Date, the fields, the body,
HEAD or not, the Connection field) equal the previous answer's reuses its octets: the
serializer is a pure function of them, and only immutable inputs are remembered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from rawstack.engines._http_events import HttpError, ParserState, Request
from rawstack.engines._http_readers import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_TARGET_BYTES,
    RequestParser,
)
from rawstack.engines._http_writers import serialize_response

Fields = Sequence[tuple[str, str]]
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# A remembered answer is at most this many octets: what a connection keeps beyond its
# accounted buffers stays small (a larger answer is serialized every time).
MEMO_MAX_BYTES = 4096


@dataclass(frozen=True)
class ServerLimits:
    """Sizes (octets) and deadlines (seconds) of one connection."""

    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_target_bytes: int = DEFAULT_MAX_TARGET_BYTES
    header_timeout: float = 10.0
    request_timeout: float = 60.0
    idle_timeout: float = 60.0


class ConnState(str, Enum):
    """Where one server connection is."""

    NEW = "new"  # accepted; not a byte received yet
    IDLE = "idle"  # between requests (keep-alive)
    HEAD = "head"  # part of a request head received
    BODY = "body"  # head done, body in progress
    CLOSING = "closing"  # the last response is out of the engine: send it, then close


class Expiry(str, Enum):
    """What a deadline requires (:meth:`ServerConnection.expired`)."""

    NONE = "none"  # nothing yet
    CLOSE = "close"  # close quietly: nothing was asked
    TIMEOUT = "timeout"  # answer 408, then close


class ServerConnection:
    """The sans-IO server side of one connection."""

    def __init__(
        self,
        limits: ServerLimits,
        now: float,
        fields: Callable[[], Iterable[tuple[str, str]]] = tuple,
    ) -> None:
        self.limits = limits
        self._fields = fields  # fields every response starts with (Date, Server)
        self._parser = RequestParser(
            limits.max_header_bytes, limits.max_body_bytes, limits.max_target_bytes
        )
        self._closing = False
        self._their_eof = False
        self._unanswered: Request | None = None
        self._continue_sent = False
        self._received_any = False
        self._since = now  # start of the current request, or of the idle period
        self._last_receive = now
        self.served = 0
        # The last response serialized, keyed by everything serialize_response reads. Only
        # immutable inputs make a key (a tuple of fields, bytes): equal inputs, equal octets.
        self._memo_key: tuple[object, ...] = ()
        self._memo_out = b""

    # -- state ---------------------------------------------------------------------------
    @property
    def state(self) -> ConnState:
        if self._closing:
            return ConnState.CLOSING
        parsed = self._parser.state
        if parsed is ParserState.BODY:
            return ConnState.BODY
        if parsed is ParserState.HEAD:
            return ConnState.HEAD
        return ConnState.IDLE if self._received_any else ConnState.NEW

    @property
    def must_close(self) -> bool:
        """Close once what the engine has returned is sent; read nothing more."""
        return self._closing

    @property
    def wants_input(self) -> bool:
        """More bytes from the client can still matter."""
        return not self._closing and not self._their_eof

    @property
    def buffered(self) -> int:
        """Octets of the client's input held (unparsed bytes and the body so far)."""
        return self._parser.buffered

    # -- input -----------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the client; ``b""`` is its EOF (it half-closed or went away)."""
        if self._closing or self._their_eof:
            return  # nothing after a closing response or an EOF is read
        if not data:
            self._their_eof = True
            return
        if self._unanswered is None and self._parser.idle:
            self._since = now  # the first byte of a request starts its deadlines
        self._received_any = True
        self._last_receive = now
        self._parser.feed(data)

    def next_request(self) -> Request | None:
        """The next complete request, or None (need more bytes, or the last one is still
        unanswered, or the connection is closing). Raises :class:`HttpError` for a broken
        request: answer it with :meth:`respond_error`."""
        if self._closing or self._unanswered is not None:
            return None
        request = self._parser.next_request()
        if request is None:
            if self._their_eof:
                self._closing = True  # nothing more will come; a partial request is dropped
            return None
        self._unanswered = request
        self._continue_sent = False
        return request

    @property
    def expects_continue(self) -> bool:
        """The client waits for 100 (Continue) before sending the body."""
        return not self._closing and not self._continue_sent and self._parser.expects_continue

    # -- output ------------------------------------------------------------------------------
    def respond_continue(self) -> bytes:
        """The interim 100 (Continue) answer (RFC 9110 §15.2.1); sent at most once."""
        if not self.expects_continue:
            raise ValueError("no request is waiting for 100 (Continue)")
        self._continue_sent = True
        return CONTINUE

    def respond(self, request: Request, status: int, headers: Fields, body: bytes) -> bytes:
        """The answer to ``request`` (the one :meth:`next_request` returned last)."""
        if request is not self._unanswered:
            raise ValueError("respond() must answer the request next_request() returned")
        if status < 200:
            raise ValueError("respond() sends final responses; see respond_continue()")
        self._unanswered = None
        self.served += 1
        close = not request.keep_alive or status >= 500
        if close:
            connection = "close"
        elif request.version == "1.0":
            connection = "keep-alive"  # RFC 9112 §9.3: confirm what the 1.0 client asked
        else:
            connection = ""
        fields = self._fields()
        send_body = request.method != "HEAD"
        key = (status, fields, headers, body, send_body, connection)
        if key == self._memo_key:
            out = self._memo_out  # the same response as the last one, Date included
        else:
            out = serialize_response(
                status, [*fields, *headers], body, send_body=send_body, connection=connection
            )
            if (
                type(fields) is tuple
                and type(headers) is tuple
                and type(body) is bytes
                and len(out) <= MEMO_MAX_BYTES
            ):
                self._memo_key, self._memo_out = key, out
        if close:
            self._closing = True
        else:
            # The next deadline (idle, or the next pipelined request's) runs from the last
            # receive: the caller answers as bytes arrive, so that is "now" to within a tick.
            self._since = self._last_receive
        return out

    def respond_error(self, error: HttpError) -> bytes:
        """The answer to a broken or timed-out request; the connection then closes."""
        self._unanswered = None
        self._closing = True
        body = f"{error.status} {error.reason}\n".encode()
        fields = [*self._fields(), ("Content-Type", "text/plain")]
        return serialize_response(error.status, fields, body, connection="close")

    # -- deadlines -----------------------------------------------------------------------------
    def expired(self, now: float) -> Expiry:
        """What the deadlines require at ``now`` (call it from a timer)."""
        state = self.state
        limits = self.limits
        waited = now - self._since
        if state is ConnState.CLOSING or self._unanswered is not None:
            return Expiry.NONE  # the caller's write timeout covers a stuck answer
        if state is ConnState.NEW:
            # A connection that never sent a byte asked nothing: no 408, just close.
            return Expiry.CLOSE if waited > limits.header_timeout else Expiry.NONE
        if state is ConnState.IDLE:
            return Expiry.CLOSE if waited > limits.idle_timeout else Expiry.NONE
        if state is ConnState.HEAD and waited > limits.header_timeout:
            return Expiry.TIMEOUT
        if waited > limits.request_timeout:  # the whole request, body included
            return Expiry.TIMEOUT
        return Expiry.NONE
