"""Whether a kernel would refuse one IP_HDRINCL write, and why: its length check and its
oversize rule (QUIRKS.md, "Length checks on write"), applied to the bytes as written.

Theory of operation: the bytes are in the raw-socket format (what ``wire_to_raw`` made of a
wire packet, or anything a user crafted), so ip_len and ip_off are read in the order the
row says the kernel reads them. The checks run in the kernels' own order: Linux
``raw_send_hdrinc`` tests the MTU before the header length; BSD ``rip_output`` tests
``IP_MAXPACKET`` before ip_len, and ``ip_output`` tests Don't Fragment against the MTU last.
Nothing is sent: ``rawstack craft --check`` uses this to say which kernels would reject a
header, and the kernel-quirk integration tests compare it with the running kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rawstack.quirks._table import (
    LEN_EXACT,
    LEN_NOT_LONGER,
    LEN_REWRITTEN,
    LEN_WITHIN,
    OVERSIZE_FRAGMENTS,
    OVERSIZE_MTU,
    KernelQuirks,
)

IP_MAXPACKET = 65535
MIN_HEADER = 20
DEFAULT_MTU = 1500
_DF = 0x4000


@dataclass(frozen=True)
class WriteVerdict:
    """A refused write: the errno ``sendto`` fails with and the rule that says so."""

    errno: str  # "EINVAL" or "EMSGSIZE"
    reason: str

    def __str__(self) -> str:
        return f"{self.errno} ({self.reason})"


def write_verdict(
    raw: bytes, quirks: KernelQuirks, byteorder: str = "little", mtu: int = DEFAULT_MTU
) -> WriteVerdict | None:
    """None when ``quirks``'s kernel accepts ``raw`` on an IP_HDRINCL socket whose route has
    MTU ``mtu``; else what it answers. ``byteorder`` is the target machine's."""
    if byteorder not in ("little", "big"):
        raise ValueError(f"byteorder must be 'little' or 'big', not {byteorder!r}")
    length = len(raw)
    if quirks.oversize == OVERSIZE_MTU and length > mtu:
        return WriteVerdict("EMSGSIZE", f"{length} bytes exceed the device MTU {mtu}")
    if quirks.oversize != OVERSIZE_MTU and length > IP_MAXPACKET:
        return WriteVerdict("EMSGSIZE", f"{length} bytes exceed IP_MAXPACKET {IP_MAXPACKET}")
    if length < MIN_HEADER:
        return WriteVerdict("EINVAL", f"{length} bytes cannot hold an IPv4 header")
    hlen = (raw[0] & 0x0F) * 4
    if hlen > length:
        return WriteVerdict("EINVAL", f"ihl*4 = {hlen} exceeds the {length}-byte datagram")
    swap = byteorder == "little"
    len_order: Literal["little", "big"] = (
        "little" if swap and quirks.write_len_host_order else "big"
    )
    off_order: Literal["little", "big"] = (
        "little" if swap and quirks.write_off_host_order else "big"
    )
    ip_len = int.from_bytes(raw[2:4], len_order)
    check = quirks.length_check
    if check == LEN_EXACT and ip_len != length:
        return WriteVerdict("EINVAL", f"ip_len {ip_len} is not the datagram's {length} bytes")
    if check in (LEN_NOT_LONGER, LEN_WITHIN) and ip_len > length:
        return WriteVerdict("EINVAL", f"ip_len {ip_len} exceeds the {length}-byte datagram")
    if check == LEN_WITHIN and ip_len < hlen:
        return WriteVerdict("EINVAL", f"ip_len {ip_len} is below the {hlen}-byte header")
    assert check in (LEN_REWRITTEN, LEN_EXACT, LEN_NOT_LONGER, LEN_WITHIN)
    df = bool(int.from_bytes(raw[6:8], off_order) & _DF)
    if quirks.oversize == OVERSIZE_FRAGMENTS and df and length > mtu:
        return WriteVerdict("EMSGSIZE", f"Don't Fragment set and {length} bytes exceed MTU {mtu}")
    return None
