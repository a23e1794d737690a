"""The request parser: valid vectors fed whole, one byte at a time and pipelined; error
vectors with their status; chunked edge cases; limits."""

from __future__ import annotations

import pytest

from rawstack.engines.http import HttpError, Request, RequestParser

H = b"Host: x\r\n"

# (raw request, method, target, version, headers, body, trailers, framing, keep_alive)
VALID = [
    (
        b"GET / HTTP/1.1\r\n" + H + b"\r\n",
        "GET",
        "/",
        "1.1",
        (("host", "x"),),
        b"",
        (),
        "none",
        True,
    ),
    (b"GET /a?b=c HTTP/1.0\r\n\r\n", "GET", "/a?b=c", "1.0", (), b"", (), "none", False),
    (
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        "GET",
        "/",
        "1.0",
        (("connection", "Keep-Alive"),),
        b"",
        (),
        "none",
        True,
    ),
    (
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n",
        "GET",
        "/",
        "1.1",
        (("host", "x"), ("connection", "foo, close")),
        b"",
        (),
        "none",
        False,
    ),
    (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "POST",
        "/echo",
        "1.1",
        (("host", "x"), ("content-length", "5")),
        b"hello",
        (),
        "length",
        True,
    ),
    (  # identical Content-Length values count as one (RFC 9110 §8.6)
        b"PUT /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
        "PUT",
        "/echo",
        "1.1",
        (("host", "x"), ("content-length", "3, 3"), ("content-length", "3")),
        b"abc",
        (),
        "length",
        True,
    ),
    (  # OWS around values is not part of the value; case of names is folded
        b"GET / HTTP/1.1\r\nHOST:   x \t\r\nX-Empty:\r\nX-Obs: caf\xe9\r\n\r\n",
        "GET",
        "/",
        "1.1",
        (("host", "x"), ("x-empty", ""), ("x-obs", "caf\xe9")),
        b"",
        (),
        "none",
        True,
    ),
    (  # empty lines before the request line are skipped (RFC 9112 §2.2)
        b"\r\n\r\nGET / HTTP/1.1\r\n" + H + b"\r\n",
        "GET",
        "/",
        "1.1",
        (("host", "x"),),
        b"",
        (),
        "none",
        True,
    ),
    (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5\r\nhello\r\n6;name=val;q="x"\r\n world\r\n0\r\n\r\n',
        "POST",
        "/",
        "1.1",
        (("host", "x"), ("transfer-encoding", "chunked")),
        b"hello world",
        (),
        "chunked",
        True,
    ),
    (  # upper-case hex, leading zeros, trailers, a "000" last chunk
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"000A\r\n0123456789\r\n000\r\nX-Sum: 45\r\nX-B: 2\r\n\r\n",
        "POST",
        "/",
        "1.1",
        (("host", "x"), ("transfer-encoding", "Chunked")),
        b"0123456789",
        (("x-sum", "45"), ("x-b", "2")),
        "chunked",
        True,
    ),
    (  # BWS before a chunk extension (RFC 9112 §7.1.1)
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1 ;ext\r\nz\r\n0\r\n\r\n",
        "POST",
        "/",
        "1.1",
        (("host", "x"), ("transfer-encoding", "chunked")),
        b"z",
        (),
        "chunked",
        True,
    ),
    (
        b"OPTIONS * HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n",
        "OPTIONS",
        "*",
        "1.1",
        (("host", "x"), ("content-length", "0")),
        b"",
        (),
        "length",
        True,
    ),
    (  # absolute-form target (RFC 9112 §3.2.2)
        b"GET http://x/y HTTP/1.1\r\n" + H + b"\r\n",
        "GET",
        "http://x/y",
        "1.1",
        (("host", "x"),),
        b"",
        (),
        "none",
        True,
    ),
]

# (raw, status): every one is an error the server answers and then closes.
ERRORS = [
    (b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
    (b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / http/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/1.1.1\r\nHost: x\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET /\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/0.9\r\n\r\n", 505),
    (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400),  # space before colon (RFC 9112 §5.1)
    (b"GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n  folded\r\n\r\n", 400),  # obs-fold
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nHost: x\n\n", 400),  # bare LF
    (b"GET / HTTP/1.1\r\nHost: x\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\nab", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\nContent-Length: 1\r\n\r\na", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1,\r\n\r\na", 400),
    (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n", 400),  # superscript two
    (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        400,
    ),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 400),
    (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\n", 400),
    (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n11111111111111111\r\n",
        400,
    ),
    (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nBad Trailer\r\n\r\n",
        400,
    ),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # RFC 9112 §3
    (b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),  # not 431
    (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),  # RFC 9112 §3.2: invalid Host
    (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),  # empty Host (nginx refuses it too)
    (b"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
    (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # asterisk-form is for OPTIONS only
    (b"CONNECT / HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # CONNECT needs authority-form
    (b"CONNECT x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    (b"GET 1x/ HTTP/1.1\r\nHost: x\r\n\r\n", 400),  # neither origin- nor absolute-form
    (b"GET / HTTP/2.1\r\nH: a\n\r\n\r\n", 505),  # the request line is judged first
]

# Valid heads the new checks must still accept.
ACCEPTED = [
    b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a.b-c_d~e%41!$&'()*+,;=:\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
    b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n",  # absolute-form with scheme "x"
    b"GET / HTTP/1.0\r\n\r\n",  # 1.0 needs no Host
    b"GET /" + b"a" * 8190 + b" HTTP/1.1\r\nHost: x\r\n\r\n",  # 8191-octet target
]


@pytest.mark.parametrize("raw", ACCEPTED, ids=range(len(ACCEPTED)))
def test_accepted_by_the_new_checks(raw: bytes) -> None:
    assert len(parse_all(raw)) == 1


def parse_all(raw: bytes, step: int | None = None, **limits: int) -> list[Request]:
    """Every request in ``raw``, fed whole or ``step`` bytes at a time."""
    parser = RequestParser(**limits)
    out: list[Request] = []
    chunks = [raw] if step is None else [raw[i : i + step] for i in range(0, len(raw), step)]
    for chunk in chunks:
        parser.feed(chunk)
        while (request := parser.next_request()) is not None:
            out.append(request)
    return out


def status_of(raw: bytes, step: int | None = None, **limits: int) -> int:
    with pytest.raises(HttpError) as info:
        parse_all(raw, step, **limits)
    return info.value.status


@pytest.mark.parametrize("step", [None, 1, 7])
@pytest.mark.parametrize("vector", VALID, ids=range(len(VALID)))
def test_valid_requests(vector: tuple, step: int | None) -> None:  # type: ignore[type-arg]
    raw, method, target, version, headers, body, trailers, framing, keep_alive = vector
    assert parse_all(raw, step) == [
        Request(method, target, version, headers, body, trailers, framing, keep_alive)
    ]


def test_pipelined_requests_in_one_feed_come_out_in_order() -> None:
    raws = [v[0] for v in VALID]
    requests = parse_all(b"".join(raws))
    assert [(r.method, r.target, r.body) for r in requests] == [(v[1], v[2], v[5]) for v in VALID]


def test_pipelined_requests_one_byte_at_a_time() -> None:
    raw = b"".join(v[0] for v in VALID)
    assert parse_all(raw, 1) == parse_all(raw)


def test_trailing_partial_request_waits_for_more_bytes() -> None:
    parser = RequestParser()
    parser.feed(VALID[0][0] + b"GET /next HTTP/1.1\r\nHo")
    assert parser.next_request() is not None
    assert parser.next_request() is None
    assert parser.state == "head"
    parser.feed(b"st: x\r\n\r\n")
    request = parser.next_request()
    assert request is not None
    assert request.target == "/next"
    assert parser.state == "idle"


def test_state_reports_a_body_in_progress() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab")
    assert parser.next_request() is None
    assert parser.state == "body"
    parser.feed(b"cd")
    request = parser.next_request()
    assert request is not None
    assert request.body == b"abcd"


@pytest.mark.parametrize("step", [None, 1])
@pytest.mark.parametrize(("raw", "status"), ERRORS, ids=range(len(ERRORS)))
def test_error_vectors(raw: bytes, status: int, step: int | None) -> None:
    assert status_of(raw, step) == status


def test_an_error_after_a_good_request_keeps_the_good_one() -> None:
    parser = RequestParser()
    parser.feed(VALID[0][0] + b"BAD\r\n\r\n")
    assert parser.next_request() is not None
    with pytest.raises(HttpError):
        parser.next_request()
    with pytest.raises(HttpError):  # the parser stays failed
        parser.next_request()


def test_header_limit_431_complete_and_incomplete() -> None:
    big = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 200 + b"\r\n\r\n"
    assert status_of(big, max_header_bytes=100) == 431
    assert status_of(big[:150], max_header_bytes=100) == 431
    assert len(parse_all(big, max_header_bytes=len(big))) == 1
    assert status_of(big, max_header_bytes=len(big) - 1) == 431


def test_body_limit_413_for_length_and_chunked() -> None:
    head = b"POST / HTTP/1.1\r\nHost: x\r\n"
    assert status_of(head + b"Content-Length: 11\r\n\r\n", max_body_bytes=10) == 413
    assert len(parse_all(head + b"Content-Length: 10\r\n\r\n" + b"a" * 10, max_body_bytes=10)) == 1
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    assert status_of(chunked + b"6\r\nabcdef\r\n5\r\n", max_body_bytes=10) == 413
    ok = chunked + b"5\r\nabcde\r\n5\r\nabcde\r\n0\r\n\r\n"
    assert parse_all(ok, max_body_bytes=10)[0].body == b"abcde" * 2


def test_trailer_section_counts_against_the_header_limit() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: "
    assert status_of(raw + b"a" * 300, max_header_bytes=200) == 431


def test_chunk_size_line_cannot_grow_without_bound() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 5000
    assert status_of(raw) == 400


def test_error_carries_a_reason() -> None:
    with pytest.raises(HttpError, match="Host"):
        parse_all(b"GET / HTTP/1.1\r\n\r\n")
