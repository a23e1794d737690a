"""A sans-IO HTTP/1.1 engine: request parser and response serializer for servers, request
serializer and response parser for clients.

Theory of operation (h11 style, but a hand parser for speed): the caller does all I/O.
Feed received bytes to :class:`RequestParser` and call :meth:`RequestParser.next_request`
until it returns None; each :class:`Request` is complete (body and trailers read). A broken
request raises :class:`HttpError` whose ``status`` is the answer to send before closing:
400 (malformed, RFC 9112 §3, §5, §6.3, §7.1), 413 (body over the limit), 431 (header
section over the limit), 501 (a transfer coding other than chunked, RFC 9112 §6.1), 505
(a version other than 1.0/1.1). :func:`serialize_response` writes the answer. Clients use
:func:`serialize_request` and :class:`ResponseParser` (Content-Length, chunked and
close-delimited bodies; no body for HEAD, 1xx, 204, 304; RFC 9112 §6.3).

Choices where the RFC leaves room, each cited where it is made: obs-fold, bare LF and a
request with both Content-Length and Transfer-Encoding are refused (400); empty lines
before a request-line are skipped; a POST/PUT with neither length field has an empty body
(RFC 9112 §6.3 item 6), and a server that wants 411 decides it from ``Request.framing``.
"""

from __future__ import annotations

from rawstack.engines._http_events import (
    Headers,
    HttpError,
    Request,
    Response,
    header_tokens,
    header_value,
)
from rawstack.engines._http_readers import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_HEADER_BYTES,
    RequestParser,
    ResponseParser,
)
from rawstack.engines._http_writers import REASONS, serialize_request, serialize_response

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_HEADER_BYTES",
    "REASONS",
    "Headers",
    "HttpError",
    "Request",
    "RequestParser",
    "Response",
    "ResponseParser",
    "header_tokens",
    "header_value",
    "serialize_request",
    "serialize_response",
]
