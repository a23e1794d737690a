"""Syntax checks for start lines and field lines, and the body-framing decision.

Every check is a C-level ``bytes`` operation per line (``split``, ``partition``,
``translate``), never a regex per byte: ``value.translate(_SAME, ok)`` deletes the allowed
octets, so anything left over is a forbidden one.
"""

from __future__ import annotations

import string

from rawstack.engines._http_events import Framing, Headers, HttpError, header_tokens

_SAME = bytes(range(256))
# RFC 9110 §5.6.2: tchar.
_TOKEN = (string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode("ascii")
# RFC 9112 §3.2: a request-target is visible ASCII (no whitespace, no controls).
_VCHAR = bytes(range(0x21, 0x7F))
_HEX = b"0123456789abcdefABCDEF"
_DIGITS = b"0123456789"
# RFC 3986 §3.2.2: reg-name = *( unreserved / pct-encoded / sub-delims ).
_REG_NAME = (string.ascii_letters + string.digits + "-._~%!$&'()*+,;=").encode("ascii")
# IP-literal = "[" ( IPv6address / IPvFuture ) "]": hex digits, ":", "." and IPvFuture's "v".
_IP_LITERAL = (string.hexdigits + ":.vV" + "-._~!$&'()*+,;=").encode("ascii")
_SCHEME = (string.ascii_letters + string.digits + "+-.").encode("ascii")
# RFC 9110 §5.5: CR, LF and NUL in a value MUST be rejected (or replaced); other controls
# MAY be kept. We keep them, and also refuse VT and FF, exactly as h11 does, so h11 can
# serve as our differential oracle.
_VALUE_BAD = b"\x00\n\r\x0b\x0c"
MAX_CHUNK_SIZE_DIGITS = 16


def is_token(data: bytes) -> bool:
    return bool(data) and not data.translate(_SAME, _TOKEN)


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """``method SP request-target SP HTTP-version`` (RFC 9112 §3); version "1.0" or "1.1"."""
    parts = line.split(b" ")
    if len(parts) != 3:
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if not is_token(method):
        raise HttpError(400, "malformed method")
    if not target or target.translate(_SAME, _VCHAR):
        raise HttpError(400, "malformed request target")
    parsed_version = parse_version(version)
    check_target_form(method, target)
    return method.decode("ascii"), target.decode("ascii"), parsed_version


def check_target_form(method: bytes, target: bytes) -> None:
    """RFC 9112 §3.2: origin-form ("/..."), absolute-form ("scheme:..."), authority-form
    (CONNECT only, §3.2.3) or asterisk-form (OPTIONS only, §3.2.4); anything else is 400."""
    if target[:1] == b"/":
        if method == b"CONNECT":
            raise HttpError(400, "CONNECT needs an authority-form target")
        return
    if target == b"*":
        if method != b"OPTIONS":
            raise HttpError(400, "asterisk-form target is only for OPTIONS")
        return
    if method == b"CONNECT":
        _host, colon, port = target.rpartition(b":")
        if not colon or not valid_host(target) or not port or port.translate(_SAME, _DIGITS):
            raise HttpError(400, "malformed authority-form target")
        return
    scheme, colon, _rest = target.partition(b":")
    if not colon or not scheme[:1].isalpha() or scheme.translate(_SAME, _SCHEME):
        raise HttpError(400, "malformed request target")


def valid_host(value: bytes) -> bool:
    """``uri-host [ ":" port ]`` (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3), the host not empty.

    RFC 9112 §3.2 lets a client send an empty Host only when the target URI has no
    authority, which an ``http`` URI always has; like nginx we refuse it (400).
    """
    if value[:1] == b"[":
        close = value.find(b"]")
        inside, rest = value[1:close], value[close + 1 :]
        if close < 0 or not inside or inside.translate(_SAME, _IP_LITERAL):
            return False
    else:
        host = value.partition(b":")[0]
        if not host or host.translate(_SAME, _REG_NAME):
            return False
        rest = value[len(host) :]
    return not rest or (rest[:1] == b":" and not rest[1:].translate(_SAME, _DIGITS))


def parse_version(version: bytes) -> str:
    """``HTTP/DIGIT.DIGIT`` (RFC 9112 §2.3); anything but 1.0/1.1 is 505 (RFC 9110 §15.6.6)."""
    if version == b"HTTP/1.1":
        return "1.1"
    if version == b"HTTP/1.0":
        return "1.0"
    if (
        len(version) == 8
        and version.startswith(b"HTTP/")
        and version[5:6].isdigit()
        and version[6:7] == b"."
        and version[7:8].isdigit()
    ):
        raise HttpError(505, "HTTP version not supported")
    raise HttpError(400, "malformed HTTP version")


def parse_status_line(line: bytes) -> tuple[str, int, str]:
    """``HTTP-version SP status-code SP [reason-phrase]`` (RFC 9112 §4).

    Like h11 and most clients we also accept a status line without the space before an
    empty reason, which some servers send.
    """
    version = parse_version(line[:8])
    code = line[9:12]
    if line[8:9] != b" " or len(code) != 3 or not code.isdigit():
        raise HttpError(400, "malformed status line")
    rest = line[12:]
    if rest and rest[:1] != b" ":
        raise HttpError(400, "malformed status line")
    reason = rest[1:]
    if len(reason.translate(None, _VALUE_BAD)) != len(reason):
        raise HttpError(400, "malformed reason phrase")
    return version, int(code), reason.decode("latin-1")


def parse_fields(lines: list[bytes]) -> list[tuple[str, str]]:
    """Field lines (RFC 9112 §5): ``name ":" OWS value OWS``, name a token.

    obs-fold (a line starting with SP/HTAB) is rejected with 400, one of the two choices
    RFC 9112 §5.2 gives a server; so is whitespace before the colon (§5.1, a MUST).
    One loop for a whole head: this is the server's hottest path.
    """
    out = []
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not name or name.translate(_SAME, _TOKEN):
            if line[:1] in (b" ", b"\t"):
                raise HttpError(400, "obsolete line folding is not accepted")
            raise HttpError(400, "malformed header field")
        value = value.strip(b" \t")
        if len(value.translate(None, _VALUE_BAD)) != len(value):
            raise HttpError(400, "forbidden character in header value")
        out.append((name.decode("ascii").lower(), value.decode("latin-1")))
    return out


def parse_field_line(line: bytes) -> tuple[str, str]:
    """One field line, as :func:`parse_fields` reads it."""
    return parse_fields([line])[0]


def _elements(headers: Headers, name: str) -> list[str] | None:
    """Every element of every ``name`` field, or None without any such field.

    An empty element (an empty field, or ``a,,b``) is a 400 here: RFC 9110 §5.6.1 lets a
    recipient skip empty list elements, but for the framing fields a lenient reading is how
    two parsers come to disagree on where a message ends.
    """
    out: list[str] | None = None
    for key, value in headers:
        if key == name:
            items = [item.strip(" \t").lower() for item in value.split(",")]
            if not all(items):
                raise HttpError(400, f"empty element in {name}")
            out = (out or []) + items
    return out


def content_length(headers: Headers) -> int | None:
    """The one Content-Length value, or None; a list of identical values counts as one
    (RFC 9110 §8.6), anything else is 400 (RFC 9112 §6.3 item 5)."""
    values = _elements(headers, "content-length")
    if values is None:
        return None
    first = values[0]
    if any(v != first for v in values) or not first.isdigit() or not first.isascii():
        raise HttpError(400, "invalid or conflicting Content-Length")
    if len(first) > 20:
        raise HttpError(400, "Content-Length too long")
    return int(first)


def request_framing(version: str, headers: Headers) -> tuple[Framing, int]:
    """How a request body is delimited: (NONE, 0), (LENGTH, n) or (CHUNKED, 0).

    RFC 9112 §6.3 in order: Transfer-Encoding wins over Content-Length, but a request with
    both is refused (§6.1 lets a server reject it; it is the classic smuggling vector); a
    Transfer-Encoding on an HTTP/1.0 request means faulty framing (§6.1); chunked must be the
    final coding (§6.3 item 4, 400) and the only one we implement (§6.1, 501 otherwise).
    Neither field: the body is empty (§6.3 item 6), even for POST/PUT. Requiring a length
    (411) is the application's decision, made from ``framing is Framing.NONE``.
    """
    codings = _elements(headers, "transfer-encoding")
    if codings is not None:
        if version == "1.0":
            raise HttpError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if any(name == "content-length" for name, _ in headers):
            raise HttpError(400, "both Transfer-Encoding and Content-Length")
        if codings[-1] != "chunked":
            raise HttpError(400, "chunked is not the final transfer coding")
        if len(codings) > 1:
            if "chunked" in codings[:-1]:
                raise HttpError(400, "chunked applied more than once")
            raise HttpError(501, "unsupported transfer coding")
        return Framing.CHUNKED, 0
    length = content_length(headers)
    if length is None:
        return Framing.NONE, 0
    return Framing.LENGTH, length


def response_framing(method: str, status: int, headers: Headers) -> tuple[Framing, int]:
    """How a response body is delimited (RFC 9112 §6.3 items 1-7), adding (CLOSE, 0)."""
    if method == "HEAD" or status < 200 or status in (204, 304):
        return Framing.LENGTH, 0
    if method == "CONNECT" and status < 300:
        return Framing.LENGTH, 0
    if any(name == "transfer-encoding" for name, _ in headers):
        codings = header_tokens(headers, "transfer-encoding")
        if codings and codings[-1] == "chunked":
            return Framing.CHUNKED, 0
        return Framing.CLOSE, 0
    length = content_length(headers)
    return (Framing.CLOSE, 0) if length is None else (Framing.LENGTH, length)


def parse_chunk_size(line: bytes) -> int:
    """``chunk-size [ chunk-ext ]`` (RFC 9112 §7.1); extensions are ignored (§7.1.1)."""
    size, _, _ext = line.partition(b";")
    size = size.rstrip(b" \t")  # BWS before ";" (§7.1.1), and lenient trailing OWS like h11
    if not size or len(size) > MAX_CHUNK_SIZE_DIGITS or size.translate(_SAME, _HEX):
        raise HttpError(400, "malformed chunk size")
    return int(size, 16)


def keep_alive(version: str, headers: Headers) -> bool:
    """Persistence per RFC 9112 §9.3: 1.1 unless "close", 1.0 only with "keep-alive".

    The one place this rule lives; requests and responses both take it from here."""
    tokens = header_tokens(headers, "connection")
    if "close" in tokens:
        return False
    return version == "1.1" or "keep-alive" in tokens
