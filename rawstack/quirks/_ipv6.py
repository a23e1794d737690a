"""The IPv6 section of the quirk table: how each kernel's raw IPv6 sockets behave.

Theory of operation: raw IPv6 sockets differ from raw IPv4 ones more than kernels differ
from each other. RFC 3542 (the advanced sockets API) has the kernel build the IPv6
header: a raw read never includes it (section 3), header fields are set per packet as
ancillary data (IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_PKTINFO, IPV6_DONTFRAG; sections 6, 11)
and the kernel computes the ICMPv6 checksum (3.1). Only Linux also lets a program write
the whole header, and the kernels part ways on the details below. One frozen
:class:`Ipv6Quirks` row per kernel, each field a claim with its source; only the Linux
row is ``confirmed`` by this project's own tests (tests/integration/test_kernel_quirks6.py).

This is the raw-socket behaviour, which differs from the wire format only in what the
kernel adds or strips; the packets themselves are always in network byte order.

Sources:

- Linux ``net/ipv6/af_inet6.c`` ``inet6_create``: an IPPROTO_RAW socket gets ``hdrincl``
  set; ``net/ipv6/raw.c`` ``do_rawv6_setsockopt``: IPV6_HDRINCL (36, ``uapi/linux/in6.h``)
  on any raw socket; ``rawv6_send_hdrinc`` copies the caller's bytes as the whole packet
  (no field filled, EMSGSIZE above the device MTU). ``rawv6_init_sk``: ICMPv6 sockets
  checksum at offset 2; IPV6_CHECKSUM at level IPPROTO_IPV6 on an ICMPv6 socket is EINVAL
  ("RFC3542 tells ... not allowed"), an odd offset EINVAL. ``rawv6_recvmsg`` copies from
  the transport header. ``ip6_input.c`` ``ip6_protocol_deliver_rcu`` calls
  ``raw6_local_deliver`` before the protocol handler, so raw ICMPv6 sockets see echo
  requests. ``icmpv6_filter``: a set bit in ICMPV6_FILTER (level SOL_ICMPV6 = 58, option 1)
  *blocks* that type. ``net/ipv6/ping.c``: unprivileged SOCK_DGRAM/IPPROTO_ICMPV6 for
  groups in ``net.ipv4.ping_group_range``. ``net.ipv6.icmp.echo_ignore_all`` (ip-sysctl.rst).
- FreeBSD ``sys/netinet6/raw_ip6.c`` ``rip6_output``: always ``M_PREPEND`` the IPv6 header
  (there is no IPV6_HDRINCL), ancillary data through ``ip6_setpktopts``; ICMPv6 checksum at
  ``offsetof(struct icmp6_hdr, icmp6_cksum)``, other protocols at the IPV6_CHECKSUM offset.
  ``rip6_input``: ``m_adj(n, *offp)``, "strip intermediate headers". ``icmp6.c``
  ``icmp6_input``: an echo request is answered from a copy and the original still reaches
  ``icmp6_rip6_input`` (every ICMPv6 message goes to raw sockets). ``ip6_output.c``
  ``ip6_raw_ctloutput``: IPV6_CHECKSUM on ICMPv6 sockets "no modification allowed ...
  permit 'no change' values" (offset 2 accepted), odd offsets EINVAL.
  ``sys/netinet/icmp6.h``: ICMP6_FILTER is 18 at level IPPROTO_ICMPV6 and
  ``ICMP6_FILTER_WILLPASS`` tests for a *set* bit (the opposite of Linux's layout).
- OpenBSD and DragonFly ``netinet6/raw_ip6.c`` ``rip6_output`` ("Generate IPv6 header and
  pass packet to ip6_output"); NetBSD/OpenBSD ``icmp6.c``: "Copy mbuf to send to two data
  paths: userland socket(s), and to the querier (echo reply)". NetBSD and DragonFly
  rows restate the shared KAME code; no source read here contradicts it.
- xnu ``bsd/netinet6/raw_ip6.c``, ``icmp6.c``, ``ip6_output.c`` (the KAME code as above);
  ``icmp6_dgram_attach``: "Like rip6_attach but without root privilege enforcement", the
  unprivileged SOCK_DGRAM ICMPv6 socket ping6 uses.
- RFC 3542 sections 3 (no IPv6 header on input), 3.1 (kernel ICMPv6 checksum; setting
  IPV6_CHECKSUM on an ICMPv6 socket fails), 3.2 (ICMP6_FILTER), 6.1-6.5, 11.2.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from rawstack.quirks._host import host_quirks
from rawstack.quirks._table import normalize_os

# RFC 3542 ancillary data a sender may attach to set the header fields it cannot write.
HOPLIMIT = "IPV6_HOPLIMIT"
TCLASS = "IPV6_TCLASS"
PKTINFO = "IPV6_PKTINFO"
DONTFRAG = "IPV6_DONTFRAG"
RFC3542_SEND = frozenset({HOPLIMIT, TCLASS, PKTINFO, DONTFRAG})

# How a hand-built IPv6 header can be sent.
HDRINCL = "hdrincl"  # IPPROTO_RAW, or IPV6_HDRINCL on a raw socket of any protocol
ANCILLARY = "ancillary"  # the kernel builds the header; fields go as RFC 3542 cmsgs

# What setting IPV6_CHECKSUM (level IPPROTO_IPV6) on an ICMPv6 socket does.
CHECKSUM_OPTION_EINVAL = "einval"  # RFC 3542 3.1, as Linux does it
CHECKSUM_OPTION_NO_CHANGE = "einval unless 2"  # KAME: the "no change" offset 2 is accepted

IPV6_HDRINCL_LINUX = 36  # <linux/in6.h>; Python's socket module does not export it
SOL_ICMPV6_LINUX = 58  # <linux/socket.h>, the ICMPV6_FILTER level
ICMPV6_FILTER_LINUX = 1  # <linux/icmpv6.h>
ICMP6_FILTER_BSD = 18  # <netinet/icmp6.h> on FreeBSD, OpenBSD, NetBSD, DragonFly, xnu
IPPROTO_ICMPV6 = 58


@dataclass(frozen=True)
class Ipv6Quirks:
    """How one kernel's raw IPv6 sockets behave (RFC 3542 and each kernel's departures)."""

    os: str
    label: str
    header_write: str  # HDRINCL or ANCILLARY
    hdrincl_option: int | None  # the IPV6_HDRINCL option number, where it exists
    ipproto_raw_implies_hdrincl: bool
    hdrincl_kernel_fills: frozenset[str]  # header fields the kernel rewrites; none on Linux
    ancillary_send: frozenset[str]  # RFC 3542 cmsgs sendmsg() accepts for header fields
    icmp6_checksum_by_kernel: bool
    icmp6_checksum_option: str  # CHECKSUM_OPTION_EINVAL or CHECKSUM_OPTION_NO_CHANGE
    checksum_option_for_others: bool  # IPV6_CHECKSUM makes the kernel sum other protocols
    odd_checksum_offset_einval: bool
    read_includes_header: bool
    echo_request_to_raw: bool  # a raw ICMPv6 socket sees echo requests (and the reply)
    filter_level: int
    filter_option: int
    filter_bit_passes: bool  # a set bit in struct icmp6_filter passes its type (BSD)
    echo_ignore_sysctl: str | None  # the switch that stops the kernel's echo replies
    has_ping_socket: bool  # unprivileged SOCK_DGRAM/IPPROTO_ICMPV6
    confirmed: bool  # observed on a running kernel by this project's tests

    def filter_bytes(self, passed: frozenset[int]) -> bytes:
        """The 32-byte ``struct icmp6_filter`` that passes exactly the types ``passed``."""
        words = [0] * 8
        for kind in range(256):
            if (kind in passed) == self.filter_bit_passes:
                words[kind >> 5] |= 1 << (kind & 31)
        # Eight native 32-bit words, the layout both struct icmp6_filter declarations use.
        return struct.pack("=8I", *words)


LINUX6 = Ipv6Quirks(
    os="linux",
    label="Linux",
    header_write=HDRINCL,
    hdrincl_option=IPV6_HDRINCL_LINUX,
    ipproto_raw_implies_hdrincl=True,
    hdrincl_kernel_fills=frozenset(),
    ancillary_send=RFC3542_SEND,
    icmp6_checksum_by_kernel=True,
    icmp6_checksum_option=CHECKSUM_OPTION_EINVAL,
    checksum_option_for_others=True,
    odd_checksum_offset_einval=True,
    read_includes_header=False,
    echo_request_to_raw=True,
    filter_level=SOL_ICMPV6_LINUX,
    filter_option=ICMPV6_FILTER_LINUX,
    filter_bit_passes=False,
    echo_ignore_sysctl="net.ipv6.icmp.echo_ignore_all",
    has_ping_socket=True,
    confirmed=True,
)


def _kame(os: str, label: str, *, has_ping_socket: bool = False) -> Ipv6Quirks:
    # The BSDs and xnu share the KAME IPv6 stack: the kernel always builds the header.
    return Ipv6Quirks(
        os=os,
        label=label,
        header_write=ANCILLARY,
        hdrincl_option=None,
        ipproto_raw_implies_hdrincl=False,
        hdrincl_kernel_fills=frozenset(),
        ancillary_send=RFC3542_SEND,
        icmp6_checksum_by_kernel=True,
        icmp6_checksum_option=CHECKSUM_OPTION_NO_CHANGE,
        checksum_option_for_others=True,
        odd_checksum_offset_einval=True,
        read_includes_header=False,
        echo_request_to_raw=True,
        filter_level=IPPROTO_ICMPV6,
        filter_option=ICMP6_FILTER_BSD,
        filter_bit_passes=True,
        echo_ignore_sysctl=None,  # no source read here names one
        has_ping_socket=has_ping_socket,
        confirmed=False,
    )


TABLE6: tuple[Ipv6Quirks, ...] = (
    LINUX6,
    _kame("freebsd", "FreeBSD"),
    _kame("darwin", "macOS", has_ping_socket=True),
    _kame("ios", "iOS", has_ping_socket=True),
    _kame("openbsd", "OpenBSD"),
    _kame("netbsd", "NetBSD"),
    _kame("dragonfly", "DragonFly"),
)


def ipv6_quirks_for(os: str) -> Ipv6Quirks:
    """The IPv6 row for ``os`` (one of KNOWN_OS): no release boundary is known for IPv6."""
    name = normalize_os(os)
    for row in TABLE6:
        if row.os == name:
            return row
    raise AssertionError(f"no IPv6 row for {name}")  # table bug: KNOWN_OS has a row each


def host_ipv6_quirks(override_os: str | None = None, **detect: Any) -> Ipv6Quirks:
    """The IPv6 row for this host; the same precedence and detection as ``host_quirks``."""
    return ipv6_quirks_for(host_quirks(override_os, **detect).os)
