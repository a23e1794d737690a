"""The per-kernel raw IPv4 socket format: how an IP_HDRINCL write and a raw read differ
from the wire.

Theory of operation: everything above the socket layer builds and parses *wire* packets
(network byte order, ip_len counting the header). Kernels disagree about what a raw
socket takes and gives: Linux and OpenBSD use the wire format; macOS, NetBSD, DragonFly
and FreeBSD before 11.0 want ip_len/ip_off in host order, and some subtract the header
length from ip_len on read. One frozen :class:`KernelQuirks` row per kernel flavour, in
one table (``_table``), records those facts with their sources (shared/QUIRKS.md);
``_convert`` applies a row at the socket boundary; ``_checks`` says whether a row's kernel
would refuse a write (its EINVAL length check and EMSGSIZE oversize rule); ``_host`` picks
this host's row.

The IPv6 section (``_ipv6``) is a table of its own: raw IPv6 sockets never show the
IPv6 header on read, and only Linux lets a program write it (RFC 3542; see the module).

This is the raw-socket format, which may differ from the wire format.
"""

from __future__ import annotations

from rawstack.quirks._checks import WriteVerdict, write_verdict
from rawstack.quirks._convert import raw_to_wire, wire_to_raw, wire_to_read
from rawstack.quirks._host import ENV_OS, ENV_OSREL, host_quirks, read_osreldate
from rawstack.quirks._ipv6 import TABLE6, Ipv6Quirks, host_ipv6_quirks, ipv6_quirks_for
from rawstack.quirks._table import (
    CHECKSUM,
    FREEBSD_10_0,
    FREEBSD_11_0,
    FREEBSD_11_1,
    FREEBSD_RAW_NETWORK_ORDER,
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
    normalize_os,
    quirks_for,
)

__all__ = [
    "CHECKSUM",
    "ENV_OS",
    "ENV_OSREL",
    "FREEBSD_10_0",
    "FREEBSD_11_0",
    "FREEBSD_11_1",
    "FREEBSD_RAW_NETWORK_ORDER",
    "IDENT",
    "KNOWN_OS",
    "LEN_EXACT",
    "LEN_NOT_LONGER",
    "LEN_REWRITTEN",
    "LEN_WITHIN",
    "OVERSIZE_FRAGMENTS",
    "OVERSIZE_MAXPACKET",
    "OVERSIZE_MTU",
    "SOURCE",
    "TABLE",
    "TABLE6",
    "TOTAL_LENGTH",
    "Ipv6Quirks",
    "KernelQuirks",
    "WriteVerdict",
    "host_ipv6_quirks",
    "host_quirks",
    "ipv6_quirks_for",
    "normalize_os",
    "quirks_for",
    "raw_to_wire",
    "read_osreldate",
    "wire_to_raw",
    "wire_to_read",
    "write_verdict",
]
