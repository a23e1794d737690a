"""The IPv6 section of the quirk table against docs/ipv6.md, one column per kernel."""

from __future__ import annotations

import struct

import pytest

from rawstack.quirks import KNOWN_OS, TABLE6, Ipv6Quirks, host_ipv6_quirks, ipv6_quirks_for
from rawstack.quirks._ipv6 import (
    ANCILLARY,
    CHECKSUM_OPTION_EINVAL,
    CHECKSUM_OPTION_NO_CHANGE,
    HDRINCL,
    RFC3542_SEND,
)

COLUMNS = ["linux", "freebsd", "darwin", "ios", "openbsd", "netbsd", "dragonfly"]
T, F = True, False
E, N = CHECKSUM_OPTION_EINVAL, CHECKSUM_OPTION_NO_CHANGE
H, A = HDRINCL, ANCILLARY

# Transcribed from docs/ipv6.md's table; a row per field, a column per kernel.
#                                    Linux  FBSD  macOS  iOS   OBSD  NBSD  DFly
EXPECTED: dict[str, tuple[object, ...]] = {
    "header_write":                  (H,     A,    A,     A,    A,    A,    A),
    "hdrincl_option":                (36,    None, None,  None, None, None, None),
    "ipproto_raw_implies_hdrincl":   (T,     F,    F,     F,    F,    F,    F),
    "icmp6_checksum_by_kernel":      (T,     T,    T,     T,    T,    T,    T),
    "icmp6_checksum_option":         (E,     N,    N,     N,    N,    N,    N),
    "checksum_option_for_others":    (T,     T,    T,     T,    T,    T,    T),
    "odd_checksum_offset_einval":    (T,     T,    T,     T,    T,    T,    T),
    "read_includes_header":          (F,     F,    F,     F,    F,    F,    F),
    "echo_request_to_raw":           (T,     T,    T,     T,    T,    T,    T),
    "filter_level":                  (58,    58,   58,    58,   58,   58,   58),
    "filter_option":                 (1,     18,   18,    18,   18,   18,   18),
    "filter_bit_passes":             (F,     T,    T,     T,    T,    T,    T),
    "echo_ignore_sysctl": ("net.ipv6.icmp.echo_ignore_all", None, None, None, None, None, None),
    "has_ping_socket":               (T,     F,    T,     T,    F,    F,    F),
    "confirmed":                     (T,     F,    F,     F,    F,    F,    F),
}  # fmt: skip


@pytest.mark.parametrize("field", sorted(EXPECTED))
def test_field_matches_the_doc_in_every_column(field: str) -> None:
    assert tuple(getattr(ipv6_quirks_for(os), field) for os in COLUMNS) == EXPECTED[field]


def test_every_os_has_one_row() -> None:
    assert sorted(row.os for row in TABLE6) == sorted(KNOWN_OS)
    assert {ipv6_quirks_for(os) for os in COLUMNS} == set(TABLE6)


@pytest.mark.parametrize("row", TABLE6, ids=lambda r: r.label)
def test_row_invariants(row: Ipv6Quirks) -> None:
    assert row.ancillary_send == RFC3542_SEND
    assert row.hdrincl_kernel_fills == frozenset()
    # A hand-built header is possible exactly where the option (or IPPROTO_RAW) exists.
    assert (row.header_write == HDRINCL) == (row.hdrincl_option is not None)


def _words(data: bytes) -> tuple[int, ...]:
    return struct.unpack("=8I", data)


def test_filter_bytes_follow_each_kernels_bit_meaning() -> None:
    echo_reply = frozenset({129})
    linux = _words(ipv6_quirks_for("linux").filter_bytes(echo_reply))
    bsd = _words(ipv6_quirks_for("freebsd").filter_bytes(echo_reply))
    # Linux blocks set bits: all set but type 129 (word 4, bit 1). BSD passes set bits.
    assert linux == (0xFFFFFFFF,) * 4 + (0xFFFFFFFD,) + (0xFFFFFFFF,) * 3
    assert bsd == (0,) * 4 + (0x00000002,) + (0,) * 3
    assert ipv6_quirks_for("linux").filter_bytes(frozenset(range(256))) == bytes(32)


def test_lookup_names_and_host_detection() -> None:
    assert ipv6_quirks_for(" MacOS ") is ipv6_quirks_for("darwin")
    assert host_ipv6_quirks("openbsd").label == "OpenBSD"
    assert host_ipv6_quirks(environ={}, system=lambda: "Linux").os == "linux"
    with pytest.raises(ValueError, match="unknown os"):
        ipv6_quirks_for("plan9")
