"""The BSD packet filter's user-space formats: programs, bpf_hdr records, ioctl numbers.

Theory of operation: a /dev/bpf descriptor is configured with ioctls whose request numbers
encode the argument size (``<sys/ioccom.h>``), so they depend on the OS and on the size of a
pointer. A filter program is an array of classic BPF instructions (``struct bpf_insn``, host
byte order) handed over through ``struct bpf_program`` (a count and a pointer). A read returns
a buffer of records, each a ``struct bpf_hdr`` padded to ``bh_hdrlen``, then ``bh_caplen``
frame bytes, then padding up to the next ``BPF_WORDALIGN`` boundary. :class:`BpfLayout` holds
every size that differs per OS and architecture; nothing here opens a device (that is
:mod:`rawstack.sockets.bpf`).

Sources: FreeBSD ``sys/net/bpf.h`` and ``sys/net/bpf.c`` (``bpf_hdrlen``: the header is
padded so the frame's *network* header lands on a word boundary), ``sys/sys/ioccom.h``;
xnu ``bsd/net/bpf.h`` (``BPF_ALIGNMENT sizeof(int32_t)``, ``struct timeval32`` stamps);
``tcpdump -dd ether proto 0x88b5`` for the reference program.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ._errors import DecodeError

__all__ = [
    "BIOC_GROUP",
    "BPF_ABS",
    "BPF_H",
    "BPF_JEQ",
    "BPF_JMP",
    "BPF_K",
    "BPF_LD",
    "BPF_RET",
    "DEFAULT_SNAPLEN",
    "ETHER_HDR_LEN",
    "LAYOUTS",
    "BpfHeader",
    "BpfLayout",
    "Insn",
    "encode_program",
    "encode_record",
    "ethertype_filter",
    "ioc",
    "ior",
    "iow",
    "iowr",
    "layout_for",
    "pack_ifreq",
    "pack_program",
    "parse_bpf_hdr",
    "parse_sockaddr_dl",
    "run_filter",
    "walk",
]

# Instruction fields, <net/bpf.h>.
BPF_LD, BPF_JMP, BPF_RET = 0x00, 0x05, 0x06
BPF_W, BPF_H, BPF_B = 0x00, 0x08, 0x10
BPF_ABS = 0x20
BPF_JA, BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
BPF_K = 0x00

DEFAULT_SNAPLEN = 262144  # what tcpdump/libpcap return for "accept", so programs compare equal
ETHER_HDR_LEN = 14
ETHERTYPE_OFFSET = 12

# <sys/ioccom.h>: the same on FreeBSD, macOS, OpenBSD and NetBSD.
IOCPARM_MASK = 0x1FFF
IOC_VOID, IOC_OUT, IOC_IN = 0x20000000, 0x40000000, 0x80000000
IOC_INOUT = IOC_IN | IOC_OUT
BIOC_GROUP = "B"
IFNAMSIZ = 16
AF_LINK = 18  # FreeBSD and macOS agree (Linux has no AF_LINK)


def ioc(inout: int, group: str, num: int, length: int) -> int:
    """``_IOC(inout, group, num, len)`` from ``<sys/ioccom.h>``."""
    if not 0 <= length <= IOCPARM_MASK:
        raise ValueError(f"ioctl argument length {length} does not fit IOCPARM_MASK")
    return inout | ((length & IOCPARM_MASK) << 16) | (ord(group) << 8) | num


def iow(group: str, num: int, length: int) -> int:
    """``_IOW``: the kernel reads ``length`` bytes from the caller."""
    return ioc(IOC_IN, group, num, length)


def ior(group: str, num: int, length: int) -> int:
    """``_IOR``: the kernel writes ``length`` bytes back."""
    return ioc(IOC_OUT, group, num, length)


def iowr(group: str, num: int, length: int) -> int:
    """``_IOWR``: both ways."""
    return ioc(IOC_INOUT, group, num, length)


@dataclass(frozen=True)
class BpfLayout:
    """Every size that differs per OS and architecture, and the ioctl numbers they imply."""

    os: str  # "freebsd" or "darwin"
    arch: str  # normalised: "amd64", "arm64", "i386"
    pointer_size: int  # also sizeof(long) on these ILP32/LP64 targets
    timeval_size: int  # sizeof(bh_tstamp)
    alignment: int  # BPF_ALIGNMENT
    ifreq_size: int = 32  # IFNAMSIZ + the ifr_ifru union (16 on all of these)
    byteorder: str = "little"

    @property
    def sizeof_bpf_hdr(self) -> int:
        """``SIZEOF_BPF_HDR``: the bytes up to and including ``bh_hdrlen``, no tail padding."""
        return self.timeval_size + 4 + 4 + 2

    @property
    def bpf_hdr_size(self) -> int:
        """``sizeof(struct bpf_hdr)``, padded to the alignment of its widest member."""
        member_align = min(self.timeval_size // 2, 8)
        return -(-self.sizeof_bpf_hdr // member_align) * member_align

    def wordalign(self, n: int) -> int:
        """``BPF_WORDALIGN(n)``."""
        return (n + self.alignment - 1) & ~(self.alignment - 1)

    def hdrlen(self, link_hdrlen: int = ETHER_HDR_LEN) -> int:
        """The ``bh_hdrlen`` the kernel writes: pads so the network header is word-aligned."""
        return self.wordalign(link_hdrlen + self.sizeof_bpf_hdr) - link_hdrlen

    @property
    def program_size(self) -> int:
        """``sizeof(struct bpf_program)``: u_int, padding to a pointer, the pointer."""
        return 2 * self.pointer_size if self.pointer_size == 8 else 8

    # ioctl request numbers, <net/bpf.h> and <sys/sockio.h>, under their C names so a
    # reader can grep the headers for them.
    @property
    def BIOCGBLEN(self) -> int:
        return ior(BIOC_GROUP, 102, 4)

    @property
    def BIOCSBLEN(self) -> int:
        return iowr(BIOC_GROUP, 102, 4)

    @property
    def BIOCSETF(self) -> int:
        return iow(BIOC_GROUP, 103, self.program_size)

    @property
    def BIOCGDLT(self) -> int:
        return ior(BIOC_GROUP, 106, 4)

    @property
    def BIOCSETIF(self) -> int:
        return iow(BIOC_GROUP, 108, self.ifreq_size)

    @property
    def BIOCIMMEDIATE(self) -> int:
        return iow(BIOC_GROUP, 112, 4)

    @property
    def BIOCSHDRCMPLT(self) -> int:
        return iow(BIOC_GROUP, 117, 4)

    @property
    def BIOCSSEESENT(self) -> int:
        """macOS BIOCSSEESENT; FreeBSD's BIOCSDIRECTION has the same number, and its
        BPF_D_IN (0) is "see sent = 0", so one call with 0 hides our own frames on both."""
        return iow(BIOC_GROUP, 119, 4)

    @property
    def SIOCGIFMTU(self) -> int:
        return iowr("i", 51, self.ifreq_size)


# FreeBSD: struct timeval with a 64-bit time_t everywhere but i386; BPF_ALIGNMENT is
# sizeof(long). macOS: struct timeval32 stamps and BPF_ALIGNMENT sizeof(int32_t).
LAYOUTS: dict[tuple[str, str], BpfLayout] = {
    ("freebsd", "amd64"): BpfLayout("freebsd", "amd64", 8, 16, 8),
    ("freebsd", "arm64"): BpfLayout("freebsd", "arm64", 8, 16, 8),
    ("freebsd", "i386"): BpfLayout("freebsd", "i386", 4, 8, 4),
    ("darwin", "amd64"): BpfLayout("darwin", "amd64", 8, 8, 4),
    ("darwin", "arm64"): BpfLayout("darwin", "arm64", 8, 8, 4),
}

_ARCH_ALIASES = {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386", "i586": "i386"}


def layout_for(os_name: str, machine: str) -> BpfLayout:
    """The layout for ``sys.platform``-style ``os_name`` and ``platform.machine()``."""
    os_key = "freebsd" if os_name.startswith("freebsd") else os_name
    arch = _ARCH_ALIASES.get(machine.lower(), machine.lower())
    try:
        return LAYOUTS[(os_key, arch)]
    except KeyError:
        known = ", ".join(f"{o}/{a}" for o, a in sorted(LAYOUTS))
        raise ValueError(f"no BPF layout for {os_name}/{machine} (known: {known})") from None


@dataclass(frozen=True)
class Insn:
    """One classic BPF instruction (``struct bpf_insn``)."""

    code: int
    jt: int = 0
    jf: int = 0
    k: int = 0

    def encode(self, byteorder: str = "little") -> bytes:
        prefix = "<" if byteorder == "little" else ">"
        return struct.pack(f"{prefix}HBBI", self.code, self.jt, self.jf, self.k)


def ethertype_filter(ethertype: int, snaplen: int = DEFAULT_SNAPLEN) -> tuple[Insn, ...]:
    """``ether proto <ethertype>``: accept ``snaplen`` bytes of matching frames, drop the rest.

    Instruction for instruction what ``tcpdump -dd ether proto 0x88b5`` prints.
    """
    if not 0 <= ethertype <= 0xFFFF:
        raise ValueError(f"EtherType {ethertype:#x} out of range")
    return (
        Insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, ETHERTYPE_OFFSET),
        Insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, ethertype),
        Insn(BPF_RET | BPF_K, 0, 0, snaplen),
        Insn(BPF_RET | BPF_K, 0, 0, 0),
    )


def encode_program(insns: Sequence[Insn], byteorder: str = "little") -> bytes:
    """The instruction array as the kernel reads it through ``bf_insns``."""
    return b"".join(insn.encode(byteorder) for insn in insns)


def pack_program(count: int, address: int, layout: BpfLayout) -> bytes:
    """``struct bpf_program {u_int bf_len; struct bpf_insn *bf_insns;}`` for BIOCSETF."""
    prefix = "<" if layout.byteorder == "little" else ">"
    if layout.pointer_size == 8:
        return struct.pack(f"{prefix}I4xQ", count, address)
    return struct.pack(f"{prefix}II", count, address)


def pack_ifreq(ifname: str, layout: BpfLayout, tail: bytes = b"") -> bytes:
    """``struct ifreq`` with ``ifr_name`` set and ``tail`` at the start of the union."""
    name = ifname.encode("ascii", "strict") if ifname.isascii() else b""
    if not name or len(name) >= IFNAMSIZ or b"\0" in name:
        raise ValueError(f"bad interface name {ifname!r}")
    union = layout.ifreq_size - IFNAMSIZ
    if len(tail) > union:
        raise ValueError("ifreq union overflow")
    return name.ljust(IFNAMSIZ, b"\0") + tail.ljust(union, b"\0")


def run_filter(insns: Sequence[Insn], frame: bytes) -> int:
    """Interpret the subset of classic BPF our programs use; returns the accepted length.

    Out-of-bounds loads reject (return 0), as in the kernel's ``bpf_filter``.
    """
    pc, acc = 0, 0
    while pc < len(insns):
        insn = insns[pc]
        cls = insn.code & 0x07
        if cls == BPF_RET and insn.code & 0x18 == BPF_K:
            return min(insn.k, len(frame))
        if cls == BPF_LD and insn.code & 0xE0 == BPF_ABS:
            size = {BPF_W: 4, BPF_H: 2, BPF_B: 1}[insn.code & 0x18]
            if insn.k + size > len(frame):
                return 0
            acc = int.from_bytes(frame[insn.k : insn.k + size], "big")
        elif cls == BPF_JMP and insn.code & 0x08 == BPF_K:
            op = insn.code & 0xF0
            if op == BPF_JA:
                pc += 1 + insn.k
                continue
            taken = {
                BPF_JEQ: acc == insn.k,
                BPF_JGT: acc > insn.k,
                BPF_JGE: acc >= insn.k,
                BPF_JSET: bool(acc & insn.k),
            }[op]
            pc += 1 + (insn.jt if taken else insn.jf)
            continue
        else:
            raise ValueError(f"instruction {insn} not supported by this interpreter")
        pc += 1
    raise ValueError("program fell off its end without a return")


@dataclass(frozen=True)
class BpfHeader:
    """The fields of one ``struct bpf_hdr``."""

    sec: int
    usec: int
    caplen: int
    datalen: int
    hdrlen: int


def _hdr_format(layout: BpfLayout) -> str:
    prefix = "<" if layout.byteorder == "little" else ">"
    half = "q" if layout.timeval_size == 16 else "i"
    return f"{prefix}{half}{half}IIH"


def parse_bpf_hdr(buf: bytes, offset: int, layout: BpfLayout) -> BpfHeader:
    """Decode the ``struct bpf_hdr`` at ``offset``."""
    need = layout.sizeof_bpf_hdr
    if offset + need > len(buf):
        raise DecodeError("bpf", offset, f"bpf_hdr needs {need} bytes, {len(buf) - offset} left")
    sec, usec, caplen, datalen, hdrlen = struct.unpack_from(_hdr_format(layout), buf, offset)
    if hdrlen < need:
        raise DecodeError("bpf", offset, f"bh_hdrlen {hdrlen} is shorter than bpf_hdr ({need})")
    if caplen > datalen:
        raise DecodeError("bpf", offset, f"bh_caplen {caplen} exceeds bh_datalen {datalen}")
    return BpfHeader(sec, usec, caplen, datalen, hdrlen)


def walk(buf: bytes, layout: BpfLayout) -> Iterator[tuple[BpfHeader, bytes]]:
    """Each (header, captured frame) in one read() buffer, in order."""
    offset = 0
    while offset < len(buf):
        hdr = parse_bpf_hdr(buf, offset, layout)
        start = offset + hdr.hdrlen
        end = start + hdr.caplen
        if end > len(buf):
            raise DecodeError(
                "bpf", offset, f"record of {hdr.hdrlen + hdr.caplen} bytes overruns the buffer"
            )
        yield hdr, bytes(buf[start:end])
        offset += layout.wordalign(hdr.hdrlen + hdr.caplen)


def encode_record(
    frame: bytes,
    layout: BpfLayout,
    *,
    sec: int = 0,
    usec: int = 0,
    datalen: int | None = None,
    pad: bytes = b"\0",
) -> bytes:
    """One record as the kernel lays it out, padding included (``pad`` fills the gaps)."""
    hdrlen = layout.hdrlen()
    head = struct.pack(
        _hdr_format(layout),
        sec,
        usec,
        len(frame),
        len(frame) if datalen is None else datalen,
        hdrlen,
    )
    body = head + pad * (hdrlen - len(head)) + frame
    return body + pad * (layout.wordalign(len(body)) - len(body))


def parse_sockaddr_dl(buf: bytes) -> tuple[int, str, bytes]:
    """``struct sockaddr_dl`` -> (interface index, name, link-layer address).

    Layout (FreeBSD and macOS): sdl_len, sdl_family, sdl_index (u16), sdl_type, sdl_nlen,
    sdl_alen, sdl_slen, then sdl_data holding the name followed by the address.
    """
    if len(buf) < 8:
        raise DecodeError("sockaddr_dl", 0, f"needs 8 bytes, got {len(buf)}")
    family = buf[1]
    if family != AF_LINK:
        raise DecodeError("sockaddr_dl", 1, f"family {family} is not AF_LINK ({AF_LINK})")
    (index,) = struct.unpack_from("=H", buf, 2)
    nlen, alen = buf[5], buf[6]
    if 8 + nlen + alen > len(buf):
        raise DecodeError("sockaddr_dl", 5, f"name+address ({nlen}+{alen}) overrun the buffer")
    name = buf[8 : 8 + nlen].decode("ascii", "replace")
    return index, name, bytes(buf[8 + nlen : 8 + nlen + alen])
