"""Messages out: response and request serialization (RFC 9112 §3, §4, §5, §6)."""

from __future__ import annotations

from collections.abc import Iterable

from rawstack.engines._http_fields import _VALUE_BAD, is_token

REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Content Too Large",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


def _field_lines(headers: Iterable[tuple[str, str]]) -> list[bytes]:
    out = []
    for name, value in headers:
        raw_name = name.encode("ascii")
        raw_value = value.encode("latin-1")
        if not is_token(raw_name):
            raise ValueError(f"invalid header name {name!r}")
        if len(raw_value.translate(None, _VALUE_BAD)) != len(raw_value):
            raise ValueError(f"invalid character in header value {value!r}")
        out.append(raw_name + b": " + raw_value.strip(b" \t") + b"\r\n")
    return out


def serialize_response(
    status: int,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    *,
    send_body: bool = True,
    connection: str = "",
) -> bytes:
    """A complete HTTP/1.1 response with Content-Length set from ``body``.

    ``send_body=False`` is for HEAD: the same header fields, no content (RFC 9110 §9.3.2).
    ``connection`` ("close" or "keep-alive") adds a Connection field. 1xx/204/304 never
    carry Content-Length or a body (RFC 9110 §8.6, RFC 9112 §6.3 item 1).
    """
    if not 100 <= status <= 999:
        raise ValueError(f"status {status} out of range")
    reason = REASONS.get(status, "Unknown")
    parts = [b"HTTP/1.1 %d %s\r\n" % (status, reason.encode("ascii"))]
    parts += _field_lines(headers)
    bodyless = status < 200 or status in (204, 304)
    if not bodyless:
        parts.append(b"Content-Length: %d\r\n" % len(body))
    if connection:
        parts.append(b"Connection: " + connection.encode("ascii") + b"\r\n")
    parts.append(b"\r\n")
    if send_body and not bodyless:
        parts.append(body)
    return b"".join(parts)


def serialize_request(
    method: str,
    target: str,
    host: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> bytes:
    """A complete HTTP/1.1 request with Host (RFC 9112 §3.2) and, when there is a body or
    the method defines one, Content-Length (RFC 9110 §8.6)."""
    raw_method = method.encode("ascii")
    raw_target = target.encode("ascii")
    if not is_token(raw_method):
        raise ValueError(f"invalid method {method!r}")
    if not raw_target or any(c <= 0x20 or c >= 0x7F for c in raw_target):
        raise ValueError(f"invalid request target {target!r}")
    given = list(headers)
    names = {name.lower() for name, _ in given}
    fields = [] if "host" in names else [("Host", host)]
    fields += given
    if (
        "content-length" not in names
        and "transfer-encoding" not in names
        and (body or method in ("POST", "PUT", "PATCH"))
    ):
        fields.append(("Content-Length", str(len(body))))
    head = b"%s %s HTTP/1.1\r\n" % (raw_method, raw_target)
    return head + b"".join(_field_lines(fields)) + b"\r\n" + body
