"""h11 as a differential oracle for the request parser.

Same bytes to both: both accept the first request with the same method, target, version,
header fields, body and trailers; or both reject it; or both wait for more bytes. Where the
RFC leaves a choice and we chose differently from h11, the case is named in DIVERGENCES and
checked to be that case, so a new difference cannot hide behind an old one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rawstack.engines.http import HttpError, RequestParser

Verdict = tuple[Any, ...]
_FRAMING = ("content-length", "transfer-encoding")  # h11 normalises these; compared by body


def ours(raw: bytes) -> Verdict:
    # h11 has no request-target limit; ours (414) is set out of reach here.
    parser = RequestParser(
        max_header_bytes=1 << 20, max_body_bytes=1 << 40, max_target_bytes=1 << 20
    )
    parser.feed(raw)
    try:
        request = parser.next_request()
    except HttpError:
        return ("reject",)
    if request is None:
        return ("incomplete",)
    headers = tuple((n, v) for n, v in request.headers if n not in _FRAMING)
    return (
        "accept",
        request.method,
        request.target,
        request.version,
        headers,
        request.body,
        request.trailers,
    )


def theirs(raw: bytes) -> Verdict:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=1 << 20)
    if raw:  # receive_data(b"") would mean EOF to h11
        conn.receive_data(raw)
    request: Any = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                return ("incomplete",)
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:  # PAUSED: cannot happen before EndOfMessage; fail loudly, never spin
                raise AssertionError(f"unexpected h11 event {event!r} for {raw!r}")
    except h11.RemoteProtocolError:
        return ("reject",)

    def fields(items: Any) -> tuple[tuple[str, str], ...]:
        return tuple(
            (n.decode("latin-1"), v.decode("latin-1"))
            for n, v in items
            if n.decode() not in _FRAMING
        )

    return (
        "accept",
        request.method.decode(),
        request.target.decode(),
        request.http_version.decode(),
        fields(request.headers),
        body,
        fields(event.headers),
    )


def _head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def _bad_target_form(raw: bytes) -> bool:
    parts = raw.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3:
        return False
    method, target, _ = parts
    if target.startswith(b"/"):
        return method == b"CONNECT"
    if target == b"*":
        return method != b"OPTIONS"
    return method == b"CONNECT" or re.match(rb"[A-Za-z][A-Za-z0-9+.-]*:", target) is None


def _bad_host(raw: bytes) -> bool:
    hosts = re.findall(rb"(?im)^host:[ \t]*(.*?)[ \t]*\r?$", _head(raw))
    return any(re.fullmatch(rb"[A-Za-z0-9._~%!$&'()*+,;=-]+(:[0-9]*)?", h) is None for h in hosts)


# Each: (name, predicate on the raw bytes). Our choice is cited in rawstack/engines.
DIVERGENCES: list[tuple[str, Callable[[bytes], bool]]] = [
    # RFC 9112 §6.1 lets a server reject CL + TE (we do); h11 lets TE win.
    (
        "cl+te",
        lambda raw: (
            bool(re.search(rb"(?im)^content-length:", raw))
            and bool(re.search(rb"(?im)^transfer-encoding:", raw))
        ),
    ),
    # RFC 9112 §5.2: reject obs-fold (we do) or unfold it (h11 does).
    ("obs-fold", lambda raw: bool(re.search(rb"\n[ \t]", raw))),
    # RFC 9112 §2.2: a bare LF MAY be a line end (h11); we refuse it.
    ("bare-lf", lambda raw: bool(re.search(rb"(?<!\r)\n", raw))),
    # RFC 9112 §2.2: SHOULD ignore empty lines before the request line (we do; h11 rejects).
    ("leading-crlf", lambda raw: raw.startswith((b"\r\n", b"\n"))),
    # We answer 505 for other versions; h11 accepts any HTTP/d.d.
    ("version", lambda raw: re.match(rb"[^\r\n]* HTTP/(?!1\.[01]\r)\d\.\d", raw) is not None),
    # RFC 9112 §6.1: TE in an HTTP/1.0 request is faulty framing (we 400; h11 accepts).
    (
        "te-in-1.0",
        lambda raw: (
            b"HTTP/1.0" in raw.split(b"\r\n", 1)[0]
            and bool(re.search(rb"(?im)^transfer-encoding:", raw))
        ),
    ),
    # RFC 9112 §7.1.1 allows BWS before ";" in a chunk extension; h11 does not.
    ("chunk-ext-bws", lambda raw: bool(re.search(rb"\n[0-9a-fA-F]+[ \t]+;", raw))),
    # h11 refuses at once a request starting with a control/space; we wait for the head.
    ("early-reject", lambda raw: raw[:1] < b"\x21"),
    # RFC 9112 §3.2: asterisk-form is for OPTIONS only, authority-form for CONNECT only, and
    # anything else must be origin-form or absolute-form; h11 takes any visible target.
    ("target-form", _bad_target_form),
    # RFC 9112 §3.2: a Host with an invalid value is 400 (we also refuse an empty one, as
    # nginx does); h11 checks only that there is one.
    ("host-value", _bad_host),
]


def check(raw: bytes) -> None:
    a, b = ours(raw), theirs(raw)
    if a == ("reject",) and b == ("incomplete",):
        # We judge each line of a head when its CRLF arrives (the verdict must not depend on
        # segmentation, so it is taken at the byte where it is known); h11 waits for the
        # empty line. Completing the head must make h11 reject it too.
        b = theirs(raw + b"\r\n\r\n")
    if a == b:
        return
    reasons = [name for name, applies in DIVERGENCES if applies(raw)]
    assert reasons, f"verdicts differ on {raw!r}:\n ours:   {a}\n theirs: {b}"


VECTORS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nab",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc",
    b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01ctl\x7f\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x0bb\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX : a\r\n\r\n",
    b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
    b"get / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 00000000000000000000001\r\n\r\nx",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
]


@pytest.mark.parametrize("raw", VECTORS)
def test_vectors_agree_with_h11(raw: bytes) -> None:
    check(raw)


def test_oracle_is_not_blind() -> None:
    # The differential test means something only if both sides accept and reject things.
    verdicts = {ours(raw)[0] for raw in VECTORS}
    assert verdicts == {"accept", "reject", "incomplete"}
    assert ours(VECTORS[4]) == theirs(VECTORS[4])


# Mostly valid pieces with a few bad ones, so accepts, rejects and waits all occur often.
_token = st.sampled_from(["GET"] * 4 + ["POST"] * 4 + ["HEAD", "PUT", "X-Y", "G T", "", "g(t"])
_target = st.sampled_from(["/"] * 6 + ["/echo?x=1", "*", "http://a/b", "/\x7f", "", "/a b"])
_version = st.sampled_from(["HTTP/1.1"] * 8 + ["HTTP/1.0"] * 3 + ["HTTP/2.0", "http/1.1"])
_name = st.sampled_from(
    ["X-A"] * 6
    + ["Connection", "Content-Length", "Transfer-Encoding", "Host", "Bad Name", "", "Tr\xe4iler"]
)
_clean_value = st.text(alphabet=st.sampled_from("ab 09,;=chunked"), max_size=10)
_dirty_value = st.text(alphabet=st.sampled_from("ab 0\t,\x00\x01\x0b\x7f\xe9"), max_size=6)
_value = st.one_of(_clean_value, _clean_value, _clean_value, _dirty_value)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    line = f"{draw(_token)} {draw(_target)} {draw(_version)}"
    fields = draw(st.lists(st.tuples(_name, _value), max_size=4))
    if draw(st.integers(0, 4)):
        fields.insert(draw(st.integers(0, len(fields))), ("Host", "h"))
    body = draw(st.binary(max_size=20))
    framing = draw(st.sampled_from(["none", "length", "length", "chunked", "chunked"]))
    if framing == "length":
        fields.append(("Content-Length", str(len(body) + draw(st.sampled_from([0, 0, 0, 1, -1])))))
    elif framing == "chunked":
        fields.append(("Transfer-Encoding", "chunked"))
    head = "\r\n".join([line] + [f"{n}:{v}" for n, v in fields]) + "\r\n\r\n"
    if framing == "chunked":
        sizes = draw(st.lists(st.integers(0, 6), max_size=3))
        parts = []
        for size in sizes:
            parts.append(b"%x\r\n" % size + body[:size] + b"\r\n")
        parts.append(b"0\r\n" + draw(st.sampled_from([b"", b"T: v\r\n", b"bad\r\n"])) + b"\r\n")
        body = b"".join(parts)
    raw = head.encode("latin-1") + body
    if not draw(st.integers(0, 3)):  # a small mutation somewhere
        pos = draw(st.integers(0, len(raw)))
        raw = raw[:pos] + draw(st.binary(max_size=3)) + raw[pos + draw(st.integers(0, 3)) :]
    return raw


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
@example(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab")
# Found by this test: a bad chunk footer must be refused as soon as its first byte is seen.
@example(b"GET / HTTP/1.1\r\nHost:h\r\nTransfer-Encoding:chunked\r\n\r\n6\r\n\r\n0\r\n\r\n")
# Found by this test: an empty Content-Length field next to a valid one.
@example(b"POST / HTTP/1.1\r\nContent-Length:\r\nHost:h\r\nContent-Length:2\r\n\r\nab")
def test_generated_requests_agree_with_h11(raw: bytes) -> None:
    check(raw)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_after_a_request_line_agree_with_h11(tail: bytes) -> None:
    check(b"GET / HTTP/1.1\r\n" + tail)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_agree_with_h11(raw: bytes) -> None:
    check(raw)


# -- segmentation: the same bytes, split anywhere, give the same events and status --------


def outcome(chunks: list[bytes], **limits: int) -> tuple[Any, ...]:
    """Every request (as a tuple) and the final status (or "incomplete") for ``chunks``."""
    parser = RequestParser(**limits)
    events: list[Any] = []
    try:
        for chunk in chunks:
            parser.feed(chunk)
            while (request := parser.next_request()) is not None:
                events.append(
                    (
                        request.method,
                        request.target,
                        request.headers,
                        request.body,
                        request.trailers,
                    )
                )
    except HttpError as exc:
        return (*events, exc.status)
    return (*events, "incomplete")


_LIMITS = [
    {},
    {"max_header_bytes": 48, "max_target_bytes": 8, "max_body_bytes": 8},  # 414/431/413 early
]


@settings(max_examples=700, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests(), st.lists(st.integers(0, 200), max_size=6), st.sampled_from(_LIMITS))
@example(b"GET / HTTP/2.1\r\nH: a\n\r\n\r\n", [22], {})  # 505 whole, 400 split, once
@example(b"GET /aaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: h\r\n\r\n", [10], _LIMITS[1])
@example(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", [55], {})
def test_any_split_gives_the_same_events_and_status(
    raw: bytes, cuts: list[int], limits: dict[str, int]
) -> None:
    raw = raw + raw  # two requests, so a split can also fall between them
    points = sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]
    whole = outcome([raw], **limits)
    assert outcome(chunks, **limits) == whole
    assert outcome([raw[i : i + 1] for i in range(len(raw))], **limits) == whole
