"""A sans-IO HTTP/1.1 engine: the server side of a connection (parser, rules, serializer)
and the client side (request serializer, response parser).

Theory of operation (h11 style, but a hand parser for speed): the caller does all I/O.
A server wraps each connection in a :class:`ServerConnection`: feed it received bytes, take
each complete :class:`Request` (body and trailers read) from ``next_request``, and send what
``respond`` returns; the connection decides keep-alive, ``Connection`` fields, 100
(Continue), deadlines and when to close (``must_close``). A broken request raises
:class:`HttpError` whose ``status`` is the answer (``respond_error``) before closing:
400 (malformed, RFC 9112 §3, §5, §6.3, §7.1; a missing, repeated or invalid Host, §3.2),
413 (body over the limit), 414 (request-target over the limit, §3), 431 (header section
over the limit), 501 (a transfer coding other than chunked, §6.1), 505 (a version other
than 1.0/1.1). The verdict depends only on the bytes, never on how they were split.
Clients use :func:`serialize_request` and :class:`ResponseParser` (Content-Length, chunked
and close-delimited bodies; no body for HEAD, 1xx, 204, 304; RFC 9112 §6.3), whole or
streamed as events.

Choices where the RFC leaves room, each cited where it is made: obs-fold, bare LF and a
request with both Content-Length and Transfer-Encoding are refused (400); empty lines
before a request-line are skipped; an empty Host is refused; a POST/PUT with neither
length field has an empty body (RFC 9112 §6.3 item 6), and a server that wants 411
decides it from ``Request.framing``.
"""

from __future__ import annotations

from rawstack.engines._http_connection import (
    ConnState,
    Expiry,
    ServerConnection,
    ServerLimits,
)
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
    header_value,
)
from rawstack.engines._http_readers import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_MAX_TARGET_BYTES,
    READERS,
    RequestParser,
    ResponseParser,
)
from rawstack.engines._http_writers import REASONS, serialize_request, serialize_response

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_TARGET_BYTES",
    "READERS",
    "REASONS",
    "ConnState",
    "Data",
    "EndOfMessage",
    "Expiry",
    "Framing",
    "Headers",
    "HttpError",
    "ParserState",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "ServerConnection",
    "ServerLimits",
    "header_tokens",
    "header_value",
    "serialize_request",
    "serialize_response",
]
