"""``rawstack icmp respond``: answer ICMP and ICMPv6 echo requests from user space."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "icmp", help="ICMP echo responder on raw sockets", description=__doc__
    )
    sub = parser.add_subparsers(dest="icmp_command", metavar="ACTION")
    sub.required = True
    respond = sub.add_parser(
        "respond",
        help="answer echo requests, building each reply's IP header ourselves",
        description="Answer ICMP echo requests: read them on a raw ICMP socket and send the "
        "replies through IPPROTO_RAW with our own IP header (fragmented when larger than "
        "the path MTU; Record Route and Timestamp options reflected). Requests to a "
        "broadcast or multicast address are answered only when "
        "net.ipv4.icmp_echo_ignore_broadcasts is 0, from this host's address; requests "
        "from one never. ICMPv6 echo requests are answered the same way on a raw ICMPv6 "
        "socket (our IPv6 header where the kernel takes one). Set "
        "net.ipv4.icmp_echo_ignore_all=1 and net.ipv6.icmp.echo_ignore_all=1 in this "
        "namespace or the kernel answers too.",
    )
    respond.add_argument(
        "--iface", default=None, help="only answer requests arriving on this interface"
    )
    respond.set_defaults(func=run_respond)


def run_respond(args: argparse.Namespace) -> int:
    from rawstack.peers.icmp import IcmpResponder
    from rawstack.peers.serve_all import serve

    return serve([IcmpResponder(args.iface)])
