"""The messages the HTTP engine produces and the one error it raises."""

from __future__ import annotations

from dataclasses import dataclass

# Field lines in wire order: (name lower-cased, value as sent). Latin-1 decoding keeps every
# octet (RFC 9110 §5.5 allows obs-text in values), so nothing is lost by using ``str``.
Headers = tuple[tuple[str, str], ...]


class HttpError(Exception):
    """The peer broke HTTP/1.1; ``status`` is what a server answers (400, 413, 431, 501, 505).

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
    framing: str = "none"  # "none" (no body), "length" or "chunked"
    keep_alive: bool = True

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name.lower())


@dataclass(frozen=True)
class Response:
    """One complete final response, body included."""

    status: int
    reason: str
    version: str
    headers: Headers
    body: bytes = b""
    trailers: Headers = ()
    keep_alive: bool = True  # False when the body was delimited by the close

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name.lower())
