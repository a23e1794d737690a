"""rawstack.codec.pcap: classic libpcap files, both byte orders, both resolutions."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from _strategies import SEED_004, h
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import DecodeError
from rawstack.codec.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    MAX_SNAPLEN,
    PcapHeader,
    PcapRecord,
    read_pcap,
    write_pcap,
)

# A little-endian microsecond file (what tcpdump writes on x86) holding SEED_004 at
# 2023-11-14T22:13:20.000042Z; 32-bit rows as in draft-ietf-opsawg-pcap.
LE_MICRO = (
    h("""
    d4 c3 b2 a1
    02 00 04 00
    00 00 00 00
    00 00 00 00
    00 00 04 00
    65 00 00 00
    00 f1 53 65
    2a 00 00 00
    1c 00 00 00
    1c 00 00 00
""")
    + SEED_004
)
LE_MICRO_PARSED = (
    PcapHeader(LINKTYPE_RAW),
    [PcapRecord(SEED_004, 1700000000, 42, 28)],
)

# Big-endian nanosecond, Ethernet, two records: one cut at a snaplen of 16 bytes.
FRAME = h("ffffffffffff 020000000001 88b5") + b"CHAO\x01\x01\x00\x01\x00\x00"
BE_NANO = (
    h("""
    a1 b2 3c 4d
    00 02 00 04
    ff ff ff c4
    00 00 00 00
    00 00 00 10
    00 00 00 01
    00 00 00 01
    3b 9a c9 ff
    00 00 00 10
    00 00 00 18
""")
    + FRAME[:16]
    + h("""
    ff ff ff ff
    00 00 00 00
    00 00 00 00
    00 00 00 3c
""")
)
BE_NANO_PARSED = (
    PcapHeader(LINKTYPE_ETHERNET, 16, nanosecond=True, byteorder="big", thiszone=-60),
    [PcapRecord(FRAME[:16], 1, 999_999_999, 24), PcapRecord(b"", 0xFFFFFFFF, 0, 60)],
)

VECTORS = [
    pytest.param(LE_MICRO, LE_MICRO_PARSED, id="le-micro-raw"),
    pytest.param(BE_NANO, BE_NANO_PARSED, id="be-nano-ethernet"),
    pytest.param(LE_MICRO[:24], (PcapHeader(LINKTYPE_RAW), []), id="no-records"),
]


def _any(value: object) -> Any:
    """Let a test hand the API a wrongly typed value on purpose."""
    return value


def _encode(header: PcapHeader, records: list[PcapRecord]) -> bytes:
    return header.encode() + b"".join(record.encode(header) for record in records)


@pytest.mark.parametrize(("wire", "parsed"), VECTORS)
def test_decode_vector(wire: bytes, parsed: tuple[PcapHeader, list[PcapRecord]]) -> None:
    assert read_pcap(wire) == parsed


@pytest.mark.parametrize(("wire", "parsed"), VECTORS)
def test_encode_vector(wire: bytes, parsed: tuple[PcapHeader, list[PcapRecord]]) -> None:
    assert _encode(*parsed) == wire


def test_write_pcap_builds_the_le_micro_vector() -> None:
    assert write_pcap([PcapRecord(SEED_004, 1700000000, 42)], LINKTYPE_RAW) == LE_MICRO


def test_write_pcap_options_reach_the_header() -> None:
    wire = write_pcap([], 1, snaplen=16, nanosecond=True, byteorder="big")
    assert PcapHeader.decode(wire) == PcapHeader(1, 16, nanosecond=True, byteorder="big")
    assert wire[:4] == h("a1b23c4d")


@pytest.mark.parametrize(
    ("header", "expected_ns"),
    [
        (PcapHeader(1), 1_000_000_999_000),
        (PcapHeader(1, nanosecond=True), 1_000_000_000_999),
    ],
)
def test_time_ns_follows_the_resolution(header: PcapHeader, expected_ns: int) -> None:
    assert PcapRecord(b"", 1000, 999).time_ns(header) == expected_ns


def test_wire_length_defaults_to_the_captured_length() -> None:
    assert PcapRecord(b"abc").wire_length == 3
    assert PcapRecord(b"abc", orig_len=9).wire_length == 9


def test_bytes_like_input_is_accepted() -> None:
    assert read_pcap(bytearray(LE_MICRO)) == LE_MICRO_PARSED
    assert read_pcap(memoryview(LE_MICRO)) == LE_MICRO_PARSED
    assert PcapRecord(_any(bytearray(b"ab"))).data == b"ab"


def _file(records: bytes, header: bytes = LE_MICRO[:24]) -> bytes:
    return header + records


RECORD_OK = h("00000000 00000000 02000000 02000000") + b"ab"

ERROR_VECTORS = [
    pytest.param(b"", 0, "needs 24 bytes, got 0", id="empty"),
    pytest.param(LE_MICRO[:23], 0, "needs 24 bytes, got 23", id="short-header"),
    pytest.param(h("0a0d0d0a") + bytes(20), 0, "pcapng file", id="pcapng"),
    pytest.param(h("a1b2c3d5") + bytes(20), 0, "unknown magic 0xa1b2c3d5", id="magic"),
    pytest.param(h("a1b2cd34") + bytes(20), 0, "unknown magic 0xa1b2cd34", id="modified-pcap"),
    pytest.param(h("d4c3b2a1 0100 0400") + bytes(16), 4, "version 1.4 is not 2.x", id="v1"),
    pytest.param(_file(RECORD_OK[:15]), 24, "needs 16 bytes, got 15", id="short-record"),
    pytest.param(_file(RECORD_OK[:17]), 32, "runs past the end", id="cut-data"),
    pytest.param(_file(RECORD_OK + b"\x00"), 42, "needs 16 bytes, got 1", id="trailing-byte"),
    pytest.param(
        _file(h("00000000 40420f00 00000000 00000000")),
        28,
        "fraction 1000000 is a second or more",
        id="usec-overflow",
    ),
    pytest.param(
        _file(RECORD_OK[:12] + h("01000000") + b"ab"),
        32,
        "captured length 2 exceeds original length 1",
        id="incl-over-orig",
    ),
    pytest.param(
        BE_NANO[:24] + h("00000000 00000000 00000011 00000011") + bytes(17),
        32,
        "captured length 17 exceeds snaplen 16",
        id="over-snaplen",
    ),
]


@pytest.mark.parametrize(("wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(wire: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        read_pcap(wire)
    assert info.value.layer == "pcap"
    assert info.value.offset == offset
    assert reason in info.value.reason


def test_nanosecond_fraction_limit_is_a_billion() -> None:
    header = BE_NANO[:24]
    ok = h("00000000 3b9ac9ff 00000000 00000000")
    assert read_pcap(header + ok)[1] == [PcapRecord(b"", 0, 999_999_999, orig_len=0)]
    with pytest.raises(DecodeError, match="fraction 1000000000"):
        read_pcap(header + h("00000000 3b9aca00 00000000 00000000"))


@pytest.mark.parametrize("wire", [LE_MICRO, BE_NANO])
def test_every_prefix_decodes_or_raises_decode_error(wire: bytes) -> None:
    boundaries = {24, len(wire)}
    for cut in range(len(wire) + 1):
        if cut in boundaries or (wire is BE_NANO and cut == 24 + 16 + 16):
            read_pcap(wire[:cut])
        else:
            with pytest.raises(DecodeError):
                read_pcap(wire[:cut])


API_MISUSE = [
    pytest.param(lambda: read_pcap(_any("d4c3b2a1")), TypeError, "expected bytes", id="str-input"),
    pytest.param(
        lambda: PcapHeader.decode(_any(None)), TypeError, "expected bytes", id="none-input"
    ),
    pytest.param(lambda: PcapHeader(-1), ValueError, "linktype", id="linktype"),
    pytest.param(lambda: PcapHeader(1, snaplen=1 << 32), ValueError, "snaplen", id="snaplen"),
    pytest.param(lambda: PcapHeader(1, byteorder="native"), ValueError, "byteorder", id="order"),
    pytest.param(lambda: PcapHeader(1, nanosecond=_any(1)), TypeError, "nanosecond", id="nano-int"),
    pytest.param(lambda: PcapHeader(1, thiszone=_any(1.5)), TypeError, "thiszone", id="zone-float"),
    pytest.param(lambda: PcapHeader(1, thiszone=1 << 31), ValueError, "thiszone", id="zone-big"),
    pytest.param(lambda: PcapHeader(1, version_major=1 << 16), ValueError, "version", id="ver"),
    pytest.param(lambda: PcapRecord(_any("ab")), TypeError, "data must be bytes", id="str-data"),
    pytest.param(lambda: PcapRecord(b"", ts_sec=-1), ValueError, "ts_sec", id="ts-sec"),
    pytest.param(lambda: PcapRecord(b"", ts_frac=1 << 32), ValueError, "ts_frac", id="frac"),
    pytest.param(lambda: PcapRecord(b"abc", orig_len=2), ValueError, "below", id="orig-short"),
    pytest.param(
        lambda: write_pcap([PcapRecord(b"", 0, 1_000_000)], 1),
        ValueError,
        "1000000 microseconds is a second or more",
        id="usec-overflow",
    ),
    pytest.param(
        lambda: write_pcap([PcapRecord(b"x" * 17)], 1, snaplen=16),
        ValueError,
        "17 captured bytes exceed snaplen 16",
        id="over-snaplen",
    ),
    pytest.param(
        lambda: write_pcap([_any(b"ab")], 1), TypeError, "expected PcapRecord", id="bytes"
    ),
]


@pytest.mark.parametrize(("call", "error", "match"), API_MISUSE)
def test_api_misuse(call: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        call()


def test_nanosecond_writer_accepts_what_microsecond_refuses() -> None:
    wire = write_pcap([PcapRecord(b"", 0, 999_999_999)], 1, nanosecond=True)
    assert read_pcap(wire)[1][0].ts_frac == 999_999_999


headers = st.builds(
    PcapHeader,
    linktype=st.integers(0, 0xFFFFFFFF),
    snaplen=st.integers(64, MAX_SNAPLEN),
    nanosecond=st.booleans(),
    byteorder=st.sampled_from(["little", "big"]),
    version_minor=st.integers(0, 0xFFFF),
    thiszone=st.integers(-(1 << 31), (1 << 31) - 1),
    sigfigs=st.integers(0, 0xFFFFFFFF),
)


@st.composite
def captures(draw: st.DrawFn) -> tuple[PcapHeader, list[PcapRecord]]:
    header = draw(headers)
    records = draw(
        st.lists(
            st.builds(
                PcapRecord,
                data=st.binary(max_size=64),
                ts_sec=st.integers(0, 0xFFFFFFFF),
                ts_frac=st.integers(0, header.ticks_per_second - 1),
                orig_len=st.integers(64, 0xFFFFFFFF),
            ),
            max_size=5,
        )
    )
    return header, records


@settings(max_examples=200)
@given(captures())
def test_round_trip(capture: tuple[PcapHeader, list[PcapRecord]]) -> None:
    header, records = capture
    wire = _encode(header, records)
    assert read_pcap(wire) == (header, records)


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_fuzz_random_bytes_decode_or_raise_decode_error(buf: bytes) -> None:
    with contextlib.suppress(DecodeError):
        read_pcap(buf)


@settings(max_examples=300)
@given(st.integers(0, len(BE_NANO) - 1), st.integers(0, 255))
def test_fuzz_one_changed_byte_decodes_or_raises_decode_error(at: int, value: int) -> None:
    wire = BE_NANO[:at] + bytes([value]) + BE_NANO[at + 1 :]
    try:
        header, records = read_pcap(wire)
    except DecodeError:
        return
    assert _encode(header, records) == wire
