"""IPv4 fragmentation and options: RFC 791's rules, and scapy (an independent implementation)
reassembling what we cut and agreeing on the option updates."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import PROTO_ICMP, DecodeError, IPv4
from rawstack.codec.fragment import fragment
from rawstack.codec.ipv4_options import (
    OPT_LSRR,
    OPT_RR,
    OPT_TS,
    TS_ADDR,
    TS_ONLY,
    TS_PRESPEC,
    echo_reply_options,
    fragment_options,
    record_route,
    split_options,
    timestamp,
)

SRC, DST = "10.0.0.1", "10.0.0.2"
US = bytes([10, 0, 0, 2])


def datagram(size: int, **fields: object) -> IPv4:
    payload = bytes(i & 0xFF for i in range(size))
    return IPv4(SRC, DST, PROTO_ICMP, payload, ident=0x4242, **fields)  # type: ignore[arg-type]


def reassemble(fragments: list[IPv4]) -> bytes:
    data = bytearray()
    for frag in sorted(fragments, key=lambda f: f.frag_offset):
        assert frag.frag_offset * 8 == len(data)  # no gap, no overlap
        data += frag.payload
    return bytes(data)


def test_a_datagram_that_fits_is_returned_as_it_is() -> None:
    d = datagram(1480)
    assert fragment(d, 1500) == [d]


def test_ping_s_1473_is_two_fragments() -> None:
    # iputils -s 1473: 1473 + 8 ICMP = 1481 bytes of IP payload, one byte over a 1500 MTU.
    d = datagram(1481)
    first, second = fragment(d, 1500)
    assert (len(first.encode()), first.mf, first.frag_offset) == (1500, True, 0)
    assert (len(second.encode()), second.mf, second.frag_offset) == (21, False, 185)
    assert {first.ident, second.ident} == {0x4242}
    assert all(IPv4.decode(f.encode(), verify=True) for f in (first, second))


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, 65515), mtu=st.integers(68, 9000))
def test_fragments_fit_the_mtu_and_reassemble(size: int, mtu: int) -> None:
    d = datagram(size)
    frags = fragment(d, mtu)
    assert all(len(f.encode()) <= mtu for f in frags)
    assert all(len(f.payload) % 8 == 0 for f in frags[:-1])
    assert [f.mf for f in frags] == [True] * (len(frags) - 1) + [False]
    assert reassemble(frags) == d.payload


def test_a_fragment_of_a_fragment_keeps_its_offset_and_more_fragments() -> None:
    middle = datagram(2000, frag_offset=100, mf=True)
    frags = fragment(middle, 1000)
    assert frags[0].frag_offset == 100
    assert frags[-1].mf  # the original was not the last fragment either
    assert all(f.mf for f in frags)


def test_only_copied_options_go_past_the_first_fragment() -> None:
    rr = bytes([OPT_RR, 7, 4]) + bytes(4)  # not copied (class 0, number 7)
    security = bytes([130, 3, 0])  # copied (0x80 set)
    options = rr + security + b"\x00\x00"
    frags = fragment(datagram(3000, options=options), 1500)
    assert frags[0].options == options
    assert all(f.options == security + b"\x00" for f in frags[1:])
    assert fragment_options(options) == security + b"\x00"


def test_dont_fragment_and_tiny_mtu_are_refused() -> None:
    with pytest.raises(ValueError, match="Don't Fragment"):
        fragment(datagram(2000, df=True), 1500)
    with pytest.raises(ValueError, match="no room"):
        fragment(datagram(100), 27)


def test_scapy_reassembles_our_fragments_of_an_echo_request() -> None:
    scapy = pytest.importorskip("scapy.all", reason="scapy is not installed")
    from rawstack.codec import ECHO_REQUEST, IcmpEcho

    echo = IcmpEcho(ECHO_REQUEST, 7, 1, bytes(range(256)) * 250).encode()
    d = IPv4(SRC, DST, PROTO_ICMP, echo, ident=0x1234)
    frags = [scapy.IP(f.encode()) for f in fragment(d, 1500)]
    assert len(frags) == 44
    whole = scapy.defragment(frags)
    assert len(whole) == 1
    assert bytes(whole[0]) == d.encode()
    assert whole[0][scapy.ICMP].seq == 1


def test_split_options_walks_nop_and_stops_at_end_of_list() -> None:
    rr = bytes([OPT_RR, 7, 4]) + bytes(4)
    assert split_options(b"\x01" + rr + b"\x00\xff\xff\xff") == [b"\x01", rr]


@pytest.mark.parametrize("bad", [b"\x07", b"\x07\x01\x04", b"\x07\x09\x04\x00"])
def test_split_options_rejects_bad_lengths(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        split_options(bad)


def test_record_route_adds_at_the_pointer_until_full() -> None:
    empty = bytes([OPT_RR, 11, 4]) + bytes(8)
    once = record_route(empty, "10.0.0.2")
    assert once == bytes([OPT_RR, 11, 8]) + US + bytes(4)
    twice = record_route(once, "10.0.0.1")
    assert twice == bytes([OPT_RR, 11, 12]) + US + bytes([10, 0, 0, 1])
    assert record_route(twice, "10.0.0.9") == twice  # full: left as it is


def test_timestamp_only_registers_or_counts_overflow() -> None:
    opt = bytes([OPT_TS, 8, 5, TS_ONLY]) + bytes(4)
    stamped = timestamp(opt, "10.0.0.2", 0x01020304)
    assert stamped == bytes([OPT_TS, 8, 9, TS_ONLY, 1, 2, 3, 4])
    overflowed = timestamp(stamped, "10.0.0.2", 5)
    assert overflowed == bytes([OPT_TS, 8, 9, 0x10 | TS_ONLY, 1, 2, 3, 4])
    at_15 = bytes([OPT_TS, 8, 9, 0xF0]) + bytes(4)
    with pytest.raises(DecodeError, match="overflow"):
        timestamp(at_15, "10.0.0.2", 5)


def test_timestamp_with_addresses_and_prespecified() -> None:
    opt = bytes([OPT_TS, 12, 5, TS_ADDR]) + bytes(8)
    assert timestamp(opt, "10.0.0.2", 9) == bytes([OPT_TS, 12, 13, TS_ADDR]) + US + b"\0\0\0\x09"
    named = bytes([OPT_TS, 20, 5, TS_PRESPEC]) + bytes([10, 0, 0, 1]) + bytes(4) + US + bytes(4)
    assert timestamp(named, "10.0.0.2", 9) == named  # the next named host is 10.0.0.1
    turn = bytes([OPT_TS, 12, 5, TS_PRESPEC]) + US + bytes(4)
    registered = bytes([OPT_TS, 12, 13, TS_PRESPEC]) + US + b"\0\0\0\x09"
    assert timestamp(turn, "10.0.0.2", 9) == registered


@pytest.mark.parametrize(
    "bad", [bytes([OPT_TS, 8, 4, 0]) + bytes(4), bytes([OPT_TS, 8, 5, 2]) + bytes(4)]
)
def test_timestamp_bad_pointer_or_flag(bad: bytes) -> None:
    with pytest.raises(DecodeError):
        timestamp(bad, "10.0.0.2", 1)


def test_echo_reply_keeps_rr_and_ts_updated_and_drops_the_rest() -> None:
    rr = bytes([OPT_RR, 11, 8, 10, 0, 0, 1]) + bytes(4)
    ts = bytes([OPT_TS, 8, 5, TS_ONLY]) + bytes(4)
    got = echo_reply_options(b"\x01" + rr + ts, "10.0.0.2", 7)
    stamped_ts = bytes([OPT_TS, 8, 9, 0, 0, 0, 0, 7])
    assert got == bytes([OPT_RR, 11, 12, 10, 0, 0, 1]) + US + stamped_ts + b"\x00"  # padded
    assert echo_reply_options(b"", "10.0.0.2", 7) == b""
    lsrr = bytes([OPT_LSRR, 7, 4, 10, 0, 0, 9])
    assert echo_reply_options(lsrr + b"\x00", "10.0.0.2", 7) is None


def test_scapy_reads_our_updated_options() -> None:
    scapy = pytest.importorskip("scapy.all", reason="scapy is not installed")
    rr = bytes([OPT_RR, 39, 4]) + bytes(36)  # what iputils -R sends: room for 9
    options = echo_reply_options(record_route(rr, "10.0.0.1"), "10.0.0.2", 0)
    assert options is not None
    parsed = scapy.IP(IPv4(DST, SRC, PROTO_ICMP, b"", options=options).encode())
    (opt,) = [o for o in parsed.options if o.option == OPT_RR]
    assert opt.routers[:2] == ["10.0.0.1", "10.0.0.2"]
    assert opt.pointer == 12
    assert struct.unpack("!B", options[2:3])[0] == 12
