"""The quirk table against shared/QUIRKS.md, one column per kernel flavour (as in x/net)."""

from __future__ import annotations

import pytest

from rawstack.quirks import (
    CHECKSUM,
    IDENT,
    KNOWN_OS,
    LEN_EXACT,
    LEN_NOT_LONGER,
    LEN_REWRITTEN,
    LEN_WITHIN,
    OVERSIZE_FRAGMENTS,
    OVERSIZE_MAXPACKET,
    OVERSIZE_MTU,
    SOURCE,
    TABLE,
    TOTAL_LENGTH,
    KernelQuirks,
    quirks_for,
)

# The columns: one (os, kern.osreldate) probe per flavour QUIRKS.md distinguishes; FreeBSD
# >= 11.0 is split at 11.1 where the exact-ip_len check arrived (r319392).
COLUMNS: list[tuple[str, int | None]] = [
    ("linux", None),
    ("freebsd", 903000),
    ("freebsd", 1003000),
    ("freebsd", 1100122),
    ("freebsd", 1400097),
    ("darwin", None),
    ("ios", None),
    ("openbsd", None),
    ("netbsd", None),
    ("dragonfly", None),
]
T, F = True, False
R_, X_, L_, W_ = LEN_REWRITTEN, LEN_EXACT, LEN_NOT_LONGER, LEN_WITHIN
MTU, FRAG, MAXP = OVERSIZE_MTU, OVERSIZE_FRAGMENTS, OVERSIZE_MAXPACKET
_FILLS_BSD = frozenset({IDENT, SOURCE, CHECKSUM})
_FILLS_LINUX = frozenset({TOTAL_LENGTH, CHECKSUM, SOURCE, IDENT})

# Transcribed from QUIRKS.md's table and "Sources"; a row per field, a column per flavour.
#                                  Linux  FB<10  FB10  FB11.0 FB11.1 macOS  iOS   OBSD    NBSD  DFly
EXPECTED: dict[str, tuple[object, ...]] = {
    "label": ("Linux", "FreeBSD < 10.0", "FreeBSD 10.x", "FreeBSD 11.0", "FreeBSD >= 11.1",
              "macOS", "iOS", "OpenBSD", "NetBSD", "DragonFly"),
    "write_len_host_order":      (F,     T,     T,    F,     F,     T,     T,    F,      T,     T),
    "write_off_host_order":      (F,     T,     T,    F,     F,     T,     T,    F,      T,     T),
    "read_len_host_order":       (F,     T,     T,    F,     F,     T,     T,    F,      T,     T),
    "read_off_host_order":       (F,     T,     T,    F,     F,     T,     T,    F,      T,     T),
    "read_len_excludes_header":  (F,     T,     F,    F,     F,     T,     T,    F,      T,     T),
    "hdrincl_must_be_set":       (F,     T,     T,    T,     T,     T,     T,    T,      T,     T),
    "echo_request_to_raw":       (T,     F,     F,    F,     F,     F,     F,    F,      F,     F),
    "has_icmp_filter":           (T,     F,     F,    F,     F,     F,     F,    F,      F,     F),
    "has_ping_socket":           (T,     F,     F,    F,     F,     T,     T,    F,      F,     F),
    "confirmed":                 (T,     F,     F,    F,     F,     F,     F,    F,      F,     F),
    "kernel_fills": (_FILLS_LINUX, _FILLS_BSD, _FILLS_BSD, _FILLS_BSD, _FILLS_BSD,
                     _FILLS_BSD, _FILLS_BSD, _FILLS_BSD, _FILLS_BSD, _FILLS_BSD),
    # "Length checks on write": R rewritten (Linux), X exact, L ip_len > length,
    # W > length or < header length.
    "length_check": (R_,    W_,    L_,   L_,    X_,    L_,    L_,   X_,     X_,    W_),
    "oversize":     (MTU,   FRAG,  FRAG, FRAG,  FRAG,  MAXP,  MAXP, FRAG,   FRAG,  FRAG),
    "fragments_oversize":        (F,     T,     T,    T,     T,     T,     T,    T,      T,     T),
    "ident_fill_min_length":     (0,     0,     0,    0,     0,     0,     0,    0,      69,    0),
}  # fmt: skip


@pytest.mark.parametrize("field", sorted(EXPECTED))
def test_field_matches_quirks_md_in_every_column(field: str) -> None:
    got = tuple(getattr(quirks_for(os, osrel), field) for os, osrel in COLUMNS)
    assert got == EXPECTED[field]


def test_every_table_row_is_a_column() -> None:
    rows = {quirks_for(os, osrel) for os, osrel in COLUMNS}
    assert rows == set(TABLE)
    assert len({row.label for row in TABLE}) == len(TABLE)


@pytest.mark.parametrize(
    ("osrel", "label"),
    [
        (0, "FreeBSD < 10.0"),
        (999999, "FreeBSD < 10.0"),
        (1000000, "FreeBSD 10.x"),
        (1099999, "FreeBSD 10.x"),
        # nmap's and libnet's boundary, not golang/net's 1100000 (see _table.py): early
        # 11-CURRENT kernels still took host order.
        (1100000, "FreeBSD 10.x"),
        (1100029, "FreeBSD 10.x"),
        (1100030, "FreeBSD 11.0"),
        (1100999, "FreeBSD 11.0"),
        (1101000, "FreeBSD >= 11.1"),
        (1500000, "FreeBSD >= 11.1"),
    ],
)
def test_freebsd_osreldate_boundaries(osrel: int, label: str) -> None:
    assert quirks_for("freebsd", osrel).label == label


def test_host_order_flips_exactly_where_raw_sockets_became_truly_raw() -> None:
    # c26544aa7f ("Make SOCK_RAW sockets to be truly raw") came with the 1100030 bump.
    assert quirks_for("freebsd", 1100029).write_len_host_order
    assert not quirks_for("freebsd", 1100030).write_len_host_order


def test_netbsd_fills_the_id_only_from_69_bytes() -> None:
    netbsd = quirks_for("netbsd")
    assert not netbsd.fills(IDENT, 28)  # a bare echo request keeps id 0
    assert not netbsd.fills(IDENT, 68)
    assert netbsd.fills(IDENT, 69)
    assert netbsd.fills(SOURCE, 28)
    assert quirks_for("dragonfly").fills(IDENT, 28)
    assert not quirks_for("linux").fills("nothing", 100)


@pytest.mark.parametrize("name", ["FreeBSD", " freebsd ", "FREEBSD"])
def test_os_names_are_case_insensitive(name: str) -> None:
    assert quirks_for(name, 1400000) is quirks_for("freebsd", 1400000)


@pytest.mark.parametrize("alias", ["macos", "OSX"])
def test_macos_aliases_are_darwin(alias: str) -> None:
    assert quirks_for(alias) is quirks_for("darwin")


@pytest.mark.parametrize(
    ("os", "osrel", "message"),
    [
        ("windows", None, "unknown os 'windows'"),
        ("", None, "unknown os"),
        ("freebsd", None, "needs osrel"),
        ("freebsd", -1, "non-negative"),
        ("linux", 1400000, "freebsd only"),
        ("darwin", 1, "freebsd only"),
    ],
)
def test_bad_lookups_raise_value_error(os: str, osrel: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        quirks_for(os, osrel)


def test_rows_are_frozen() -> None:
    row = quirks_for("linux")
    with pytest.raises(AttributeError):
        row.confirmed = False  # type: ignore[misc]


@pytest.mark.parametrize("row", TABLE, ids=lambda r: r.label)
def test_row_invariants(row: KernelQuirks) -> None:
    assert row.os in KNOWN_OS
    assert row.kernel_fills <= {TOTAL_LENGTH, CHECKSUM, SOURCE, IDENT}
    assert row.kernel_fills_note
    # The osrel range is exactly what quirks_for resolves back to this row.
    if row.osrel_min is not None:
        assert quirks_for(row.os, row.osrel_min) is row
    if row.osrel_max is not None:
        assert quirks_for(row.os, row.osrel_max - 1) is row
        assert quirks_for(row.os, row.osrel_max) is not row
