"""The CHAO client's RTT from kernel stamps, and the peer's choice of stamped reads."""

from __future__ import annotations

import pytest

from rawstack.codec import CHAO_REPLY, ETH_P_CHAO, Chao, Ethernet
from rawstack.engines.chao import ChaoClient, ChaoReply
from rawstack.peers.chao import timed_reader

SERVER = bytes.fromhex("020000000002")
CLIENT = bytes.fromhex("020000000001")
T0 = 1_700_000_000_000_000_000


def answer(req_frame: bytes) -> bytes:
    req = Chao.decode(Ethernet.decode(req_frame).payload)
    body = Chao(CHAO_REPLY, req.seq, req.payload).encode()
    return Ethernet(CLIENT, SERVER, ETH_P_CHAO, body).encode()


def test_rtt_is_arrival_stamp_minus_send_stamp() -> None:
    client = ChaoClient(CLIENT, SERVER)
    seq, req = client.request(b"t", now=50.0)
    client.mark_sent(seq, T0)
    got = client.feed(answer(req), now=50.5, rx_ns=T0 + 180_000)  # woke 0.5 s late
    assert got == ChaoReply(seq, "02:00:00:00:00:02", b"t", 180e-6)


@pytest.mark.parametrize(
    ("mark", "rx_ns"),
    [(False, T0 + 1000), (True, None), (True, T0 - 1)],  # missing stamp, clock stepped back
)
def test_monotonic_fallback(mark: bool, rx_ns: int | None) -> None:
    client = ChaoClient(CLIENT, SERVER)
    seq, req = client.request(b"t", now=1.0)
    if mark:
        client.mark_sent(seq, T0)
    got = client.feed(answer(req), now=1.25, rx_ns=rx_ns)
    assert got is not None
    assert got.rtt == 0.25


def test_expiry_still_runs_on_the_monotonic_clock() -> None:
    client = ChaoClient(CLIENT, SERVER)
    seq, req = client.request(b"t", now=1.0)
    client.mark_sent(seq, T0)
    assert client.expire(now=2.5, timeout=2.0) == []
    assert client.expire(now=3.0, timeout=2.0) == [seq]
    assert client.feed(answer(req), now=3.1, rx_ns=T0 + 1000) is None
    assert client.late == 1


def test_mark_sent_after_the_reply_or_for_unknown_seq_is_ignored() -> None:
    client = ChaoClient(CLIENT, SERVER)
    seq, req = client.request(b"t", now=0.0)
    client.mark_sent(seq + 7, T0)
    got = client.feed(answer(req), now=0.003, rx_ns=T0 + 5)
    assert got is not None
    assert got.rtt == pytest.approx(0.003)
    client.mark_sent(seq, T0)  # already answered: nothing left to stamp
    assert client.outstanding == []


class _PlainLink:
    """A LinkSocket without the optional stamped read (BpfSocket today)."""

    def __init__(self, frames: list[bytes]) -> None:
        self.frames = frames

    def recv_frames(self) -> list[bytes]:
        out, self.frames = self.frames, []
        return out


class _StampedLink(_PlainLink):
    def recv_frames_timed(self) -> list[tuple[bytes, int | None]]:
        return [(f, T0 + i) for i, f in enumerate(self.recv_frames())]


def test_reader_uses_stamps_when_the_link_has_them() -> None:
    read = timed_reader(_StampedLink([b"a", b"b"]))  # type: ignore[arg-type]
    assert read() == [(b"a", T0), (b"b", T0 + 1)]
    assert read() == []


def test_reader_falls_back_to_plain_frames() -> None:
    read = timed_reader(_PlainLink([b"a"]))  # type: ignore[arg-type]
    assert read() == [(b"a", None)]
