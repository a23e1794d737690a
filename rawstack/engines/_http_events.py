"""The messages the HTTP engine produces, the enums that name its states, and its one error."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Field lines in wire order: (name lower-cased, value as sent). Latin-1 decoding keeps every
# octet (RFC 9110 §5.5 allows obs-text in values), so nothing is lost by using ``str``.
Headers = tuple[tuple[str, str], ...]


class Framing(str, Enum):
    """How a message body is delimited (RFC 9112 §6.3); a ``str`` so ``== "length"`` reads."""

    NONE = "none"  # no body at all (a request with neither length field)
    LENGTH = "length"  # Content-Length octets (possibly 0)
    CHUNKED = "chunked"  # the chunked transfer coding (RFC 9112 §7.1)
    CLOSE = "close"  # until the connection closes (responses only, RFC 9112 §6.3 item 8)


class ParserState(str, Enum):
    """Where a parser is between feeds."""

    IDLE = "idle"  # nothing of the next message buffered
    HEAD = "head"  # some of a head buffered
    BODY = "body"  # head done, body in progress
    ERROR = "error"  # it raised HttpError; it stays failed


class HttpError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what a server answers (400, 413, 414, 431, 501,
    505).

    After raising it a parser is dead: the framing of anything that follows is unknown, so
    the connection must be closed after the error response (RFC 9112 §9.6).
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of ``name`` (lower-case), or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def header_tokens(headers: Headers, name: str) -> list[str]:
    """Every comma-separated element of every ``name`` field, lower-cased (RFC 9110 §5.6.1)."""
    out: list[str] = []
    for key, value in headers:
        if key == name:
            out.extend(item.strip().lower() for item in value.split(",") if item.strip())
    return out


@dataclass(frozen=True)
class Request:
    """One complete request, body included."""

    method: str
    target: str
    version: str  # "1.0" or "1.1"
    headers: Headers
    body: bytes = b""
    trailers: Headers = ()
    framing: Framing = Framing.NONE
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name.lower())


@dataclass(frozen=True)
class Response:
    """One final response. ``body`` is complete from :meth:`ResponseParser.next_response`;
    from :meth:`ResponseParser.next_event` it is empty and the body follows as events."""

    status: int
    reason: str
    version: str
    headers: Headers
    body: bytes = b""
    trailers: Headers = ()
    keep_alive: bool = True  # False when the body was delimited by the close

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name.lower())


@dataclass(frozen=True)
class Data:
    """Body octets of the response in progress (streaming mode)."""

    data: bytes


@dataclass(frozen=True)
class EndOfMessage:
    """The response body is complete; whether the connection may carry another exchange."""

    trailers: Headers = ()
    keep_alive: bool = True
