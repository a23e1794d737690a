"""rawstack.codec.ipv6.fragment6 (RFC 8200 4.5): sizes, offsets, the unfragmentable part,
and reassembly by scapy, an independent implementation."""

from __future__ import annotations

import pytest
from _strategies import ipv6_addresses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rawstack.codec import DestOptions, Fragment, HopByHop, Icmp6Echo, IPv6, Routing
from rawstack.codec.icmp6 import ECHO_REQUEST6
from rawstack.codec.ipv6 import PROTO_ICMPV6, fragment6

A, B = "2001:db8::1", "2001:db8::2"


def _echo(size: int) -> bytes:
    return Icmp6Echo(ECHO_REQUEST6, 7, 1, bytes(i & 0xFF for i in range(size))).encode(A, B)


def test_a_packet_that_fits_is_left_alone() -> None:
    packet = IPv6(A, B, PROTO_ICMPV6, _echo(1000))
    assert fragment6(packet, 1280, 5) == [packet]


def test_fragments_fit_the_mtu_and_cover_the_data_in_order() -> None:
    packet = IPv6(A, B, PROTO_ICMPV6, _echo(3000), hop_limit=9)
    pieces = fragment6(packet, 1280, 0xBEEF)
    assert len(pieces) == 3
    data = b""
    for n, piece in enumerate(pieces):
        wire = piece.encode()
        assert len(wire) <= 1280
        header = piece.extension(Fragment)
        assert header is not None
        assert (header.ident, header.more, header.offset * 8) == (0xBEEF, n < 2, len(data))
        assert piece.hop_limit == 9
        if n < 2:
            assert len(piece.payload) % 8 == 0
        data += IPv6.decode(wire).payload
    assert data == packet.payload  # the ICMPv6 message, cut and put back


def test_the_unfragmentable_part_is_repeated() -> None:
    route = Routing.with_addresses(("2001:db8::3",))
    packet = IPv6(A, B, PROTO_ICMPV6, _echo(2000), extensions=(HopByHop(), route, DestOptions()))
    for piece in fragment6(packet, 1280, 1):
        # hop-by-hop and routing stay in front; the destination options after the routing
        # header belong to the fragmentable part, in the first fragment only.
        assert piece.extensions[:2] == (HopByHop(), route)
        assert isinstance(piece.extensions[2], Fragment)


@pytest.mark.parametrize("mtu", [40 + 8 + 7, 0])
def test_an_mtu_without_room_is_a_value_error(mtu: int) -> None:
    with pytest.raises(ValueError, match="no room"):
        fragment6(IPv6(A, B, PROTO_ICMPV6, _echo(100)), mtu, 1)


def test_a_fragment_is_not_fragmented_again() -> None:
    packet = IPv6(A, B, PROTO_ICMPV6, _echo(2000), extensions=(Fragment(0, False, 1),))
    with pytest.raises(ValueError, match="fragment already"):
        fragment6(packet, 1280, 2)


scapy = pytest.importorskip("scapy.all", reason="scapy is not installed")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ipv6_addresses, ipv6_addresses, st.integers(1500, 5000), st.integers(1280, 1500))
def test_scapy_reassembles_our_fragments(src: str, dst: str, size: int, mtu: int) -> None:
    message = Icmp6Echo(ECHO_REQUEST6, 1, 2, bytes(size)).encode(src, dst)  # > any mtu
    packet = IPv6(src, dst, PROTO_ICMPV6, message, extensions=(DestOptions(),))
    pieces = [scapy.IPv6(piece.encode()) for piece in fragment6(packet, mtu, 77)]
    whole = scapy.defragment6(pieces)
    assert bytes(whole[scapy.IPv6].payload) == packet.encode()[40:]
