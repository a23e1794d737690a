"""rawstack.sockets.raw6 without root: RFC 3542 ancillary data both ways, resolution."""

from __future__ import annotations

import socket
import sys

import pytest

from rawstack.errors import UsageError
from rawstack.quirks import ipv6_quirks_for
from rawstack.sockets import raw6
from rawstack.sockets.raw6 import header_cmsgs, open_raw6, open_raw_icmp6, resolve

pytestmark = pytest.mark.skipif(
    raw6.IPV6_HOPLIMIT is None or raw6.IPV6_PKTINFO is None,
    reason="this Python's socket module has no RFC 3542 constants",
)


def test_header_cmsgs_are_rfc3542_ints_and_in6_pktinfo() -> None:
    cmsgs = header_cmsgs(hop_limit=7, tclass=0x20, src="2001:db8::1", dontfrag=True)
    by_kind: dict[int | None, bytes] = {
        kind: data for level, kind, data in cmsgs if level == socket.IPPROTO_IPV6
    }
    assert by_kind[raw6.IPV6_HOPLIMIT] == (7).to_bytes(4, sys.byteorder)  # a native int
    assert raw6.IPV6_TCLASS in by_kind
    assert raw6.IPV6_DONTFRAG in by_kind
    pktinfo = by_kind[raw6.IPV6_PKTINFO]
    assert pktinfo[:16] == socket.inet_pton(socket.AF_INET6, "2001:db8::1")
    assert int.from_bytes(pktinfo[16:20], sys.byteorder) == 0  # ifindex 0: route as usual
    assert header_cmsgs() == []


def test_received_ancillary_is_read_back() -> None:
    cmsgs = header_cmsgs(hop_limit=33, src="fe80::1")
    # A received IPV6_PKTINFO has the same layout as the one sent (RFC 3542 6.1).
    dst, hop_limit, ifindex = raw6._read_ancillary(cmsgs)
    assert (dst, hop_limit, ifindex) == ("fe80::1", 33, 0)
    assert raw6._read_ancillary([(socket.SOL_SOCKET, 1, b"\x00" * 8)]) == (None, None, None)


@pytest.mark.parametrize(
    ("host", "family", "expected"),
    [
        ("::1", None, (socket.AF_INET6, "::1")),
        ("127.0.0.1", None, (socket.AF_INET, "127.0.0.1")),
        ("fd00:0:0::2", socket.AF_INET6, (socket.AF_INET6, "fd00::2")),
    ],
)
def test_resolve_picks_the_family(host: str, family: int | None, expected: tuple[int, str]) -> None:
    assert resolve(host, family) == expected


def test_resolve_refuses_the_wrong_family() -> None:
    with pytest.raises(UsageError, match="to an IPv6 address"):
        resolve("127.0.0.1", socket.AF_INET6)
    with pytest.raises(UsageError, match="to an IPv4 address"):
        resolve("::1", socket.AF_INET)


def test_bad_arguments_fail_before_any_socket() -> None:
    row = ipv6_quirks_for("linux")
    with pytest.raises(ValueError, match=r"0\.\.255"):
        open_raw_icmp6(row, {256})
    with pytest.raises(ValueError, match="even"):
        open_raw6(row, 253, checksum_offset=3)


def test_zones_are_kept_for_sockets_and_dropped_for_headers() -> None:
    lo = socket.if_nametoindex("lo")
    assert raw6.sockaddr6("fe80::1%lo", 9) == ("fe80::1", 9, 0, lo)
    assert raw6.sockaddr6("fd00::1", 9) == ("fd00::1", 9, 0, 0)
    assert raw6.strip_zone("fe80::1%lo") == "fe80::1"
    assert raw6.with_zone("fe80::1", lo) == "fe80::1%lo"
    assert raw6.with_zone("ff02::1", lo) == "ff02::1%lo"  # link-scope multicast
    assert raw6.with_zone("fd00::1", lo) == "fd00::1"  # global: no zone needed
    assert raw6.with_zone("fe80::1", None) == "fe80::1"
    with pytest.raises(UsageError, match="no such interface"):
        raw6.sockaddr6("fe80::1%nosuchif0", 0)
    assert resolve("fe80::1%lo") == (socket.AF_INET6, "fe80::1%lo")
