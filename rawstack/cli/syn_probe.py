"""``rawstack syn-probe HOST PORT``: a hand-built TCP SYN; open, closed or filtered."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rawstack.cli._options import add_family_flags, add_json_flag, print_json, say
from rawstack.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from rawstack.peers.syn_probe import Probe, SynProbeResult


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "syn-probe",
        help="send a hand-built TCP SYN and report open/closed/filtered (with the ICMP reason)",
        description="Send a TCP SYN (with an MSS option) built in user space through a raw "
        "socket. A SYN-ACK means open (answered at once with a RST, so no half-open "
        "connection is left), a RST means closed; an ICMP destination-unreachable about "
        "the SYN means filtered at once, with its code as the reason (nmap's names: "
        "admin-prohibited, host-unreach, ...), and silence until -W means filtered too. "
        "Exit 0 when the port is open, 1 when closed or filtered. An IPv6 HOST (or -6) "
        "gets the SYN in our own IPv6 header where the kernel takes one (Linux), with RFC "
        "3542 ancillary data where it does not; ICMPv6 unreachables count as ICMP ones.",
    )
    parser.add_argument("host", metavar="HOST", help="IPv4 or IPv6 address, or a name")
    add_family_flags(parser)
    parser.add_argument("port", metavar="PORT", type=int, help="TCP port")
    parser.add_argument("-c", "--count", type=int, default=1, help="probes to send (default 1)")
    parser.add_argument(
        "-W", "--timeout", type=float, default=1.0, help="seconds to wait per probe (default 1)"
    )
    add_json_flag(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import socket

    from rawstack.peers.syn_probe import OPEN, syn_probe

    def show(result: SynProbeResult, probe: Probe) -> None:
        say(args, probe.line(result.dst, result.port, args.timeout))

    result = syn_probe(
        args.host,
        args.port,
        count=args.count,
        timeout=args.timeout,
        on_probe=show,
        family={4: socket.AF_INET, 6: socket.AF_INET6}.get(args.family),
    )
    if args.json:
        print_json(result.as_dict())
    return EXIT_OK if result.state == OPEN else EXIT_FAILED
