"""wire_to_raw / raw_to_wire / wire_to_read: vectors per kernel flavour, then properties.

Vectors are 32-bit rows like the RFC 791 diagram. Their checksums were computed with
scapy (an independent implementation) and are re-verified by it below.
"""

from __future__ import annotations

import struct
from typing import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.utils import checksum as scapy_checksum

from rawstack.quirks import TABLE, KernelQuirks, quirks_for, raw_to_wire, wire_to_raw, wire_to_read

Converter = Callable[[bytes, KernelQuirks, str], bytes]


def rows(*words: str) -> bytes:
    return bytes.fromhex("".join(words))


PAYLOAD = b"hello, kernel"  # 13 bytes: ip_len 33 = 0x0021 is not a palindrome
# A fragment (MF, offset 1) so ip_off = 0x2001 is not a palindrome either.
WIRE = rows("45000021", "abcd2001", "40112afa", "c0000201", "c0000202") + PAYLOAD
HOST_WRITE = rows("45002100", "abcd0120", "401128fc", "c0000201", "c0000202") + PAYLOAD
# Reads keep the checksum that arrived on the wire.
HOST_READ = rows("45002100", "abcd0120", "40112afa", "c0000201", "c0000202") + PAYLOAD
HOST_READ_NO_HDR = rows("45000d00", "abcd0120", "40112afa", "c0000201", "c0000202") + PAYLOAD

HOST_ORDER_NO_HDR = ("FreeBSD < 10.0", "macOS", "iOS", "NetBSD", "DragonFly")
# (flavour, what to write on a little-endian target, what a read returns there)
VECTORS = [
    ("Linux", WIRE, WIRE),
    ("FreeBSD < 10.0", HOST_WRITE, HOST_READ_NO_HDR),
    ("FreeBSD 10.x", HOST_WRITE, HOST_READ),
    ("FreeBSD 11.0", WIRE, WIRE),
    ("FreeBSD >= 11.1", WIRE, WIRE),
    ("macOS", HOST_WRITE, HOST_READ_NO_HDR),
    ("iOS", HOST_WRITE, HOST_READ_NO_HDR),
    ("OpenBSD", WIRE, WIRE),
    ("NetBSD", HOST_WRITE, HOST_READ_NO_HDR),
    ("DragonFly", HOST_WRITE, HOST_READ_NO_HDR),
]
BY_LABEL = {row.label: row for row in TABLE}


def test_vectors_cover_every_row() -> None:
    assert {label for label, _, _ in VECTORS} == set(BY_LABEL)


def test_vector_checksums_verify_independently() -> None:
    assert scapy_checksum(WIRE[:20]) == 0
    assert scapy_checksum(HOST_WRITE[:20]) == 0


@pytest.mark.parametrize(("label", "written", "read"), VECTORS, ids=[v[0] for v in VECTORS])
def test_little_endian_vectors(label: str, written: bytes, read: bytes) -> None:
    q = BY_LABEL[label]
    assert wire_to_raw(WIRE, q, "little") == written
    assert wire_to_read(WIRE, q, "little") == read
    assert raw_to_wire(read, q, "little") == WIRE


@pytest.mark.parametrize(("label", "written", "read"), VECTORS, ids=[v[0] for v in VECTORS])
def test_big_endian_host_order_is_network_order(label: str, written: bytes, read: bytes) -> None:
    q = BY_LABEL[label]
    assert wire_to_raw(WIRE, q, "big") == WIRE
    expected_read = WIRE
    if label in HOST_ORDER_NO_HDR:
        expected_read = WIRE[:2] + (len(WIRE) - 20).to_bytes(2, "big") + WIRE[4:]
    assert wire_to_read(WIRE, q, "big") == expected_read
    assert raw_to_wire(expected_read, q, "big") == WIRE


def test_seed_004_macos_echo_request() -> None:
    wire = rows("4500001c", "000b0000", "40017cd4", "7f000001", "7f000001", "0800f7ff", "00000000")
    expected = rows(
        "45001c00", "000b0000", "400160f0", "7f000001", "7f000001", "0800f7ff", "00000000"
    )
    assert wire_to_raw(wire, quirks_for("darwin"), "little") == expected


def test_seed_004_macos_echo_reply_read() -> None:
    # Seed 004: the reply's ip_len arrives as 08 00 (28 - 20 = 8, host order).
    wire = rows("4500001c", "000b0000", "40017cd4", "7f000001", "7f000001", "0000ffff", "00000000")
    read = wire_to_read(wire, quirks_for("darwin"), "little")
    assert read[2:4] == b"\x08\x00"
    assert raw_to_wire(read, quirks_for("darwin"), "little") == wire


def test_wire_to_raw_fixes_a_zero_checksum() -> None:
    zeroed = WIRE[:10] + b"\0\0" + WIRE[12:]
    assert wire_to_raw(zeroed, quirks_for("linux"), "little") == WIRE


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (b"", "too short"),
        (WIRE[:19], "too short"),
        (b"\x65" + WIRE[1:], "not an IPv4 packet: version 6"),
        (b"\x44" + WIRE[1:], "bad IPv4 header length 16"),
        (b"\x4f" + WIRE[1:], "bad IPv4 header length 60"),
    ],
)
@pytest.mark.parametrize("convert", [wire_to_raw, raw_to_wire, wire_to_read])
def test_malformed_packets_raise_value_error(
    convert: Converter, packet: bytes, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        convert(packet, quirks_for("darwin"), "little")


@pytest.mark.parametrize("convert", [wire_to_raw, raw_to_wire, wire_to_read])
def test_bad_byteorder_raises_value_error(convert: Converter) -> None:
    with pytest.raises(ValueError, match="byteorder"):
        convert(WIRE, quirks_for("linux"), "middle")


def test_raw_to_wire_rejects_length_overflow() -> None:
    read = rows("4500fff0", "abcd0120", "40112afa", "c0000201", "c0000202")
    with pytest.raises(ValueError, match="overflows"):
        raw_to_wire(read, quirks_for("darwin"), "big")


def test_wire_to_read_rejects_length_below_header() -> None:
    short = WIRE[:2] + b"\x00\x10" + WIRE[4:]
    with pytest.raises(ValueError, match="shorter than"):
        wire_to_read(short, quirks_for("darwin"), "little")


@st.composite
def wire_packets(draw: st.DrawFn) -> bytes:
    """Valid wire IPv4 packets: any options, fields and payload, correct length and checksum."""
    words = draw(st.integers(0, 10))
    options = draw(st.binary(min_size=4 * words, max_size=4 * words))
    payload = draw(st.binary(max_size=64))
    hlen = 20 + len(options)
    header = bytearray(
        struct.pack(
            "!BBHHHBBH4s4s",
            0x40 | hlen // 4,
            draw(st.integers(0, 255)),
            hlen + len(payload),
            draw(st.integers(0, 0xFFFF)),
            draw(st.integers(0, 0xFFFF)),
            draw(st.integers(0, 255)),
            draw(st.integers(0, 255)),
            0,
            draw(st.binary(min_size=4, max_size=4)),
            draw(st.binary(min_size=4, max_size=4)),
        )
        + options
    )
    header[10:12] = struct.pack("!H", scapy_checksum(bytes(header)))
    return bytes(header) + payload


ROWS = st.sampled_from(TABLE)
ORDERS = st.sampled_from(["little", "big"])


def _write_matches_read(q: KernelQuirks) -> bool:
    return (
        q.write_len_host_order == q.read_len_host_order
        and q.write_off_host_order == q.read_off_host_order
        and not q.read_len_excludes_header
    )


@given(wire_packets(), ROWS, ORDERS)
def test_read_then_raw_to_wire_restores_the_wire(packet: bytes, q: KernelQuirks, bo: str) -> None:
    assert raw_to_wire(wire_to_read(packet, q, bo), q, bo) == packet


@given(wire_packets(), ROWS, ORDERS)
def test_round_trip_where_write_and_read_formats_agree(
    packet: bytes, q: KernelQuirks, bo: str
) -> None:
    if _write_matches_read(q):
        assert raw_to_wire(wire_to_raw(packet, q, bo), q, bo) == packet


@given(wire_packets(), ROWS, ORDERS)
def test_written_form_is_what_the_kernel_parses(packet: bytes, q: KernelQuirks, bo: str) -> None:
    written = wire_to_raw(packet, q, bo)
    hlen = (packet[0] & 0x0F) * 4
    changed = {i for i, (a, b) in enumerate(zip(packet, written)) if a != b}
    assert len(written) == len(packet)
    assert changed <= {2, 3, 6, 7, 10, 11}
    assert scapy_checksum(written[:hlen]) == 0  # valid over the bytes as written

    def kernel_view(at: int, host_order: bool) -> int:
        fmt = "<H" if host_order and bo == "little" else "!H"
        value: int = struct.unpack_from(fmt, written, at)[0]
        return value

    assert kernel_view(2, q.write_len_host_order) == len(packet)
    assert kernel_view(6, q.write_off_host_order) == struct.unpack_from("!H", packet, 6)[0]
