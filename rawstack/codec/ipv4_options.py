"""IPv4 options (RFC 791 section 3.1, "Options"): walking them, the copied flag, and the
Record Route and Internet Timestamp updates a host makes when it answers an echo request.

Theory of operation: :class:`IPv4` keeps its options as opaque bytes; this module reads
them. :func:`split_options` cuts the area into one ``bytes`` per option: End of Option
List (0) ends the walk, No Operation (1) is one byte, every other option is type, length
(counting both), data. A length below 2 or past the area is a :class:`DecodeError`.

Fragmentation (RFC 791 section 3.2, "Fragmentation"): options whose type has the copied
flag (0x80) go into every fragment, the others into the first only
(:func:`fragment_options`).

Echo replies (RFC 1122 section 3.2.2.6): "If a Record Route and/or Time Stamp option is
received in an ICMP Echo Request, this option (these options) SHOULD be updated to include
the current host and included in the IP header of the Echo Reply message, without
'truncation'." :func:`record_route` and :func:`timestamp` make that update as the sending
host of the reply (the receiving host's entries were written on input, by the kernel on
Linux: ``ip_options_compile`` runs before raw sockets get their copy). The pointer is
1-based from the option's first byte (RFC 791): Record Route's starts at 4, Timestamp's at
5. A full Timestamp option counts the host in its overflow nibble instead; a full Record
Route is left as it is ("the datagram is forwarded without inserting the address").
"""

from __future__ import annotations

import struct

from ._errors import DecodeError
from .ipv4 import ip_to_bytes

__all__ = [
    "OPT_EOL",
    "OPT_LSRR",
    "OPT_NOP",
    "OPT_RR",
    "OPT_SSRR",
    "OPT_TS",
    "TS_ADDR",
    "TS_ONLY",
    "TS_PRESPEC",
    "echo_reply_options",
    "fragment_options",
    "pad_options",
    "record_route",
    "split_options",
    "timestamp",
]

LAYER = "ipv4"

OPT_EOL = 0  # End of Option List
OPT_NOP = 1  # No Operation
OPT_RR = 7  # Record Route
OPT_TS = 68  # Internet Timestamp
OPT_LSRR = 131  # Loose Source and Record Route
OPT_SSRR = 137  # Strict Source and Record Route
COPIED = 0x80  # the copied flag: the option goes into every fragment

# Timestamp flags (the low nibble of the fourth byte).
TS_ONLY = 0  # time stamps only
TS_ADDR = 1  # each preceded by the internet address of the registering entity
TS_PRESPEC = 3  # the address fields are prespecified; only a named host registers


def split_options(options: bytes) -> list[bytes]:
    """The options area cut into options, End of Option List and what follows it dropped."""
    out: list[bytes] = []
    at = 0
    while at < len(options):
        kind = options[at]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            out.append(options[at : at + 1])
            at += 1
            continue
        if at + 1 >= len(options):
            raise DecodeError(LAYER, 20 + at, f"option {kind} has no length byte")
        length = options[at + 1]
        if length < 2 or at + length > len(options):
            raise DecodeError(
                LAYER, 21 + at, f"option {kind} length {length} does not fit the options area"
            )
        out.append(options[at : at + length])
        at += length
    return out


def pad_options(options: bytes) -> bytes:
    """Pad to a multiple of 4 with End of Option List bytes (the IHL counts words)."""
    return options + b"\x00" * (-len(options) % 4)


def fragment_options(options: bytes) -> bytes:
    """The options of a non-first fragment: those with the copied flag, padded."""
    return pad_options(b"".join(o for o in split_options(options) if o[0] & COPIED))


def record_route(option: bytes, addr: str) -> bytes:
    """Record Route with ``addr`` added at the pointer, unless the route is full."""
    if len(option) < 3 or option[0] != OPT_RR:
        raise ValueError(f"{LAYER}: not a Record Route option")
    pointer = option[2]
    if pointer < 4:
        raise DecodeError(LAYER, 22, f"record route pointer {pointer} is below 4")
    if pointer + 3 > len(option):
        return option  # full
    slot = pointer - 1
    return _put(option, pointer + 4, slot, ip_to_bytes(addr))


def timestamp(option: bytes, addr: str, ms: int) -> bytes:
    """Internet Timestamp with this host (``addr``, ``ms`` since midnight UT) registered.

    Raises :class:`DecodeError` for a bad pointer or flag, or when the overflow count
    would pass 15 (RFC 791: the datagram is then discarded).
    """
    if len(option) < 4 or option[0] != OPT_TS:
        raise ValueError(f"{LAYER}: not a Timestamp option")
    if not 0 <= ms <= 0xFFFFFFFF:
        raise ValueError(f"{LAYER}: timestamp must fit 32 bits, not {ms}")
    pointer, overflow, flag = option[2], option[3] >> 4, option[3] & 0x0F
    if pointer < 5:
        raise DecodeError(LAYER, 22, f"timestamp pointer {pointer} is below 5")
    if flag not in (TS_ONLY, TS_ADDR, TS_PRESPEC):
        raise DecodeError(LAYER, 23, f"timestamp flag {flag} is not 0, 1 or 3")
    entry = 4 if flag == TS_ONLY else 8
    stamp = struct.pack("!I", ms)
    if pointer + entry - 1 > len(option):  # full
        if flag == TS_PRESPEC:
            return option  # every named host has registered
        if overflow == 15:
            raise DecodeError(LAYER, 23, "timestamp overflow count is already 15")
        return option[:3] + bytes([(overflow + 1) << 4 | flag]) + option[4:]
    slot = pointer - 1
    if flag == TS_ONLY:
        data = stamp
    elif flag == TS_ADDR:
        data = ip_to_bytes(addr) + stamp
    elif option[slot : slot + 4] == ip_to_bytes(addr):
        data = option[slot : slot + 4] + stamp
    else:
        return option  # the next prespecified address is not ours
    return _put(option, pointer + entry, slot, data)


def _put(option: bytes, pointer: int, slot: int, data: bytes) -> bytes:
    # A copy with the pointer advanced and ``data`` written at ``slot``.
    return option[:2] + bytes([pointer]) + option[3:slot] + data + option[slot + len(data) :]


def echo_reply_options(options: bytes, addr: str, ms: int) -> bytes | None:
    """The options of an echo reply from ``addr`` to a request carrying ``options``.

    Record Route and Timestamp are updated with this host and kept (RFC 1122 3.2.2.6);
    padding and every other option are dropped. None when the request carries a source
    route, whose reversal this responder does not implement (RFC 1122 3.2.2.6 makes the
    reversal a MUST, so such a request is not answered at all; Linux drops source-routed
    datagrams before delivery unless ``accept_source_route`` is set).
    """
    kept: list[bytes] = []
    for option in split_options(options):
        if option[0] in (OPT_LSRR, OPT_SSRR):
            return None
        if option[0] == OPT_RR:
            kept.append(record_route(option, addr))
        elif option[0] == OPT_TS:
            kept.append(timestamp(option, addr, ms))
    return pad_options(b"".join(kept))
