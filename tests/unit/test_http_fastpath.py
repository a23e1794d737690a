"""The server's fast paths give the answers the slow paths give: the remembered parse of a
byte-identical head (RequestParser), the reused octets of an identical response
(ServerConnection.respond), and the Date fields formatted once a second (the server's clock).
The oracle is always a fresh parser or connection, which has nothing remembered."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import cast

import pytest

from rawstack.engines._http_connection import MEMO_MAX_BYTES
from rawstack.engines._http_readers import MEMO_MAX_HEAD
from rawstack.engines.http import (
    HttpError,
    Request,
    RequestParser,
    ResponseParser,
    ServerConnection,
    ServerLimits,
    serialize_response,
)
from rawstack.peers.http_server import _Date, http_date, route

LIMITS = ServerLimits()
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
# A burst a pipelining client could send: the same head again and again, heads that differ
# from it in one place (target, method, a field), a body, an empty line before a request
# line (RFC 9112 §2.2), and a close, after which nothing is read.
BURST = (
    GET * 3
    + b"GET /?a HTTP/1.1\r\nHost: x\r\n\r\n"
    + b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n"
    + GET
    + b"\r\n"
    + GET
    + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    + b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nworld"
    + GET
    + b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
    + GET
    + b"GET / HTTP/1.1\r\nHost: y\r\n\r\n"
    + b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
    + GET
    + b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    + GET
)
# The same, broken half way (a bare LF): the answers before it, then 400 and nothing more.
BROKEN = GET * 2 + b"GET / HTTP/1.1\nHost: x\r\n\r\n" + GET
# A head whose request line is followed by the remembered head: a field line that is not
# one (400). Split after that line, the rest looks like the remembered head from its start.
NESTED = GET * 2 + b"GET / HTTP/1.1\r\n" + GET


def fields() -> tuple[tuple[str, str], ...]:
    return (("Date", http_date(784111777)), ("Server", "rawstack"))


def drain(conn: ServerConnection) -> bytes:
    """Answer every complete request with the server's routes, as HttpServer._answer does."""
    out = b""
    try:
        while (request := conn.next_request()) is not None:
            status, headers, body = route(request)
            out += conn.respond(request, status, headers, body)
    except HttpError as exc:
        out += conn.respond_error(exc)
    return out


def serve(*pieces: bytes) -> bytes:
    """The answers of one connection that receives ``pieces`` one after the other."""
    conn = ServerConnection(LIMITS, 0.0, fields)
    out = b""
    for piece in pieces:
        conn.receive_data(piece, 0.0)
        out += drain(conn)
    return out


def requests_of(raw: bytes) -> list[bytes]:
    """``raw`` cut into its requests (a fresh parser per request, so nothing remembered)."""
    out: list[bytes] = []
    while raw:
        parser = RequestParser()
        parser.feed(raw)
        try:
            request = parser.next_request()
        except HttpError:
            return [*out, raw]
        assert request is not None
        used = len(raw) - parser.buffered
        out.append(raw[:used])
        raw = raw[used:]
    return out


@pytest.mark.parametrize("burst", [BURST, BROKEN, NESTED], ids=["burst", "broken", "nested"])
def test_one_buffer_answers_as_fresh_connections_would(burst: bytes) -> None:
    expected = b""
    for raw in requests_of(burst):
        conn = ServerConnection(LIMITS, 0.0, fields)
        conn.receive_data(raw, 0.0)
        expected += drain(conn)
        if conn.must_close:
            break
    assert serve(burst) == expected
    # It is what the routes say, request by request (no body here holds a status line).
    statuses = [int(code) for code in re.findall(rb"HTTP/1\.1 (\d{3}) ", expected)]
    if burst is BURST:
        assert statuses == [200] * 10 + [404, 200, 200, 200, 200, 200]
    else:
        assert statuses == [200, 200, 400]


@pytest.mark.parametrize("burst", [BURST, BROKEN, NESTED], ids=["burst", "broken", "nested"])
def test_a_burst_split_at_every_byte_gives_the_same_answers(burst: bytes) -> None:
    whole = serve(burst)
    for cut in range(1, len(burst)):
        assert serve(burst[:cut], burst[cut:]) == whole, f"split at {cut}"
    assert serve(*(burst[i : i + 1] for i in range(len(burst)))) == whole


HEAD = b"GET /index HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"


def outcome(parser: RequestParser) -> Request | int | None:
    try:
        return parser.next_request()
    except HttpError as exc:
        return exc.status


@pytest.mark.parametrize("replacement", [b"B", b"\n", b" ", b":"])
def test_a_head_one_byte_off_the_remembered_one_is_parsed_afresh(replacement: bytes) -> None:
    for at in range(len(HEAD)):
        if HEAD[at : at + 1] == replacement:
            continue
        changed = HEAD[:at] + replacement + HEAD[at + 1 :]
        fresh = RequestParser()
        fresh.feed(changed)
        remembering = RequestParser()
        remembering.feed(HEAD)
        assert remembering.next_request() is not None
        remembering.feed(changed)
        assert outcome(remembering) == outcome(fresh), f"byte {at} -> {replacement!r}"


def test_the_same_head_gives_an_equal_but_distinct_request() -> None:
    parser = RequestParser()
    parser.feed(HEAD * 3)
    first, second, third = (parser.next_request() for _ in range(3))
    assert first == second == third
    assert first is not second
    assert second is not third
    assert parser.next_request() is None


def date_header(out: bytes) -> str | None:
    parser = ResponseParser()
    parser.feed(out)
    response = parser.next_response()
    assert response is not None
    return response.header("date")


def test_a_reused_response_changes_when_the_date_second_changes() -> None:
    clock = [1_000_000.2]
    date = _Date(lambda: clock[0])
    conn = ServerConnection(LIMITS, 0.0, date.fields)
    conn.receive_data(GET * 3, 0.0)

    def answer() -> bytes:
        request = conn.next_request()
        assert request is not None
        status, headers, body = route(request)
        return conn.respond(request, status, headers, body)

    first = answer()
    clock[0] = 1_000_000.9  # the same second: the same octets
    assert answer() == first
    assert date_header(first) == http_date(1_000_000)
    clock[0] = 1_000_001.0
    later = answer()
    assert date_header(later) == http_date(1_000_001)
    page = route(Request("GET", "/", "1.1", (("host", "x"),)))
    assert later == serialize_response(page[0], [*date.fields(), *page[1]], page[2])


def test_the_date_fields_are_one_tuple_per_second() -> None:
    clock = [50.5]
    date = _Date(lambda: clock[0])
    first = date.fields()
    clock[0] = 50.99
    assert date.fields() is first
    clock[0] = 51.0
    assert date.fields() != first
    assert date.fields()[0] == ("Date", http_date(51))


def answers(conn: ServerConnection, headers: object, body: object, change: object) -> list[bytes]:
    """Three answers with the same ``headers`` and ``body`` objects, ``change()`` after the
    first."""
    outs = []
    for i in range(3):
        request = conn.next_request()
        assert request is not None
        # A list or a bytearray is outside respond()'s types, but Python lets a caller pass one.
        fields_ = cast("tuple[tuple[str, str], ...]", headers)
        outs.append(conn.respond(request, 200, fields_, cast(bytes, body)))
        if i == 0:
            cast(Callable[[], None], change)()
    return outs


def test_a_mutable_field_list_is_serialized_every_time() -> None:
    conn = ServerConnection(LIMITS, 0.0, fields)
    conn.receive_data(GET * 3, 0.0)
    headers = [("Content-Type", "text/plain")]
    outs = answers(conn, headers, b"one", lambda: headers.append(("X-Later", "yes")))
    assert b"X-Later: yes" not in outs[0]
    assert b"X-Later: yes" in outs[1]
    assert outs[2] == outs[1]


def test_a_mutable_body_is_serialized_every_time() -> None:
    conn = ServerConnection(LIMITS, 0.0, fields)
    conn.receive_data(GET * 3, 0.0)
    body = bytearray(b"one")

    def change() -> None:
        body[:] = b"two"

    outs = answers(conn, (("Content-Type", "text/plain"),), body, change)
    assert outs[0].endswith(b"one")
    assert outs[1].endswith(b"two")
    assert outs[2] == outs[1]


def test_what_is_remembered_stays_small() -> None:
    """A long head or a large answer is not kept beyond the accounted buffers."""
    long_head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * MEMO_MAX_HEAD + b"\r\n\r\n"
    parser = RequestParser()
    parser.feed(GET + long_head * 2)
    requests = [parser.next_request() for _ in range(3)]
    assert requests[1] == requests[2]
    assert parser._memo_head == GET  # the short head is still the one remembered
    conn = ServerConnection(LIMITS, 0.0, fields)
    conn.receive_data(GET * 2, 0.0)
    for body in (b"small", b"b" * MEMO_MAX_BYTES):
        request = conn.next_request()
        assert request is not None
        out = conn.respond(request, 200, (), body)
    assert out.endswith(b"b" * MEMO_MAX_BYTES)
    assert conn._memo_out.endswith(b"small")
