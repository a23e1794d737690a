"""RTT from the send stamp and the kernel's arrival stamp (ping), and the cmsg decoding.

The engine half is pure. The socket half asks this kernel for SO_TIMESTAMPNS on a plain
UDP socket over loopback (no root needed) and checks the stamp is a real arrival time.
"""

from __future__ import annotations

import select
import socket
import struct
import sys
import time
from collections.abc import Iterator

import pytest

from rawstack.codec import ECHO_REPLY, PROTO_ICMP, IcmpEcho, IPv4
from rawstack.engines.ping import EchoReply, PingSession
from rawstack.sockets.raw import STAMP_CMSG_SPACE, enable_rx_timestamps, rx_timestamp_ns

DST, SRC = "10.0.0.2", "10.0.0.1"
T0 = 1_700_000_000_000_000_000  # a CLOCK_REALTIME instant in ns


def reply_to(request: bytes) -> bytes:
    echo = IcmpEcho.decode(request)
    reply = IcmpEcho(ECHO_REPLY, echo.ident, echo.seq, echo.payload).encode()
    return IPv4(DST, SRC, PROTO_ICMP, reply).encode()


def test_rtt_runs_from_the_send_stamp_to_the_arrival_stamp() -> None:
    session = PingSession(DST, ident=9)
    seq, request = session.next_request(now=100.0, wall=1.0)
    session.mark_sent(seq, T0)
    # The loop woke up 0.8 ms later; that must not count.
    event = session.feed_ip(reply_to(request), now=100.0009, rx_ns=T0 + 42_400)
    assert isinstance(event, EchoReply)
    assert event.rtt_us == 42
    assert session.stats().rtts_us == (42,)


def test_arrival_stamp_rounds_to_the_nearest_microsecond() -> None:
    session = PingSession(DST, ident=9)
    seq, request = session.next_request(now=0.0, wall=0.0)
    session.mark_sent(seq, T0)
    event = session.feed_ip(reply_to(request), now=1.0, rx_ns=T0 + 42_500)
    assert isinstance(event, EchoReply)
    assert event.rtt_us == 43


@pytest.mark.parametrize(
    ("mark", "rx_ns"),
    [
        (False, T0 + 10_000),  # no send stamp: the caller never said when it left
        (True, None),  # no arrival stamp: the socket gave none
        (True, T0 - 5_000),  # the wall clock stepped back between send and arrival
    ],
)
def test_without_both_stamps_the_monotonic_clock_times_it(mark: bool, rx_ns: int | None) -> None:
    session = PingSession(DST, ident=9)
    seq, request = session.next_request(now=10.0, wall=0.0)
    if mark:
        session.mark_sent(seq, T0)
    event = session.feed_ip(reply_to(request), now=10.000250, rx_ns=rx_ns)
    assert isinstance(event, EchoReply)
    assert event.rtt_us == 250


def test_each_request_keeps_its_own_send_stamp() -> None:
    session = PingSession(DST, ident=9)
    seq1, first = session.next_request(now=0.0, wall=0.0)
    seq2, second = session.next_request(now=0.01, wall=0.0)
    session.mark_sent(seq1, T0)
    session.mark_sent(seq2, T0 + 10_000_000)
    late = session.feed_icmp(IPv4.decode(reply_to(first)).payload, DST, 64, 1.0, T0 + 10_070_000)
    on_time = session.feed_icmp(
        IPv4.decode(reply_to(second)).payload, DST, 64, 1.0, T0 + 10_030_000
    )
    assert isinstance(late, EchoReply)
    assert isinstance(on_time, EchoReply)
    assert (late.rtt_us, on_time.rtt_us) == (10_070, 30)


def test_marking_an_unknown_sequence_changes_nothing() -> None:
    session = PingSession(DST, ident=9)
    seq, request = session.next_request(now=0.0, wall=0.0)
    session.mark_sent(seq + 1, T0)
    event = session.feed_ip(reply_to(request), now=0.002, rx_ns=T0 + 1)
    assert isinstance(event, EchoReply)
    assert event.rtt_us == 2000  # fell back: seq itself has no send stamp


def test_a_duplicate_is_timed_from_the_same_send() -> None:
    session = PingSession(DST, ident=9)
    seq, request = session.next_request(now=0.0, wall=0.0)
    session.mark_sent(seq, T0)
    first = session.feed_ip(reply_to(request), now=1.0, rx_ns=T0 + 30_000)
    dup = session.feed_ip(reply_to(request), now=1.0, rx_ns=T0 + 55_000)
    assert isinstance(first, EchoReply)
    assert isinstance(dup, EchoReply)
    assert (first.duplicate, dup.duplicate) == (False, True)
    assert (first.rtt_us, dup.rtt_us) == (30, 55)


def _native(fmt: str, *values: int) -> bytes:
    return struct.pack(fmt, *values)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux cmsg numbers")
def test_linux_timespec_and_timeval_cmsgs_decode() -> None:
    spec = (socket.SOL_SOCKET, 35, _native("@ll", 1_700_000_000, 123_456_789))
    val = (socket.SOL_SOCKET, 29, _native("@ll", 1_700_000_000, 123_456))
    assert rx_timestamp_ns([spec]) == 1_700_000_000_123_456_789
    assert rx_timestamp_ns([val]) == 1_700_000_000_123_456_000


def test_other_cmsgs_and_short_data_are_not_stamps() -> None:
    ttl = (socket.IPPROTO_IP, 2, (64).to_bytes(4, sys.byteorder))
    wrong_level = (socket.IPPROTO_IP, 35, _native("@ll", 1, 2))
    short = (socket.SOL_SOCKET, 35, b"\x01\x02")
    assert rx_timestamp_ns([]) is None
    assert rx_timestamp_ns([ttl, wrong_level, short]) is None


@pytest.fixture
def udp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        yield rx, tx
    finally:
        rx.close()
        tx.close()


def test_the_kernel_stamps_arrival_between_send_and_read(
    udp_pair: tuple[socket.socket, socket.socket],
) -> None:
    rx, tx = udp_pair
    if not enable_rx_timestamps(rx):
        pytest.skip(f"no SO_TIMESTAMP(NS) on {sys.platform}")
    # Linux turns arrival stamping on for the whole machine from a work queue once the
    # first socket asks (net_enable_timestamp, net/core/dev.c); until that has run, a
    # datagram is stamped when it is read. So a few tries: one must be stamped at arrival.
    early = []
    for _ in range(5):
        before = time.time_ns()
        tx.sendto(b"stamp me", rx.getsockname())
        assert select.select([rx], [], [], 5.0)[0], "loopback datagram never arrived"
        time.sleep(0.02)  # delay the read on purpose: the stamp must not move with it
        data, ancillary, _flags, _addr = rx.recvmsg(64, STAMP_CMSG_SPACE)
        after = time.time_ns()
        stamp = rx_timestamp_ns(ancillary)
        assert data == b"stamp me"
        assert stamp is not None
        assert before <= stamp <= after
        early.append(stamp <= after - 15_000_000)  # taken at arrival, not at our read
        if early[-1]:
            break
    assert any(early), "every datagram was stamped when read, none at arrival"
