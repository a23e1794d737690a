"""The connection rules of :class:`ServerConnection`: when to close, what the Connection field
says, 100 (Continue), EOF, and the deadlines (the clock is the test's)."""

from __future__ import annotations

import pytest

from rawstack.engines.http import (
    ConnState,
    Expiry,
    HttpError,
    ResponseParser,
    ServerConnection,
    ServerLimits,
)

LIMITS = ServerLimits(header_timeout=5.0, request_timeout=20.0, idle_timeout=60.0)
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def answer(raw: bytes, status: int = 200, now: float = 0.0) -> tuple[ServerConnection, bytes]:
    """Feed ``raw``, answer its first request with ``status``; the connection and the bytes."""
    conn = ServerConnection(LIMITS, now)
    conn.receive_data(raw, now)
    request = conn.next_request()
    assert request is not None
    return conn, conn.respond(request, status, [("Content-Type", "text/plain")], b"body")


def connection_field(out: bytes) -> str | None:
    parser = ResponseParser()
    parser.feed(out)
    response = parser.next_response()
    assert response is not None
    return response.header("connection")


def test_a_200_keeps_a_1_1_connection_open() -> None:
    conn, out = answer(GET)
    assert (conn.must_close, conn.wants_input, connection_field(out)) == (False, True, None)
    assert conn.state is ConnState.IDLE


@pytest.mark.parametrize("status", [500, 503, 599])
def test_a_5xx_closes_the_connection(status: int) -> None:
    conn, out = answer(GET, status)
    assert conn.must_close
    assert connection_field(out) == "close"
    assert not conn.wants_input


def test_a_4xx_does_not_close() -> None:
    conn, out = answer(GET, 404)
    assert not conn.must_close
    assert connection_field(out) is None


def test_connection_close_closes_and_later_bytes_are_not_read() -> None:
    conn, out = answer(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + GET)
    assert conn.must_close
    assert connection_field(out) == "close"
    assert conn.next_request() is None  # the pipelined GET after it is never answered
    conn.receive_data(b"x" * 1000, 1.0)
    assert conn.buffered <= len(GET)  # nothing after a closing answer is kept


def test_http_1_0_keep_alive_is_confirmed() -> None:
    conn, out = answer(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert not conn.must_close
    assert connection_field(out) == "keep-alive"


def test_http_1_0_without_keep_alive_closes() -> None:
    conn, out = answer(b"GET / HTTP/1.0\r\n\r\n")
    assert conn.must_close
    assert connection_field(out) == "close"


def test_head_gets_the_fields_without_the_body() -> None:
    _, out = answer(b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert out.endswith(b"Content-Length: 4\r\n\r\n")


def test_an_error_is_answered_and_closes() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n", 0.0)
    with pytest.raises(HttpError) as info:
        conn.next_request()
    out = conn.respond_error(info.value)
    assert out.startswith(b"HTTP/1.1 400 ")
    assert connection_field(out) == "close"
    assert conn.must_close


def test_pipelined_requests_come_one_answer_at_a_time() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(GET * 2, 0.0)
    first = conn.next_request()
    assert first is not None
    assert conn.next_request() is None  # the first is not answered yet
    conn.respond(first, 200, [], b"")
    assert conn.next_request() is not None
    with pytest.raises(ValueError, match="respond"):
        conn.respond(first, 200, [], b"")


def test_eof_answers_what_is_complete_then_closes_without_a_reply() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(GET + b"GET /partial HT", 0.0)
    conn.receive_data(b"", 0.0)
    request = conn.next_request()
    assert request is not None
    conn.respond(request, 200, [], b"")
    assert not conn.must_close
    assert conn.next_request() is None
    assert conn.must_close  # the partial request is dropped, nothing is sent for it


POST_EXPECT = b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"


def test_100_continue_is_sent_once_before_the_body() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(POST_EXPECT, 0.0)
    assert conn.next_request() is None
    assert conn.expects_continue
    assert conn.respond_continue() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert not conn.expects_continue
    conn.receive_data(b"abc", 0.1)
    request = conn.next_request()
    assert request is not None
    assert request.body == b"abc"


@pytest.mark.parametrize(
    "raw",
    [
        POST_EXPECT.replace(b"HTTP/1.1", b"HTTP/1.0"),  # RFC 9110 §10.1.1: ignore it in 1.0
        POST_EXPECT + b"a",  # the body has begun
        POST_EXPECT.replace(b"Length: 3", b"Length: 0"),  # no body to wait for
    ],
)
def test_no_100_continue_when_it_is_not_awaited(raw: bytes) -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(raw, 0.0)
    conn.next_request()
    assert not conn.expects_continue


def test_a_connection_that_never_sent_a_byte_is_closed_without_408() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    assert conn.state is ConnState.NEW
    assert conn.expired(4.9) is Expiry.NONE
    assert conn.expired(5.1) is Expiry.CLOSE


def test_a_slow_head_gets_408_from_its_first_byte() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(b"GET / HTTP/1.1\r\n", 3.0)
    assert conn.next_request() is None
    conn.receive_data(b"X: y\r\n", 7.0)  # bytes keep coming: the deadline does not move
    assert conn.expired(7.9) is Expiry.NONE
    assert conn.expired(8.1) is Expiry.TIMEOUT


def test_a_slow_body_gets_408_at_the_request_deadline() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", 1.0)
    for t in range(2, 21):  # one byte a second
        conn.receive_data(b"a", float(t))
        assert conn.next_request() is None
    assert conn.state is ConnState.BODY
    assert conn.expired(20.9) is Expiry.NONE
    assert conn.expired(21.1) is Expiry.TIMEOUT


def test_an_idle_keep_alive_connection_is_closed_quietly() -> None:
    conn, _ = answer(GET, now=0.0)
    assert conn.expired(59.0) is Expiry.NONE
    assert conn.expired(61.0) is Expiry.CLOSE


def test_no_deadline_while_an_answer_is_owed() -> None:
    conn = ServerConnection(LIMITS, 0.0)
    conn.receive_data(GET, 0.0)
    assert conn.next_request() is not None
    assert conn.expired(1000.0) is Expiry.NONE
