"""``rawstack serve-all``: the HTTP, UDP echo, CHAO and ICMP servers in one process."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

# The registry imports no peer, so building the parser stays cheap.
from rawstack.peers.registry import ALL_PEERS, BY_NAME

if TYPE_CHECKING:
    from rawstack.peers.base import Server

__all__ = ["ALL_PEERS", "register", "run", "servers"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve-all",
        help="run the HTTP, UDP, CHAO and ICMP servers on one loop",
        description="Run the four servers in one process: one JSON ready line per peer on "
        "stdout once all are serving; SIGTERM/SIGINT closes them all and exits 0. If one "
        "cannot start, the others are closed and its error is the exit status.",
    )
    parser.add_argument("--iface", required=True, help="interface for CHAO and ICMP")
    http, udp = BY_NAME["http"].default_port, BY_NAME["udp"].default_port
    parser.add_argument("--http-port", type=int, default=http, help=f"HTTP port (default {http})")
    parser.add_argument("--udp-port", type=int, default=udp, help=f"UDP port (default {udp})")
    parser.add_argument(
        "--bind",
        default="::",
        metavar="ADDR",
        help="address for HTTP and UDP (default ::, every IPv4 and IPv6 address)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(ALL_PEERS),
        help=f"comma-separated subset of {','.join(ALL_PEERS)} (default all)",
    )
    parser.set_defaults(func=run)


def servers(args: argparse.Namespace) -> list[Server]:
    """The servers a parsed ``serve-all`` command line asks for, not started."""
    from rawstack.peers.serve_all import default_servers, parse_peers

    peers = parse_peers(args.peers)
    return default_servers(args.iface, args.http_port, args.udp_port, args.bind, peers)


def run(args: argparse.Namespace) -> int:
    from rawstack.peers.serve_all import serve

    return serve(servers(args))
