"""Hypothesis strategies, vectors and hex helpers the codec tests share.

Imported as ``from _strategies import ...`` (pytest puts tests/unit on sys.path); a
package import would make repo-wide mypy see this file twice.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import strategies as st

from rawstack.codec import (
    DestOptions,
    Fragment,
    HopByHop,
    Ip6Option,
    IPv4,
    IPv6,
    Routing,
    TcpMss,
    TcpNop,
    TcpOption,
    TcpSack,
    TcpSackPermitted,
    TcpTimestamps,
    TcpUnknownOption,
    TcpWindowScale,
)

h = bytes.fromhex  # vectors are written as hex rows, 32 bits a row as in the RFCs

MAC_A, MAC_B = h("02 00 00 00 00 01"), h("02 00 00 00 00 02")

# The seed-004 echo request on the wire (ip_len in network order, ident 11): RFC 791 rows.
SEED_004 = h("""
    45 00 00 1c
    00 0b 00 00
    40 01 7c d4
    7f 00 00 01
    7f 00 00 01
    08 00 f7 ff
    00 00 00 00
""")

# A Linux SYN's options: MSS, SACK permitted, timestamps, NOP, window scale 7.
SYN_OPTIONS: tuple[TcpOption, ...] = (
    TcpMss(1460),
    TcpSackPermitted(),
    TcpTimestamps(0xDEADBEEF, 0),
    TcpNop(),
    TcpWindowScale(7),
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
macs = st.binary(min_size=6, max_size=6)
addresses = st.lists(st.integers(0, 255), min_size=4, max_size=4).map(
    lambda octets: ".".join(map(str, octets))
)
# An 802.1Q tag as (priority, DEI, VLAN id), or no tag.
vlan_tags: st.SearchStrategy[tuple[int, int, int] | None] = st.none() | st.tuples(
    st.integers(0, 7), st.integers(0, 1), st.integers(0, 4095)
)

TCP_OPTION_SPACE = 40  # a 15-word data offset leaves 40 bytes after the fixed header


def tcp_options(
    max_options: int, max_sack_blocks: int, max_shift: int = 14, unknown: bool = False
) -> st.SearchStrategy[tuple[TcpOption, ...]]:
    """Option lists that fit a TCP header.

    ``max_shift`` defaults to RFC 7323's cap of 14, which the oracles enforce; the codec
    itself takes any byte. ``unknown`` adds options of kinds the codec does not parse.
    """
    kinds: list[st.SearchStrategy[TcpOption]] = [
        st.just(TcpNop()),
        st.just(TcpSackPermitted()),
        st.builds(TcpMss, u16),
        st.builds(TcpWindowScale, st.integers(0, max_shift)),
        st.builds(TcpTimestamps, u32, u32),
        st.builds(
            TcpSack, st.lists(st.tuples(u32, u32), min_size=1, max_size=max_sack_blocks).map(tuple)
        ),
    ]
    if unknown:
        kinds.append(
            st.builds(
                TcpUnknownOption,
                st.integers(6, 255).filter(lambda k: k != 8),  # 8 is timestamps
                st.binary(max_size=8),
            )
        )
    return (
        st.lists(st.one_of(kinds), max_size=max_options)
        .filter(lambda opts: len(b"".join(o.encode() for o in opts)) <= TCP_OPTION_SPACE)
        .map(tuple)
    )


def tcp_fields(
    options: st.SearchStrategy[tuple[TcpOption, ...]],
) -> dict[str, st.SearchStrategy[Any]]:
    """Strategies for a segment's main fields, keyed by ``Tcp``'s parameter names."""
    return {
        "src_port": u16,
        "dst_port": u16,
        "seq": u32,
        "ack": u32,
        "flags": st.integers(0, 255),
        "window": u16,
        "options": options,
        "payload": st.binary(max_size=32),
    }


def ipv4_packets(
    proto: st.SearchStrategy[int], options: st.SearchStrategy[bytes], max_payload: int
) -> st.SearchStrategy[IPv4]:
    """Packets with every settable header field drawn; the rest as the caller bounds them."""
    return st.builds(
        IPv4,
        src=addresses,
        dst=addresses,
        proto=proto,
        payload=st.binary(max_size=max_payload),
        ttl=st.integers(0, 255),
        tos=st.integers(0, 255),
        ident=u16,
        df=st.booleans(),
        mf=st.booleans(),
        frag_offset=st.integers(0, 0x1FFF),
        options=options,
        reserved_flag=st.booleans(),
    )


def _one_text_form(packed: bytes) -> bool:
    """False for the two ranges whose text forms differ between implementations: glibc's
    inet_ntop (scapy) and Wireshark print an embedded dotted quad for IPv4-compatible
    (``::1.2.3.4``) and IPv4-mapped (``::ffff:1.2.3.4``) addresses, Python's ipaddress
    does not. Every other address has the one RFC 5952 form."""
    return packed[:10] != bytes(10) or packed[10:12] not in (b"\x00\x00", b"\xff\xff")


# Any 16 bytes but those two ranges, as the RFC 5952 text the codec prints.
ipv6_addresses = (
    st.binary(min_size=16, max_size=16)
    .filter(_one_text_form)
    .map(lambda packed: str(ipaddress.IPv6Address(packed)))
)

# TLV options other than the pads; their data fills at most one 8-octet unit or two.
ip6_options = (
    st.builds(Ip6Option, st.integers(2, 255), st.binary(max_size=12))
    | st.just(Ip6Option(0))
    | st.builds(lambda n: Ip6Option(1, bytes(n)), st.integers(0, 5))
)
extension_headers = st.one_of(
    st.builds(HopByHop, st.lists(ip6_options, max_size=3).map(tuple)),
    st.builds(DestOptions, st.lists(ip6_options, max_size=3).map(tuple)),
    st.builds(
        Routing,
        st.integers(0, 255),
        st.integers(0, 255),
        st.integers(0, 3).map(lambda n: bytes(4 + 8 * n)),
    ),
    st.builds(
        Fragment, st.integers(0, 0x1FFF), st.booleans(), u32, st.integers(0, 255), st.integers(0, 3)
    ),
)
# Upper-layer numbers that are not extension headers this codec walks.
upper_layers = st.integers(0, 255).filter(lambda n: n not in (0, 43, 44, 60))


def ipv6_packets(
    max_payload: int, upper: st.SearchStrategy[int] = upper_layers
) -> st.SearchStrategy[IPv6]:
    """Packets with every header field drawn and up to three extension headers."""
    return st.builds(
        IPv6,
        src=ipv6_addresses,
        dst=ipv6_addresses,
        next_header=upper,
        payload=st.binary(max_size=max_payload),
        hop_limit=st.integers(0, 255),
        traffic_class=st.integers(0, 255),
        flow_label=st.integers(0, 0xFFFFF),
        extensions=st.lists(extension_headers, max_size=3).map(_cut_after_later_fragment),
    )


def _cut_after_later_fragment(chain: list[Any]) -> tuple[Any, ...]:
    """The chain up to a non-first fragment: what follows one is data (RFC 8200 4.5)."""
    for n, header in enumerate(chain):
        if isinstance(header, Fragment) and header.offset:
            return tuple(chain[: n + 1])
    return tuple(chain)
