"""Classic libpcap capture files: one global header, then one record per packet.

Theory of operation (the format tcpdump and Wireshark call "pcap", documented in
draft-ietf-opsawg-pcap and pcap-savefile(5)): a 24-byte global header (magic, version
2.4, time zone, sigfigs, snaplen, link type) then, per packet, a 16-byte record header
(seconds, fraction, captured length, original length) and the captured bytes. The magic
number says both the byte order of every header field (the writer's host order, so a
reader tries both) and the timestamp resolution: 0xA1B2C3D4 for microseconds, 0xA1B23C4D
for nanoseconds. Packet bytes themselves are never reordered.

:class:`PcapHeader` and :class:`PcapRecord` keep every field as it was in the file, so
``header.encode() + b"".join(r.encode(header) for r in records)`` rebuilds the file that
:func:`read_pcap` parsed. pcapng (magic 0x0A0D0D0A) is a different format and is refused.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from ._errors import DecodeError
from ._header import BytesLike, as_bytes, check_uint, frozen_bytes

__all__ = [
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "MAGIC_MICROSECOND",
    "MAGIC_NANOSECOND",
    "MAX_SNAPLEN",
    "PcapHeader",
    "PcapRecord",
    "read_pcap",
    "write_pcap",
]

LAYER = "pcap"

# tcpdump.org "Link-layer header types": the frame starts with an Ethernet header, or
# directly with the IPv4/IPv6 header (no link layer at all).
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101

MAGIC_MICROSECOND = 0xA1B2C3D4
MAGIC_NANOSECOND = 0xA1B23C4D
_PCAPNG_MAGIC = 0x0A0D0D0A
VERSION = (2, 4)
# libpcap's MAXIMUM_SNAPLEN: what tcpdump and dumpcap write by default.
MAX_SNAPLEN = 262144

_ORDERS = {"little": "<", "big": ">"}
_GLOBAL = "IHHiIII"  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
_RECORD = "IIII"  # ts_sec, ts_frac, incl_len, orig_len
GLOBAL_LEN = struct.calcsize("<" + _GLOBAL)
RECORD_LEN = struct.calcsize("<" + _RECORD)


@dataclass(frozen=True)
class PcapHeader:
    """The global header; ``byteorder`` is ``"little"`` or ``"big"``, as the magic says."""

    linktype: int
    snaplen: int = MAX_SNAPLEN
    nanosecond: bool = False
    byteorder: str = "little"
    version_major: int = VERSION[0]
    version_minor: int = VERSION[1]
    thiszone: int = 0  # GMT offset in seconds; every modern writer puts 0
    sigfigs: int = 0

    def __post_init__(self) -> None:
        # The upper bits of the link type field may carry FCS information
        # (draft-ietf-opsawg-pcap section 4), so the whole 32 bits are kept.
        check_uint(LAYER, "linktype", self.linktype, 32)
        check_uint(LAYER, "snaplen", self.snaplen, 32)
        check_uint(LAYER, "version_major", self.version_major, 16)
        check_uint(LAYER, "version_minor", self.version_minor, 16)
        check_uint(LAYER, "sigfigs", self.sigfigs, 32)
        if isinstance(self.thiszone, bool) or not isinstance(self.thiszone, int):
            raise TypeError(f"{LAYER}: thiszone must be an int")
        if not -(1 << 31) <= self.thiszone < (1 << 31):
            raise ValueError(f"{LAYER}: thiszone {self.thiszone} does not fit 32 bits")
        if not isinstance(self.nanosecond, bool):
            raise TypeError(f"{LAYER}: nanosecond must be a bool")
        if self.byteorder not in _ORDERS:
            raise ValueError(
                f"{LAYER}: byteorder must be 'little' or 'big', not {self.byteorder!r}"
            )

    @property
    def ticks_per_second(self) -> int:
        """What one unit of a record's ``ts_frac`` is a fraction of."""
        return 1_000_000_000 if self.nanosecond else 1_000_000

    def encode(self) -> bytes:
        """The 24-byte global header."""
        magic = MAGIC_NANOSECOND if self.nanosecond else MAGIC_MICROSECOND
        return struct.pack(
            _ORDERS[self.byteorder] + _GLOBAL,
            magic,
            self.version_major,
            self.version_minor,
            self.thiszone,
            self.sigfigs,
            self.snaplen,
            self.linktype,
        )

    @classmethod
    def decode(cls, buf: BytesLike) -> PcapHeader:
        """Parse the global header at the start of ``buf``."""
        data = as_bytes(LAYER, buf)
        if len(data) < GLOBAL_LEN:
            raise DecodeError(
                LAYER, 0, f"truncated file header: needs {GLOBAL_LEN} bytes, got {len(data)}"
            )
        byteorder, magic = _detect_order(data)
        code = _ORDERS[byteorder]
        fields = struct.unpack_from(code + _GLOBAL, data)
        _, major, minor, thiszone, sigfigs, snaplen, linktype = fields
        if major != VERSION[0]:
            # Version 1 files predate the 2.x record layout; nothing writes them now.
            raise DecodeError(LAYER, 4, f"version {major}.{minor} is not 2.x")
        return cls(
            linktype=linktype,
            snaplen=snaplen,
            nanosecond=magic == MAGIC_NANOSECOND,
            byteorder=byteorder,
            version_major=major,
            version_minor=minor,
            thiszone=thiszone,
            sigfigs=sigfigs,
        )


def _detect_order(data: bytes) -> tuple[str, int]:
    """The byte order whose reading of the first 4 bytes is a pcap magic, and that magic."""
    for byteorder, code in _ORDERS.items():
        magic: int = struct.unpack_from(code + "I", data)[0]
        if magic in (MAGIC_MICROSECOND, MAGIC_NANOSECOND):
            return byteorder, magic
    if data[:4] == _PCAPNG_MAGIC.to_bytes(4, "big"):
        raise DecodeError(LAYER, 0, "this is a pcapng file; only classic pcap is read")
    raise DecodeError(LAYER, 0, f"unknown magic 0x{data[:4].hex()}")


@dataclass(frozen=True)
class PcapRecord:
    """One captured packet; ``ts_frac`` counts micro- or nanoseconds, as the header says.

    ``orig_len`` is the packet's length on the wire (``None``: the captured length), at
    least ``len(data)`` when the capture was cut at the snap length.
    """

    data: bytes
    ts_sec: int = 0
    ts_frac: int = 0
    orig_len: int | None = None

    def __post_init__(self) -> None:
        frozen_bytes(self, LAYER, "data")
        check_uint(LAYER, "ts_sec", self.ts_sec, 32)
        check_uint(LAYER, "ts_frac", self.ts_frac, 32)
        check_uint(LAYER, "captured length", len(self.data), 32)
        if self.orig_len is not None:
            check_uint(LAYER, "orig_len", self.orig_len, 32)
            if self.orig_len < len(self.data):
                raise ValueError(
                    f"{LAYER}: orig_len {self.orig_len} is below the "
                    f"{len(self.data)} captured bytes"
                )

    @property
    def wire_length(self) -> int:
        """The original length: ``orig_len``, or the captured length when that is None."""
        return len(self.data) if self.orig_len is None else self.orig_len

    def time_ns(self, header: PcapHeader) -> int:
        """The timestamp as nanoseconds since the epoch, read with ``header``'s resolution."""
        return self.ts_sec * 1_000_000_000 + self.ts_frac * (
            1_000_000_000 // header.ticks_per_second
        )

    def encode(self, header: PcapHeader) -> bytes:
        """Record header then data, in ``header``'s byte order and resolution."""
        if self.ts_frac >= header.ticks_per_second:
            unit = "nanoseconds" if header.nanosecond else "microseconds"
            raise ValueError(f"{LAYER}: ts_frac {self.ts_frac} {unit} is a second or more")
        if len(self.data) > header.snaplen:
            raise ValueError(
                f"{LAYER}: {len(self.data)} captured bytes exceed snaplen {header.snaplen}"
            )
        return (
            struct.pack(
                _ORDERS[header.byteorder] + _RECORD,
                self.ts_sec,
                self.ts_frac,
                len(self.data),
                self.wire_length,
            )
            + self.data
        )


def write_pcap(
    records: Iterable[PcapRecord],
    linktype: int,
    *,
    snaplen: int = MAX_SNAPLEN,
    nanosecond: bool = False,
    byteorder: str = "little",
) -> bytes:
    """A whole capture file holding ``records`` of link type ``linktype``."""
    header = PcapHeader(linktype, snaplen=snaplen, nanosecond=nanosecond, byteorder=byteorder)
    parts = [header.encode()]
    for record in records:
        if not isinstance(record, PcapRecord):
            raise TypeError(f"{LAYER}: expected PcapRecord, not {type(record).__name__}")
        parts.append(record.encode(header))
    return b"".join(parts)


def read_pcap(buf: BytesLike) -> tuple[PcapHeader, list[PcapRecord]]:
    """Parse a whole capture file; a short, cut or inconsistent file is a DecodeError."""
    data = as_bytes(LAYER, buf)
    header = PcapHeader.decode(data)
    layout = struct.Struct(_ORDERS[header.byteorder] + _RECORD)
    records: list[PcapRecord] = []
    at = GLOBAL_LEN
    while at < len(data):
        if len(data) - at < RECORD_LEN:
            raise DecodeError(
                LAYER,
                at,
                f"truncated record header: needs {RECORD_LEN} bytes, got {len(data) - at}",
            )
        ts_sec, ts_frac, incl_len, orig_len = layout.unpack_from(data, at)
        if ts_frac >= header.ticks_per_second:
            raise DecodeError(LAYER, at + 4, f"timestamp fraction {ts_frac} is a second or more")
        if incl_len > header.snaplen:
            raise DecodeError(
                LAYER, at + 8, f"captured length {incl_len} exceeds snaplen {header.snaplen}"
            )
        if incl_len > orig_len:
            raise DecodeError(
                LAYER, at + 8, f"captured length {incl_len} exceeds original length {orig_len}"
            )
        start = at + RECORD_LEN
        if start + incl_len > len(data):
            raise DecodeError(
                LAYER,
                at + 8,
                f"captured length {incl_len} runs past the end of the file "
                f"({len(data) - start} bytes left)",
            )
        records.append(PcapRecord(data[start : start + incl_len], ts_sec, ts_frac, orig_len))
        at = start + incl_len
    return header, records
