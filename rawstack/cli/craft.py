"""``rawstack craft``: print one hand-built packet as hex bytes, in a chosen kernel's format.

The IP kinds build a wire packet with the codecs, then (unless ``--wire``) pass it through
:func:`rawstack.quirks.wire_to_raw` for the target kernel: the output is exactly what to
write to that kernel's IP_HDRINCL socket, checksum computed over the bytes as written
(as macOS and old FreeBSD checksum the host-order ip_len they were given). ``chao`` prints
a whole Ethernet frame, which no kernel rewrites.

The IPv6 kinds (``icmp6-echo``, ``udp6``, ``tcp6-syn``) build a wire IPv6 packet. IPv6 raw
sockets never take a header in host order, but only some kernels take one at all
(docs/ipv6.md): for those (Linux) the output is the whole packet; for the others it is the
upper-layer bytes alone, since their kernel writes the IPv6 header itself and takes its
fields as RFC 3542 ancillary data. ``--wire`` prints the whole packet for any target.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Callable

from rawstack.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from rawstack.codec.tcp_options import TcpOption
    from rawstack.quirks import KernelQuirks

# Copies of rawstack.quirks.KNOWN_OS and mac_to_str(BROADCAST_MAC), kept equal by a unit
# test: the parser of every command is built on each start, the codecs are loaded on use.
KNOWN_OS = ("linux", "freebsd", "darwin", "ios", "openbsd", "netbsd", "dragonfly")
BROADCAST = "ff:ff:ff:ff:ff:ff"

BYTEORDER_HELP = (
    "byte order of the target machine, used for the fields its kernel wants in host order "
    "(default: little; the target need not be this machine, and every macOS/BSD machine "
    "one meets today, x86-64 or arm64, is little-endian)"
)


def integer(text: str) -> int:
    """A decimal or 0x-prefixed integer (argparse names this function in its errors)."""
    return int(text, 0)


def _ip_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    ip = common.add_argument_group("IPv4 and target kernel")
    ip.add_argument("--src", required=True, help="source IPv4 address")
    ip.add_argument("--dst", required=True, help="destination IPv4 address")
    ip.add_argument("--ttl", type=int, default=64, help="time to live (default 64)")
    ip.add_argument(
        "--ip-id", type=int, default=0, help="IP identification (default 0: most kernels fill it)"
    )
    ip.add_argument("--df", action="store_true", help="set the don't-fragment flag")
    ip.add_argument(
        "--ip-len",
        type=integer,
        metavar="N",
        help="write this total length (wire value, before any conversion; 0x.. allowed) "
        "instead of the true one, e.g. to see which kernels refuse it with --check",
    )
    ip.add_argument("--payload", metavar="HEX", default="", help="payload bytes as hex")
    ip.add_argument(
        "--os",
        metavar="OS",
        help=f"target kernel, one of {', '.join(KNOWN_OS)} (default: this host)",
    )
    ip.add_argument(
        "--osrel", type=int, metavar="N", help="FreeBSD kern.osreldate (with --os freebsd)"
    )
    ip.add_argument(
        "--wire", action="store_true", help="print the on-the-wire form, whatever the OS"
    )
    ip.add_argument("--byteorder", choices=("little", "big"), default="little", help=BYTEORDER_HELP)
    ip.add_argument(
        "--check",
        action="store_true",
        help="after the packet, one line per kernel of the quirk table: whether writing "
        "these exact bytes to its IP_HDRINCL socket is accepted, or refused with "
        "EINVAL/EMSGSIZE and by which rule (length check, oversize)",
    )
    ip.add_argument(
        "--mtu",
        type=int,
        default=1500,
        help="route MTU for --check's oversize rules (default 1500)",
    )
    return common


def _ip6_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    ip = common.add_argument_group("IPv6 and target kernel")
    ip.add_argument("--src", required=True, help="source IPv6 address")
    ip.add_argument("--dst", required=True, help="destination IPv6 address")
    ip.add_argument("--hop-limit", type=int, default=64, help="hop limit (default 64)")
    ip.add_argument("--tclass", type=int, default=0, help="traffic class (default 0)")
    ip.add_argument("--flow-label", type=int, default=0, help="flow label (default 0)")
    ip.add_argument("--payload", metavar="HEX", default="", help="payload bytes as hex")
    ip.add_argument(
        "--os",
        metavar="OS",
        help=f"target kernel, one of {', '.join(KNOWN_OS)} (default: this host); where it "
        "builds the IPv6 header itself, only the upper-layer bytes are printed",
    )
    ip.add_argument(
        "--wire", action="store_true", help="print the whole on-the-wire packet, whatever the OS"
    )
    return common


def register(subparsers: Any) -> None:
    """Add ``craft`` and its packet kinds."""
    craft = subparsers.add_parser(
        "craft",
        help="print a crafted packet as hex bytes",
        description="Print one packet as space-separated hex bytes on one line: by default "
        "what to write to the target kernel's raw (IP_HDRINCL) socket, which differs from the "
        "wire on macOS, NetBSD, DragonFly and FreeBSD before 11.0. With --check, one more line "
        "per kernel says whether it would accept those bytes or refuse them (EINVAL from its "
        "ip_len check, EMSGSIZE from its oversize rule). The IPv6 kinds print the whole "
        "packet for a kernel that takes a hand-built IPv6 header (Linux), else the "
        "upper-layer bytes alone.",
    )
    kinds = craft.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    common = _ip_options()

    echo = kinds.add_parser("icmp-echo", parents=[common], help="ICMP echo request")
    echo.add_argument("--icmp-id", type=int, default=0, help="echo identifier (default 0)")
    echo.add_argument("--seq", type=int, default=0, help="echo sequence number (default 0)")
    echo.add_argument("--reply", action="store_true", help="an echo reply instead of a request")
    echo.set_defaults(func=run, build=_icmp_echo)

    udp = kinds.add_parser("udp", parents=[common], help="UDP datagram")
    udp.add_argument("--sport", type=int, required=True, help="source port")
    udp.add_argument("--dport", type=int, required=True, help="destination port")
    udp.set_defaults(func=run, build=_udp)

    syn = kinds.add_parser("tcp-syn", parents=[common], help="TCP SYN segment")
    for flags, kwargs in _SYN_OPTIONS:
        syn.add_argument(*flags, **kwargs)
    syn.set_defaults(func=run, build=_tcp_syn)

    common6 = _ip6_options()
    echo6 = kinds.add_parser("icmp6-echo", parents=[common6], help="ICMPv6 echo request")
    echo6.add_argument("--icmp-id", type=int, default=0, help="echo identifier (default 0)")
    echo6.add_argument("--seq", type=int, default=0, help="echo sequence number (default 0)")
    echo6.add_argument("--reply", action="store_true", help="an echo reply instead of a request")
    echo6.set_defaults(func=run6, build=_icmp6_echo)

    udp6 = kinds.add_parser("udp6", parents=[common6], help="UDP datagram over IPv6")
    udp6.add_argument("--sport", type=int, required=True, help="source port")
    udp6.add_argument("--dport", type=int, required=True, help="destination port")
    udp6.set_defaults(func=run6, build=_udp)

    syn6 = kinds.add_parser("tcp6-syn", parents=[common6], help="TCP SYN segment over IPv6")
    for flags, kwargs in _SYN_OPTIONS:
        syn6.add_argument(*flags, **kwargs)
    syn6.set_defaults(func=run6, build=_tcp_syn)

    chao = kinds.add_parser("chao", help="CHAO message in an Ethernet frame (EtherType 0x88B5)")
    chao.add_argument("message", nargs="?", help="payload text (UTF-8)")
    chao.add_argument("--src-mac", required=True, help="source MAC, aa:bb:cc:dd:ee:ff")
    chao.add_argument("--dst-mac", default=BROADCAST, help="destination MAC (default: broadcast)")
    chao.add_argument("--seq", type=int, default=0, help="sequence number (default 0)")
    chao.add_argument("--type", choices=("request", "reply"), default="request")
    chao.add_argument("--payload", metavar="HEX", help="payload bytes as hex, instead of text")
    chao.set_defaults(func=run_chao)


# The TCP SYN options, shared by tcp-syn and tcp6-syn.
_SYN_OPTIONS: tuple[tuple[tuple[str, ...], dict[str, Any]], ...] = (
    (("--sport",), {"type": int, "required": True, "help": "source port"}),
    (("--dport",), {"type": int, "required": True, "help": "destination port"}),
    (("--seq",), {"type": int, "default": 0, "help": "initial sequence number (default 0)"}),
    (("--window",), {"type": int, "default": 65535, "help": "window (default 65535)"}),
    (("--mss",), {"type": int, "help": "add an MSS option"}),
    (("--wscale",), {"type": int, "metavar": "SHIFT", "help": "add a window-scale option"}),
    (("--sack-perm",), {"action": "store_true", "help": "add SACK-permitted"}),
    (("--timestamps",), {"type": int, "metavar": "TSVAL", "help": "add timestamps (TSval)"}),
)


def hex_line(data: bytes) -> str:
    """``b"\\x45\\x00"`` -> ``"45 00"``."""
    return " ".join(f"{octet:02x}" for octet in data)


def run(args: argparse.Namespace) -> int:
    """Build the IP packet for ``args.kind`` and print it in the target's raw format."""
    from rawstack.codec.ipv4 import IPv4
    from rawstack.quirks import wire_to_raw

    src = _address("--src", args.src)
    dst = _address("--dst", args.dst)
    _uint("--ttl", args.ttl, 8)
    _uint("--ip-id", args.ip_id, 16)
    payload = _hex("--payload", args.payload)
    # --wire still checks --os/--osrel, so a typo is never silently ignored.
    quirks = _target(args.os, args.osrel, detect=not args.wire)
    build: Callable[[argparse.Namespace, str, str, bytes], tuple[int, bytes]] = args.build
    proto, body = build(args, src, dst, payload)
    ip_len = None if args.ip_len is None else _uint("--ip-len", args.ip_len, 16)
    packet = IPv4(
        src, dst, proto, body, ttl=args.ttl, ident=args.ip_id, df=args.df, total_length=ip_len
    ).encode()
    if quirks is not None and not args.wire:
        packet = wire_to_raw(packet, quirks, args.byteorder)
    print(hex_line(packet))
    if args.check:
        for line in verdict_lines(packet, args.byteorder, _uint("--mtu", args.mtu, 16)):
            print(line)
    return EXIT_OK


def run6(args: argparse.Namespace) -> int:
    """Build the IPv6 packet for ``args.kind``; print what the target kernel's raw socket
    takes (the whole packet, or the upper-layer bytes where the kernel adds the header)."""
    from rawstack.codec.ipv6 import IPv6
    from rawstack.quirks import host_ipv6_quirks, ipv6_quirks_for
    from rawstack.quirks._ipv6 import HDRINCL

    src = _address6("--src", args.src)
    dst = _address6("--dst", args.dst)
    _uint("--hop-limit", args.hop_limit, 8)
    _uint("--tclass", args.tclass, 8)
    _uint("--flow-label", args.flow_label, 20)
    payload = _hex("--payload", args.payload)
    try:
        target = host_ipv6_quirks() if args.os is None else ipv6_quirks_for(args.os)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    build: Callable[[argparse.Namespace, str, str, bytes], tuple[int, bytes]] = args.build
    proto, body = build(args, src, dst, payload)
    packet = IPv6(
        src,
        dst,
        proto,
        body,
        hop_limit=args.hop_limit,
        traffic_class=args.tclass,
        flow_label=args.flow_label,
    )
    whole = args.wire or target.header_write == HDRINCL
    print(hex_line(packet.encode() if whole else body))
    return EXIT_OK


def verdict_lines(packet: bytes, byteorder: str, mtu: int) -> list[str]:
    """``LABEL: accepted`` or ``LABEL: EINVAL (why)`` for every row of the quirk table."""
    from rawstack.quirks import TABLE, write_verdict

    width = max(len(row.label) for row in TABLE)
    lines = []
    for row in TABLE:
        verdict = write_verdict(packet, row, byteorder, mtu)
        lines.append(f"{row.label + ':':{width + 1}} {'accepted' if verdict is None else verdict}")
    return lines


def run_chao(args: argparse.Namespace) -> int:
    """Print the whole Ethernet frame carrying one CHAO message."""
    from rawstack.codec.chao import CHAO_REPLY, CHAO_REQUEST, Chao
    from rawstack.codec.ethernet import ETH_P_CHAO, Ethernet

    if args.message is not None and args.payload is not None:
        raise UsageError("give the message text or --payload HEX, not both")
    payload = (
        _hex("--payload", args.payload)
        if args.payload is not None
        else (args.message or "").encode()
    )
    _uint("--seq", args.seq, 16)
    message = Chao(CHAO_REQUEST if args.type == "request" else CHAO_REPLY, args.seq, payload)
    frame = Ethernet(
        _mac("--dst-mac", args.dst_mac),
        _mac("--src-mac", args.src_mac),
        ETH_P_CHAO,
        message.encode(),
    )
    print(hex_line(frame.encode()))
    return EXIT_OK


def _icmp_echo(args: argparse.Namespace, src: str, dst: str, payload: bytes) -> tuple[int, bytes]:
    from rawstack.codec.icmp import ECHO_REPLY, ECHO_REQUEST, IcmpEcho
    from rawstack.codec.ipv4 import PROTO_ICMP

    _uint("--icmp-id", args.icmp_id, 16)
    _uint("--seq", args.seq, 16)
    kind = ECHO_REPLY if args.reply else ECHO_REQUEST
    return PROTO_ICMP, IcmpEcho(kind, args.icmp_id, args.seq, payload).encode()


def _icmp6_echo(args: argparse.Namespace, src: str, dst: str, payload: bytes) -> tuple[int, bytes]:
    from rawstack.codec.icmp6 import ECHO_REPLY6, ECHO_REQUEST6, Icmp6Echo
    from rawstack.codec.ipv6 import PROTO_ICMPV6

    _uint("--icmp-id", args.icmp_id, 16)
    _uint("--seq", args.seq, 16)
    kind = ECHO_REPLY6 if args.reply else ECHO_REQUEST6
    # The checksum covers the IPv6 pseudo-header (RFC 4443 2.3).
    return PROTO_ICMPV6, Icmp6Echo(kind, args.icmp_id, args.seq, payload).encode(src, dst)


def _udp(args: argparse.Namespace, src: str, dst: str, payload: bytes) -> tuple[int, bytes]:
    from rawstack.codec.ipv4 import PROTO_UDP
    from rawstack.codec.udp import Udp

    sport = _uint("--sport", args.sport, 16)
    dport = _uint("--dport", args.dport, 16)
    return PROTO_UDP, Udp(sport, dport, payload).encode(src, dst)


def _tcp_syn(args: argparse.Namespace, src: str, dst: str, payload: bytes) -> tuple[int, bytes]:
    from rawstack.codec.ipv4 import PROTO_TCP
    from rawstack.codec.tcp import SYN, Tcp
    from rawstack.codec.tcp_options import (
        TcpMss,
        TcpNop,
        TcpSackPermitted,
        TcpTimestamps,
        TcpWindowScale,
    )

    sport = _uint("--sport", args.sport, 16)
    dport = _uint("--dport", args.dport, 16)
    options: list[TcpOption] = []
    # Linux's SYN layout (tcp_options_write): every option on a 32-bit boundary.
    if args.mss is not None:
        options.append(TcpMss(_uint("--mss", args.mss, 16)))
    sack = [TcpSackPermitted()] if args.sack_perm else []
    if args.timestamps is not None:
        stamps = TcpTimestamps(_uint("--timestamps", args.timestamps, 32))
        options += [*sack, stamps] if sack else [TcpNop(), TcpNop(), stamps]
    elif sack:
        options += [TcpNop(), TcpNop(), *sack]
    if args.wscale is not None:
        if not 0 <= args.wscale <= 14:
            raise UsageError(f"--wscale {args.wscale} is out of range 0..14 (RFC 7323)")
        options += [TcpNop(), TcpWindowScale(args.wscale)]
    segment = Tcp(
        sport,
        dport,
        _uint("--seq", args.seq, 32),
        flags=SYN,
        window=_uint("--window", args.window, 16),
        options=tuple(options),
        payload=payload,
    )
    return PROTO_TCP, segment.encode(src, dst)


def _target(os: str | None, osrel: int | None, *, detect: bool) -> KernelQuirks | None:
    """The target kernel's row; None for ``--wire`` with no ``--os`` (nothing to convert)."""
    from rawstack.quirks import host_quirks, quirks_for

    if os is None:
        return host_quirks(override_osrel=osrel) if detect else None
    if osrel is not None and os.strip().lower() != "freebsd":
        raise UsageError(f"--osrel is FreeBSD's kern.osreldate; it needs --os freebsd, not {os}")
    if osrel is None and os.strip().lower() == "freebsd":
        raise UsageError(
            "--os freebsd needs --osrel (kern.osreldate, e.g. 1400000): "
            "FreeBSD's raw-socket byte order changed at 11.0"
        )
    return quirks_for(os, osrel)


def _uint(option: str, value: int, bits: int) -> int:
    if not 0 <= value < (1 << bits):
        raise UsageError(f"{option} {value} is out of range 0..{(1 << bits) - 1}")
    return value


def _address(option: str, value: str) -> str:
    from rawstack.codec.ipv4 import ip_to_bytes

    try:
        ip_to_bytes(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    return value


def _address6(option: str, value: str) -> str:
    from rawstack.codec.ipv6 import ip6_to_bytes, ip6_to_str

    try:
        return ip6_to_str(ip6_to_bytes(value))
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _mac(option: str, value: str) -> bytes:
    from rawstack.codec.ethernet import mac_to_bytes

    try:
        return mac_to_bytes(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _hex(option: str, value: str) -> bytes:
    digits = "".join(value.split())
    if len(digits) % 2:
        raise UsageError(f"{option}: odd number of hex digits ({len(digits)})")
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise UsageError(f"{option}: {value!r} is not hex") from None
