"""Which kernels refuse an IP_HDRINCL write: QUIRKS.md's "Length checks on write" table,
row by row, through rawstack.quirks.write_verdict."""

from __future__ import annotations

from typing import Literal

import pytest

from rawstack.codec import ECHO_REQUEST, PROTO_ICMP, IcmpEcho, IPv4
from rawstack.quirks import TABLE, KernelQuirks, quirks_for, wire_to_raw, write_verdict

LINUX = quirks_for("linux")
FREEBSD_9 = quirks_for("freebsd", 903000)
FREEBSD_10 = quirks_for("freebsd", 1003000)
FREEBSD_11_0 = quirks_for("freebsd", 1100122)
FREEBSD_14 = quirks_for("freebsd", 1400097)
MACOS, OPENBSD = quirks_for("darwin"), quirks_for("openbsd")
NETBSD, DRAGONFLY = quirks_for("netbsd"), quirks_for("dragonfly")
BSDS = [row for row in TABLE if row is not LINUX]


def echo(payload: bytes = b"", **ip: object) -> bytes:
    """A wire echo request from 127.0.0.1 to itself (28 bytes without payload)."""
    icmp = IcmpEcho(ECHO_REQUEST, 0, 0, payload).encode()
    return IPv4("127.0.0.1", "127.0.0.1", PROTO_ICMP, icmp, ident=11, **ip).encode()  # type: ignore[arg-type]


def with_len(raw: bytes, value: bytes) -> bytes:
    return raw[:2] + value + raw[4:]


def rejecting(raw: bytes, mtu: int = 1500) -> set[str]:
    return {row.label for row in TABLE if write_verdict(raw, row, "little", mtu) is not None}


@pytest.mark.parametrize("row", TABLE, ids=lambda row: row.label)
def test_each_kernel_accepts_its_own_format(row: KernelQuirks) -> None:
    assert write_verdict(wire_to_raw(echo(), row, "little"), row, "little") is None


def test_a_swapped_28_byte_length_is_refused_by_every_bsd_and_passed_by_linux() -> None:
    # QUIRKS.md: 0x1c00 > 28, so every BSD rejects it; Linux rewrites tot_len.
    swapped = with_len(echo(), b"\x1c\x00")  # network-order kernels read 7168
    assert rejecting(swapped) == {row.label for row in BSDS if not row.write_len_host_order}
    host_rows = [row for row in BSDS if row.write_len_host_order]
    as_host = with_len(echo(), b"\x00\x1c")  # host-order kernels read 0x1c00 = 7168
    assert {r.label for r in host_rows if write_verdict(as_host, r) is None} == set()


def test_a_swapped_length_that_is_shorter_passes_only_the_greater_than_checks() -> None:
    # 0x0201 = 513 bytes in network order, written to a host-order kernel: it reads 0x0102
    # = 258 < 513, so only exact checks refuse it (QUIRKS.md's "a length like 0x0201").
    wire = echo(bytes(513 - 28))
    assert (len(wire), wire[2:4]) == (513, b"\x02\x01")
    refusing = {r.label for r in BSDS if r.write_len_host_order and write_verdict(wire, r)}
    assert refusing == {NETBSD.label}  # exact; macOS, FreeBSD < 11, DragonFly pass it


@pytest.mark.parametrize(
    ("row", "too_long", "too_short", "off_by_one_short"),
    [
        (LINUX, False, False, False),
        (FREEBSD_9, True, True, False),
        (FREEBSD_10, True, False, False),
        (FREEBSD_11_0, True, False, False),
        (FREEBSD_14, True, True, True),
        (MACOS, True, False, False),
        (OPENBSD, True, True, True),
        (NETBSD, True, True, True),
        (DRAGONFLY, True, True, False),
    ],
    ids=lambda v: v.label if isinstance(v, KernelQuirks) else str(v),
)
def test_the_length_check_table(
    row: KernelQuirks, too_long: bool, too_short: bool, off_by_one_short: bool
) -> None:
    def verdict(ip_len: int) -> bool:
        raw = wire_to_raw(echo(b"x" * 12), row, "little")  # 40 bytes
        order: Literal["little", "big"] = "little" if row.write_len_host_order else "big"
        return write_verdict(with_len(raw, ip_len.to_bytes(2, order)), row, "little") is not None

    assert verdict(41) is too_long
    assert verdict(19) is too_short  # below the 20-byte header
    assert verdict(39) is off_by_one_short
    assert not verdict(40)


def test_oversize_rules() -> None:
    big = echo(bytes(1473 + 8 - 8))  # 1501 bytes
    assert len(big) == 1501
    # Linux: EMSGSIZE above the device MTU, whatever DF says.
    verdict = write_verdict(big, LINUX, mtu=1500)
    assert verdict is not None
    assert verdict.errno == "EMSGSIZE"
    assert write_verdict(big, LINUX, mtu=9000) is None
    # BSDs fragment it, unless Don't Fragment is set.
    assert write_verdict(wire_to_raw(big, FREEBSD_14), FREEBSD_14) is None
    df = write_verdict(wire_to_raw(echo(bytes(1473), df=True), FREEBSD_14), FREEBSD_14)
    assert df is not None
    assert "Don't Fragment" in str(df)
    # xnu checks only IP_MAXPACKET.
    assert write_verdict(wire_to_raw(echo(bytes(1473), df=True), MACOS), MACOS) is None


def test_header_length_beyond_the_datagram_is_einval_everywhere() -> None:
    raw = bytes([0x4F]) + echo()[1:]  # ihl 15: a 60-byte header in 28 bytes
    for row in TABLE:
        verdict = write_verdict(raw, row)
        assert verdict is not None
        assert verdict.errno == "EINVAL"
    assert write_verdict(b"\x45" * 10, LINUX) is not None


def test_bad_byteorder_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="byteorder"):
        write_verdict(echo(), LINUX, "middle")
