"""Response parsing and serialization (checked against h11), URL parsing, the server's routes."""

from __future__ import annotations

import json

import h11
import pytest

from rawstack.engines.http import (
    Data,
    EndOfMessage,
    Framing,
    HttpError,
    Request,
    Response,
    ResponseParser,
    serialize_request,
    serialize_response,
)
from rawstack.errors import UsageError
from rawstack.peers.http_client import parse_url
from rawstack.peers.http_server import HELLO_PAGE, route

# (request method, raw response, whether EOF follows, status, body, keep_alive)
RESPONSES = [
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", False, 200, b"abc", True),
    (
        "GET",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
        False,
        200,
        b"abc",
        True,
    ),
    ("GET", b"HTTP/1.1 200 OK\r\n\r\nuntil the end", True, 200, b"until the end", False),
    ("GET", b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", False, 200, b"x", False),
    (
        "GET",
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx",
        False,
        200,
        b"x",
        True,
    ),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n", False, 200, b"", True),
    ("GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", False, 204, b"", True),
    ("GET", b"HTTP/1.1 304 Not Modified\r\n\r\n", False, 304, b"", True),
    (
        "GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        False,
        200,
        b"ok",
        True,
    ),
    ("GET", b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", False, 200, b"", True),
    ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nraw", True, 200, b"raw", False),
]


@pytest.mark.parametrize("step", [None, 1])
@pytest.mark.parametrize("vector", RESPONSES, ids=range(len(RESPONSES)))
def test_response_vectors(vector: tuple, step: int | None) -> None:  # type: ignore[type-arg]
    method, raw, eof, status, body, keep_alive = vector
    parser = ResponseParser(method)
    chunks = [raw] if step is None else [raw[i : i + 1] for i in range(len(raw))]
    response = None
    for chunk in chunks:
        parser.feed(chunk)
        response = response or parser.next_response()
    if eof:
        assert response is None  # a close-delimited body is not complete before EOF
        parser.feed_eof()
        response = parser.next_response()
    assert response is not None
    assert (response.status, response.body, response.keep_alive) == (status, body, keep_alive)


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200OK\r\n\r\n",
        b"HTTX/1.1 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    ],
)
def test_malformed_responses_raise(raw: bytes) -> None:
    parser = ResponseParser()
    parser.feed(raw)
    with pytest.raises(HttpError):
        parser.next_response()


def test_a_failed_response_parser_stays_failed() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 2000 OK\r\n\r\n")
    with pytest.raises(HttpError):
        parser.next_response()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    with pytest.raises(HttpError):  # the error latch: a good response after it is not read
        parser.next_response()


@pytest.mark.parametrize("vector", RESPONSES, ids=range(len(RESPONSES)))
def test_streamed_events_carry_the_same_response(vector: tuple) -> None:  # type: ignore[type-arg]
    method, raw, eof, status, body, keep_alive = vector
    parser = ResponseParser(method)
    events = []
    for i in range(len(raw)):
        parser.feed(raw[i : i + 1])
        while (event := parser.next_event()) is not None:
            events.append(event)
    if eof:
        parser.feed_eof()
        while (event := parser.next_event()) is not None:
            events.append(event)
    head, *pieces, end = events
    assert isinstance(head, Response)
    assert head.status == status
    assert head.body == b""  # nothing is held: the body comes as Data events
    assert b"".join(p.data for p in pieces if isinstance(p, Data)) == body
    assert all(isinstance(p, Data) for p in pieces)
    assert isinstance(end, EndOfMessage)
    assert end.keep_alive == keep_alive


def test_eof_inside_a_length_body_is_an_error() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
    assert parser.next_response() is None
    parser.feed_eof()
    with pytest.raises(HttpError):
        parser.next_response()


def _h11_read_response(raw: bytes, method: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    head = conn.next_event()
    assert isinstance(head, h11.Response)
    body = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        assert isinstance(event, h11.Data)
        body += event.data
    return head.status_code, list(head.headers), body


@pytest.mark.parametrize(
    ("status", "body", "connection"),
    [(200, HELLO_PAGE, ""), (404, b"not found\n", "close"), (413, b"", "keep-alive")],
)
def test_serialized_responses_read_back_by_h11(status: int, body: bytes, connection: str) -> None:
    raw = serialize_response(status, [("Content-Type", "text/plain")], body, connection=connection)
    code, headers, got = _h11_read_response(raw, b"GET")
    assert (code, got) == (status, body)
    assert (b"content-length", str(len(body)).encode()) in headers
    assert ((b"connection", connection.encode()) in headers) == bool(connection)


def test_head_response_keeps_content_length_but_has_no_body() -> None:
    raw = serialize_response(200, [], HELLO_PAGE, send_body=False)
    assert raw.endswith(b"Content-Length: 20\r\n\r\n")
    assert _h11_read_response(raw, b"HEAD")[2] == b""


def test_serialized_request_read_back_by_h11() -> None:
    raw = serialize_request("POST", "/echo?q=1", "h:8080", [("X-A", "b")], b"data")
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    request = conn.next_event()
    assert isinstance(request, h11.Request)
    assert (request.method, request.target) == (b"POST", b"/echo?q=1")
    assert dict(request.headers)[b"host"] == b"h:8080"
    assert conn.next_event() == h11.Data(data=b"data")


@pytest.mark.parametrize(
    ("name", "value"), [("Bad Name", "x"), ("X", "a\r\nInjected: 1"), ("", "x")]
)
def test_serializers_refuse_header_injection(name: str, value: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        serialize_request("GET", "/", "h", [(name, value)])
    with pytest.raises(ValueError, match="invalid"):
        serialize_response(200, [(name, value)])


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/", ("127.0.0.1", 8080, "/")),
        ("http://example.test", ("example.test", 80, "/")),
        ("http://[::1]:81/a?b=c", ("::1", 81, "/a?b=c")),
    ],
)
def test_parse_url(url: str, expected: tuple[str, int, str]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url",
    ["https://x/", "ftp://x", "http://", "http://x:99999/", "http://x:abc/", "x/y", "http://x/a b"],
)
def test_parse_url_rejects_bad_urls(url: str) -> None:
    with pytest.raises(UsageError):
        parse_url(url)


def _req(method: str, target: str, body: bytes = b"", framing: str = "none") -> Request:
    return Request(method, target, "1.1", (("host", "x"),), body, (), Framing(framing), True)


@pytest.mark.parametrize(
    ("request_", "status", "body"),
    [
        (_req("GET", "/"), 200, HELLO_PAGE),
        (_req("HEAD", "/"), 200, HELLO_PAGE),
        (_req("GET", "/?x=1"), 200, HELLO_PAGE),
        (_req("GET", "http://x/"), 200, HELLO_PAGE),
        (_req("POST", "/echo", b"abc", "length"), 200, b"abc"),
        (_req("PUT", "/echo", b"", "chunked"), 200, b""),
        (_req("POST", "/echo"), 411, b"length required\n"),
        (_req("GET", "/nope"), 404, b"not found\n"),
        (_req("DELETE", "/"), 405, b"method not allowed\n"),
        (_req("BREW", "/"), 501, b"method not implemented\n"),
        (_req("OPTIONS", "*"), 400, b"not a proxy\n"),  # as nginx
        (_req("CONNECT", "x:443"), 400, b"not a proxy\n"),  # as nginx
    ],
)
def test_routes(request_: Request, status: int, body: bytes) -> None:
    code, _headers, got = route(request_)
    assert (code, got) == (status, body)


def test_405_names_the_allowed_methods_and_status_is_json() -> None:
    _, headers, _ = route(_req("GET", "/echo"))
    assert ("Allow", "POST, PUT") in headers
    code, headers, body = route(_req("GET", "/status"), lambda: b'{"requests": 1}')
    assert code == 200
    assert ("Content-Type", "application/json") in headers
    assert json.loads(body) == {"requests": 1}
