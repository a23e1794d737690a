"""The quirk table: one frozen row per kernel flavour, and the lookup by OS and osreldate.

This is the raw-socket format, which may differ from the wire format (golang/net
``ipv4/header.go``, the same remark). Every row restates a row of shared/QUIRKS.md; the
sources below are where QUIRKS.md read them. Only the Linux row has been observed on a
running kernel by this project's own tests (``confirmed``); the rest are read from
sources and await a BSD or macOS CI run.

Sources:

- golang/net ``ipv4/header.go`` (``Marshal``/``ParseHeader``) and ``ipv4/sys_freebsd.go``:
  TotalLen/FragOff in host order on darwin, ios, dragonfly, netbsd, and on freebsd when
  ``kern.osreldate < 1100000``; the header length added back on read on
  darwin/ios/dragonfly/netbsd and on freebsd ``< 1000000``.
- The FreeBSD byte-order boundary: this table switches at osreldate 1100030, as nmap
  (``netutil.cc``) and libnet do, not at golang/net's 1100000. The change was commit
  c26544aa7f (2014-09-01, "Make SOCK_RAW sockets to be truly raw"), which came with the
  1100030 bump; 11-CURRENT kernels from 1100000 to 1100029 still took host order, so
  1100000 would send them packets they reject. Only those snapshots differ.
- FreeBSD 9.3 ``raw_ip.c``/``ip_output.c``: EINVAL when ``ip_len > m_pkthdr.len`` or
  ``< hl``; ``ip_output`` recomputes ``ip_sum``; ``rip_input`` does ``ip_len -= hlen``.
  FreeBSD 10.4: host order; the source filled only ``if (ip_src == INADDR_ANY)``.
- NetBSD ``raw_ip.c`` 1.66 to 1.185: host order ("userland passes ip_len and ip_off in host
  order"); EINVAL when ``m_pkthdr.len != ip_len``; ``ip_output.c`` leaves the id 0 below
  ``IP_MINFRAGSIZE`` (69 bytes); ``rip_input`` subtracts the header length.
- DragonFly ``raw_ip.c``, ``ip_output.c``, ``ip_icmp.c`` (``__DragonFly_version`` 500901):
  host order both ways, header subtracted on input, ``ip_newid()`` when id is 0, EINVAL when
  ``ip_len > length`` or ``< hl``, echo requests reflected by the kernel.
- A difference from QUIRKS.md, reported rather than followed: the FreeBSD 11.0-era
  ``raw_ip.c`` (``ntohs(ip_len) > m_pkthdr.len || ntohs(ip_len) < (ip_hl << 2)``) and xnu's
  ``rip_output`` both also refuse an ip_len below the header length, where QUIRKS.md's
  length-check table lists only ">" for FreeBSD 10.x/11.0 and macOS. The rows follow
  QUIRKS.md (LEN_NOT_LONGER) until it says otherwise; only ip_len values under 20 differ.
- The oversize rules: Linux ``raw_send_hdrinc`` answers EMSGSIZE above the device MTU
  and never fragments; the BSDs answer EMSGSIZE above ``IP_MAXPACKET`` (and, with DF set,
  above the MTU, from ``ip_output``) and fragment the rest; xnu checks ``IP_MAXPACKET``.
- FreeBSD ip(4), BUGS: before 10.0 ip_hl was subtracted from ip_len on input; before 11.0
  ip_len and ip_off were in host order both ways.
- FreeBSD ``sys/netinet/raw_ip.c`` ``rip_send``/``rip_output``: EINVAL when
  ``ntohs(ip_len)`` differs from the datagram length (r312063, merged to stable/11 as
  r319392: 11.1, osreldate 1101000); ``ip_fillid()`` when ``ip_id == 0``.
  ``ip_icmp.c`` ``icmp_input`` reflects echo requests without passing them to raw sockets.
- xnu ``bsd/netinet/raw_ip.c``, ``ip_output.c``, ``ip_input.c`` and macOS ip(4): ip_len and
  ip_off in host order on write (the kernel does HTONS), NTOHS and ``ip_len -= hlen`` on
  input; ``rip_attach`` never sets HDRINCL, even for IPPROTO_RAW.
- OpenBSD ip(4): network order since 2.1; ``rip_chkhdr`` requires
  ``ntohs(ip_len) == packet length``.
- Linux raw(7), ``net/ipv4/raw.c`` ``raw_send_hdrinc`` (tot_len and checksum always
  rewritten; saddr and id filled when zero), ``ip_local_deliver_finish`` (raw sockets get a
  copy of every local ICMP packet, echo requests included), ``ICMP_FILTER``; ping sockets
  (``net.ipv4.ping_group_range``).
"""

from __future__ import annotations

from dataclasses import dataclass

# Field names for ``kernel_fills``; the same names as rawstack.codec.ipv4.IPv4's fields.
TOTAL_LENGTH = "total_length"
CHECKSUM = "checksum"
SOURCE = "source"
IDENT = "ident"

# kern.osreldate boundaries (FreeBSD Porter's Handbook, "FreeBSD versions").
FREEBSD_10_0 = 1000000
FREEBSD_11_0 = 1100000
# Where ip_len/ip_off became network order: c26544aa7f with the 1100030 bump (see above).
FREEBSD_RAW_NETWORK_ORDER = 1100030
FREEBSD_11_1 = 1101000  # r319392 (the exact-ip_len EINVAL check) reached stable/11 for 11.1

# What an IP_HDRINCL write's ip_len must satisfy (QUIRKS.md, "Length checks on write").
LEN_REWRITTEN = "rewritten"  # Linux: any ip_len (tot_len is rewritten); EINVAL if ihl*4 > length
LEN_EXACT = "exact"  # EINVAL unless ip_len == the datagram's length
LEN_NOT_LONGER = "not-longer"  # EINVAL when ip_len > the datagram's length
LEN_WITHIN = "within"  # EINVAL when ip_len > the datagram's length or < the header length
LENGTH_CHECKS = (LEN_REWRITTEN, LEN_EXACT, LEN_NOT_LONGER, LEN_WITHIN)

# What happens to a write larger than the link allows.
OVERSIZE_MTU = "mtu"  # Linux: EMSGSIZE above the device MTU; never fragmented
OVERSIZE_FRAGMENTS = "fragments"  # EMSGSIZE above IP_MAXPACKET, or DF and above the MTU
OVERSIZE_MAXPACKET = "maxpacket"  # xnu: EMSGSIZE above IP_MAXPACKET; fragmented otherwise
OVERSIZE_RULES = (OVERSIZE_MTU, OVERSIZE_FRAGMENTS, OVERSIZE_MAXPACKET)

# The names quirks_for() accepts, and what platform.system() says for each.
KNOWN_OS = ("linux", "freebsd", "darwin", "ios", "openbsd", "netbsd", "dragonfly")
OS_ALIASES = {"macos": "darwin", "osx": "darwin"}


@dataclass(frozen=True)
class KernelQuirks:
    """How one kernel's raw IPv4 (IP_HDRINCL) socket format differs from the wire.

    Fields typed ``bool | None`` are ``None`` where no source says (unconfirmed).
    """

    os: str
    label: str  # e.g. "FreeBSD >= 11.1"; also the test-table column name
    osrel_min: int | None  # kern.osreldate range, min inclusive, max exclusive; FreeBSD only
    osrel_max: int | None
    write_len_host_order: bool
    write_off_host_order: bool
    read_len_host_order: bool
    read_off_host_order: bool
    read_len_excludes_header: bool  # the kernel subtracted ip_hl*4 before the read
    hdrincl_must_be_set: bool  # even on an IPPROTO_RAW socket
    kernel_fills: frozenset[str]  # header fields the kernel writes; condition in the note
    kernel_fills_note: str
    length_check: str  # one of LENGTH_CHECKS: when a write's ip_len is EINVAL
    oversize: str  # one of OVERSIZE_RULES
    echo_request_to_raw: bool | None  # a raw ICMP socket sees echo requests too
    has_icmp_filter: bool  # SOL_RAW/ICMP_FILTER
    has_ping_socket: bool  # an unprivileged SOCK_DGRAM/IPPROTO_ICMP socket
    confirmed: bool  # observed on a running kernel by this project's tests
    ident_fill_min_length: int = 0  # the id is filled only in datagrams this long (NetBSD)

    def __post_init__(self) -> None:
        if self.length_check not in LENGTH_CHECKS:
            raise ValueError(f"length_check must be one of {LENGTH_CHECKS}")
        if self.oversize not in OVERSIZE_RULES:
            raise ValueError(f"oversize must be one of {OVERSIZE_RULES}")

    @property
    def fragments_oversize(self) -> bool:
        """The kernel fragments an IP_HDRINCL write above the MTU (every BSD, not Linux)."""
        return self.oversize != OVERSIZE_MTU

    def fills(self, field: str, length: int) -> bool:
        """Whether the kernel writes ``field`` (when it is zero) in a ``length``-byte datagram."""
        if field not in self.kernel_fills:
            return False
        return field != IDENT or length >= self.ident_fill_min_length

    def matches(self, os: str, osrel: int | None) -> bool:
        """True when this row describes ``os`` at ``osrel`` (osrel ignored outside FreeBSD)."""
        if os != self.os:
            return False
        if self.osrel_min is None and self.osrel_max is None:
            return True
        if osrel is None:
            return False
        low = self.osrel_min if self.osrel_min is not None else 0
        return low <= osrel and (self.osrel_max is None or osrel < self.osrel_max)


_BSD_FILLS = frozenset({IDENT, SOURCE, CHECKSUM})
_BSD_FILLS_NOTE = "ident when 0, source when INADDR_ANY, checksum always"


def _bsd(
    os: str,
    label: str,
    *,
    host_order: bool,
    excludes_header: bool,
    length_check: str,
    oversize: str = OVERSIZE_FRAGMENTS,
    osrel: tuple[int | None, int | None] = (None, None),
    fills_note: str = _BSD_FILLS_NOTE,
    ident_fill_min_length: int = 0,
    has_ping_socket: bool = False,
) -> KernelQuirks:
    # Every BSD-derived stack: HDRINCL must be set, no ICMP_FILTER, ip_len/ip_off share one
    # byte order in both directions, the same fills, and echo requests reflected by the
    # kernel (icmp_input's "goto reflect") instead of passed to raw sockets.
    return KernelQuirks(
        os=os,
        label=label,
        osrel_min=osrel[0],
        osrel_max=osrel[1],
        write_len_host_order=host_order,
        write_off_host_order=host_order,
        read_len_host_order=host_order,
        read_off_host_order=host_order,
        read_len_excludes_header=excludes_header,
        hdrincl_must_be_set=True,
        kernel_fills=_BSD_FILLS,
        kernel_fills_note=fills_note,
        length_check=length_check,
        oversize=oversize,
        echo_request_to_raw=False,
        has_icmp_filter=False,
        has_ping_socket=has_ping_socket,
        confirmed=False,
        ident_fill_min_length=ident_fill_min_length,
    )


LINUX = KernelQuirks(
    os="linux",
    label="Linux",
    osrel_min=None,
    osrel_max=None,
    write_len_host_order=False,  # any order works: raw_send_hdrinc rewrites tot_len
    write_off_host_order=False,
    read_len_host_order=False,
    read_off_host_order=False,
    read_len_excludes_header=False,
    hdrincl_must_be_set=False,  # implied by IPPROTO_RAW; other protocols need it set
    kernel_fills=frozenset({TOTAL_LENGTH, CHECKSUM, SOURCE, IDENT}),
    kernel_fills_note="total length and checksum always; source and ident when zero "
    "(only if ihl >= 5)",
    length_check=LEN_REWRITTEN,
    oversize=OVERSIZE_MTU,  # raw_send_hdrinc: EMSGSIZE above the device MTU
    echo_request_to_raw=True,  # our own request on loopback too
    has_icmp_filter=True,
    has_ping_socket=True,
    confirmed=True,
)


TABLE: tuple[KernelQuirks, ...] = (
    LINUX,
    _bsd(
        "freebsd",
        "FreeBSD < 10.0",
        osrel=(None, FREEBSD_10_0),
        host_order=True,
        excludes_header=True,
        length_check=LEN_WITHIN,
    ),
    _bsd(
        "freebsd",
        "FreeBSD 10.x",
        osrel=(FREEBSD_10_0, FREEBSD_RAW_NETWORK_ORDER),
        host_order=True,
        excludes_header=False,
        length_check=LEN_NOT_LONGER,
    ),
    _bsd(
        "freebsd",
        "FreeBSD 11.0",
        osrel=(FREEBSD_RAW_NETWORK_ORDER, FREEBSD_11_1),
        host_order=False,
        excludes_header=False,
        length_check=LEN_NOT_LONGER,
    ),
    _bsd(
        "freebsd",
        "FreeBSD >= 11.1",
        osrel=(FREEBSD_11_1, None),
        host_order=False,
        excludes_header=False,
        length_check=LEN_EXACT,
    ),
    _bsd(
        "darwin",
        "macOS",
        host_order=True,
        excludes_header=True,
        length_check=LEN_NOT_LONGER,
        oversize=OVERSIZE_MAXPACKET,
        has_ping_socket=True,
    ),
    _bsd(
        "ios",
        "iOS",
        host_order=True,
        excludes_header=True,
        length_check=LEN_NOT_LONGER,
        oversize=OVERSIZE_MAXPACKET,
        has_ping_socket=True,
    ),
    _bsd("openbsd", "OpenBSD", host_order=False, excludes_header=False, length_check=LEN_EXACT),
    _bsd(
        "netbsd",
        "NetBSD",
        host_order=True,
        excludes_header=True,
        length_check=LEN_EXACT,
        fills_note="ident when 0 only in datagrams of 69 bytes or more (IP_MINFRAGSIZE; a "
        "28-byte echo request keeps id 0), source when null, checksum always",
        ident_fill_min_length=69,
    ),
    _bsd(
        "dragonfly",
        "DragonFly",
        host_order=True,
        excludes_header=True,
        length_check=LEN_WITHIN,
    ),
)


def normalize_os(os: str) -> str:
    """Lower-cased OS name from KNOWN_OS (aliases resolved), or ValueError."""
    name = os.strip().lower()
    name = OS_ALIASES.get(name, name)
    if name not in KNOWN_OS:
        raise ValueError(f"unknown os {os!r}; known: {', '.join(KNOWN_OS)}")
    return name


def quirks_for(os: str, osrel: int | None = None) -> KernelQuirks:
    """The row for ``os`` (one of KNOWN_OS); ``osrel`` is FreeBSD's kern.osreldate.

    FreeBSD without ``osrel`` is a ValueError rather than a guess: its byte order flipped
    at 11.0, so a wrong default silently sends packets the kernel rejects. ``osrel`` for
    any other OS is a ValueError too, since it would be ignored.
    """
    name = normalize_os(os)
    rows = [row for row in TABLE if row.os == name]
    versioned = any(row.osrel_min is not None or row.osrel_max is not None for row in rows)
    if not versioned:
        if osrel is not None:
            raise ValueError(f"osrel applies to freebsd only, not {name}")
        return rows[0]
    if osrel is None:
        raise ValueError(
            f"{name} needs osrel (kern.osreldate, e.g. 1400000): its raw-socket byte order "
            "depends on the release"
        )
    if osrel < 0:
        raise ValueError(f"osrel must be a non-negative kern.osreldate, not {osrel}")
    for row in rows:
        if row.matches(name, osrel):
            return row
    raise AssertionError(f"the {name} rows do not cover osrel {osrel}")  # table bug
