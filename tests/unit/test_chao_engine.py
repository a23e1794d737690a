"""rawstack.engines.chao: the server's verdict per frame and the client's matching."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rawstack.codec import (
    BROADCAST_MAC,
    CHAO_REPLY,
    CHAO_REQUEST,
    ETH_P_CHAO,
    ETH_P_IP,
    Chao,
    Ethernet,
)
from rawstack.engines.chao import DROP, IGNORE, REPLY, ChaoClient, ChaoReply, server_verdict

SERVER = bytes.fromhex("020000000002")
CLIENT = bytes.fromhex("020000000001")
OTHER = bytes.fromhex("020000000003")
HELLO = b"Hello, custom chao protocol!"


def frame(
    payload: bytes, dst: bytes = SERVER, src: bytes = CLIENT, ethertype: int = ETH_P_CHAO
) -> bytes:
    return Ethernet(dst, src, ethertype, payload).encode()


def request(seq: int = 5, payload: bytes = HELLO) -> bytes:
    return Chao(CHAO_REQUEST, seq, payload).encode()


# -- server ------------------------------------------------------------------------------


@pytest.mark.parametrize("dst", [SERVER, BROADCAST_MAC])
def test_request_gets_reply_to_sender_with_same_seq_and_payload(dst: bytes) -> None:
    verdict = server_verdict(frame(request(), dst=dst), SERVER)
    assert verdict.action == REPLY
    assert verdict.frame is not None
    eth = Ethernet.decode(verdict.frame)
    assert (eth.dst, eth.src, eth.ethertype) == (CLIENT, SERVER, ETH_P_CHAO)
    assert Chao.decode(eth.payload) == Chao(CHAO_REPLY, 5, HELLO)
    assert verdict.seq == 5


def test_padding_after_the_length_is_ignored() -> None:
    short = frame(request(payload=b"hi")).ljust(60, b"\x00")  # what a NIC pads to
    verdict = server_verdict(short, SERVER)
    assert verdict.frame is not None
    assert Chao.decode(Ethernet.decode(verdict.frame).payload).payload == b"hi"
    assert len(verdict.frame) == 14 + 10 + 2  # the reply honours the length, not the padding


def test_vlan_tag_is_kept_on_the_reply() -> None:
    tagged = Ethernet(SERVER, CLIENT, ETH_P_CHAO, request(), vlan=42).encode()
    verdict = server_verdict(tagged, SERVER)
    assert verdict.frame is not None
    assert Ethernet.decode(verdict.frame).vlan_id == 42


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"XHAO" + request()[4:], "magic"),
        (request()[:7], "truncated"),
        (request()[:4] + b"\x02" + request()[5:], "version"),
        (request()[:5] + b"\x07" + request()[6:], "type"),
        (request(payload=b"abc")[:-1], "length"),
    ],
)
def test_malformed_messages_are_dropped_with_the_decode_reason(raw: bytes, reason: str) -> None:
    verdict = server_verdict(frame(raw), SERVER)
    assert verdict.action == DROP
    assert verdict.frame is None
    assert reason in verdict.reason
    assert verdict.reason.startswith("chao:")


def test_short_ethernet_frame_is_dropped() -> None:
    verdict = server_verdict(b"\x01\x02\x03", SERVER)
    assert verdict.action == DROP
    assert verdict.reason.startswith("ethernet:")


def test_wrong_ethertype_and_other_hosts_frames_are_dropped() -> None:
    assert "not CHAO" in server_verdict(frame(request(), ethertype=ETH_P_IP), SERVER).reason
    other = server_verdict(frame(request(), dst=OTHER), SERVER)
    assert other.action == DROP
    assert "not to us" in other.reason


def test_own_frames_are_ignored() -> None:
    assert server_verdict(frame(request(), src=SERVER), SERVER).action == IGNORE
    assert server_verdict(frame(request()), SERVER, outgoing=True).action == IGNORE


def test_replies_are_ignored_not_answered() -> None:
    reply = Chao(CHAO_REPLY, 5, HELLO).encode()
    verdict = server_verdict(frame(reply), SERVER)
    assert (verdict.action, verdict.frame) == (IGNORE, None)


@given(st.binary(max_size=80))
def test_random_frames_get_a_verdict_never_an_exception(data: bytes) -> None:
    verdict = server_verdict(data, SERVER)
    assert verdict.action in (REPLY, IGNORE, DROP)
    assert (verdict.frame is not None) == (verdict.action == REPLY)


# -- client ------------------------------------------------------------------------------


def answer(req_frame: bytes, src: bytes = SERVER, payload: bytes | None = None) -> bytes:
    req = Chao.decode(Ethernet.decode(req_frame).payload)
    body = Chao(CHAO_REPLY, req.seq, req.payload if payload is None else payload).encode()
    return frame(body, dst=CLIENT, src=src)


def test_client_request_frame() -> None:
    client = ChaoClient(CLIENT, SERVER, next_seq=9)
    seq, raw = client.request(HELLO, now=1.0)
    eth = Ethernet.decode(raw)
    assert (eth.dst, eth.src, eth.ethertype) == (SERVER, CLIENT, ETH_P_CHAO)
    assert Chao.decode(eth.payload) == Chao(CHAO_REQUEST, 9, HELLO)
    assert (seq, client.next_seq, client.outstanding) == (9, 10, [9])


def test_reply_matched_by_seq_with_rtt() -> None:
    client = ChaoClient(CLIENT, SERVER)
    _, first = client.request(b"a", now=1.0)
    _, second = client.request(b"b", now=2.0)
    # Replies may arrive out of order; each is matched by its own sequence number.
    got2 = client.feed(answer(second), now=2.25)
    got1 = client.feed(answer(first), now=2.5)
    assert got2 == ChaoReply(2, "02:00:00:00:00:02", b"b", 0.25)
    assert got1 == ChaoReply(1, "02:00:00:00:00:02", b"a", 1.5)
    assert client.outstanding == []


def test_duplicate_and_late_replies_are_counted_not_reported() -> None:
    client = ChaoClient(CLIENT, SERVER)
    _, first = client.request(b"a", now=0.0)
    _, second = client.request(b"b", now=0.0)
    assert client.feed(answer(first), now=0.1) is not None
    assert client.feed(answer(first), now=0.2) is None
    assert client.expire(now=5.0, timeout=2.0) == [2]
    assert client.feed(answer(second), now=6.0) is None
    assert (client.received, client.duplicates, client.late) == (1, 1, 1)


@pytest.mark.parametrize(
    "bad",
    [
        lambda f: answer(f, src=OTHER),  # a unicast exchange only accepts its peer
        lambda f: answer(f, payload=b"changed"),
        lambda f: frame(Chao.decode(Ethernet.decode(f).payload).encode(), dst=CLIENT),  # request
        lambda f: frame(Chao(CHAO_REPLY, 1, b"a").encode(), dst=OTHER),  # for someone else
        lambda f: b"\x00" * 5,
    ],
)
def test_non_matching_frames_are_ignored(bad: object) -> None:
    client = ChaoClient(CLIENT, SERVER)
    _, req = client.request(b"a", now=0.0)
    assert callable(bad)
    assert client.feed(bad(req), now=0.1) is None
    assert client.outstanding == [1]


def test_broadcast_accepts_first_replier_and_counts_the_rest() -> None:
    client = ChaoClient(CLIENT, BROADCAST_MAC)
    _, req = client.request(b"x", now=0.0)
    assert client.feed(answer(req, src=OTHER), now=0.1) is not None
    assert client.feed(answer(req, src=SERVER), now=0.1) is None
    assert client.duplicates == 1


def test_sequence_wraps_at_16_bits() -> None:
    client = ChaoClient(CLIENT, SERVER, next_seq=0xFFFF)
    assert [client.request(b"", now=0.0)[0] for _ in range(2)] == [0xFFFF, 0]


def test_next_deadline_is_the_oldest_request() -> None:
    client = ChaoClient(CLIENT, SERVER)
    assert client.next_deadline(2.0) is None
    client.request(b"", now=1.0)
    client.request(b"", now=3.0)
    assert client.next_deadline(2.0) == 3.0


def test_bad_macs_are_value_errors() -> None:
    with pytest.raises(ValueError, match="6 bytes"):
        ChaoClient(b"\x00" * 5)
