"""``rawstack udp serve`` and ``rawstack udp send``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rawstack.cli._options import add_json_flag, at_least, non_negative, print_json, say, serve_one
from rawstack.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from rawstack.peers.udp import UdpReply

# rawstack.peers.udp.MAX_DATAGRAM (a unit test keeps them equal), for --help without the peer.
MAX_DATAGRAM = 65507


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("udp", help="UDP echo server and round-trip client")
    sub = parser.add_subparsers(dest="udp_command", metavar="ACTION")
    sub.required = True

    serve = sub.add_parser(
        "serve",
        help="echo every datagram back to its sender",
        description="Echo every datagram (up to 65507 bytes) back to its sender. Prints one "
        "JSON ready line on stdout once bound; exits 0 on SIGTERM/SIGINT.",
    )
    serve.add_argument(
        "--bind",
        default="::",
        help="address to bind (default ::, IPv4 and IPv6 both; 0.0.0.0 for IPv4 only)",
    )
    serve.add_argument("--port", type=int, default=8080, help="UDP port; 0 picks a free one")
    serve.add_argument("-v", "--verbose", action="store_true", help="log every datagram")
    serve.set_defaults(func=run_serve)

    send = sub.add_parser(
        "send",
        help="send tagged probes and measure round trips",
        description="Send COUNT probes, each tagged with a sequence number so every reply is "
        "matched to its probe; report loss and RTT min/avg/max/p50/p99 (nearest rank). "
        "Exit status 1 when any probe is lost (no reply within --timeout), 0 otherwise.",
    )
    send.add_argument("host")
    send.add_argument("port", type=int)
    send.add_argument("message", nargs="?", default="Hello, UDP server!")
    send.add_argument("--count", "-c", type=at_least(1), default=1, metavar="N")
    send.add_argument(
        "--size",
        "-s",
        type=at_least(1),
        default=None,
        metavar="N",
        help=f"pad or cut each datagram to N bytes (max {MAX_DATAGRAM})",
    )
    send.add_argument(
        "--interval",
        "-i",
        type=non_negative,
        default=0.2,
        metavar="S",
        help="seconds between probes (default 0.2)",
    )
    send.add_argument(
        "--timeout",
        "-W",
        type=non_negative,
        default=1.0,
        metavar="S",
        help="seconds to wait for each reply (default 1)",
    )
    add_json_flag(send)
    send.set_defaults(func=run_send)


def run_serve(args: argparse.Namespace) -> int:
    from rawstack.peers.udp import UdpEchoServer

    return serve_one(UdpEchoServer(args.bind, args.port, verbose=args.verbose), "echoing on")


def run_send(args: argparse.Namespace) -> int:
    from rawstack.peers.udp import udp_round_trips

    def show(reply: UdpReply) -> None:
        say(
            args,
            f"{reply.size} bytes from {args.host}:{args.port} seq={reply.seq} "
            f"time={reply.rtt_ms:.3f} ms",
        )

    result = udp_round_trips(
        args.host,
        args.port,
        args.message.encode("utf-8"),
        count=args.count,
        timeout=args.timeout,
        interval=args.interval,
        size=args.size,
        on_reply=show,
    )
    if args.json:
        print_json(result.to_json())
    else:
        print(f"--- {result.peer} udp echo statistics ---")
        print(
            f"{result.sent} probes sent, {result.received} received, "
            f"{result.loss_pct:.1f}% loss, {result.duplicates} duplicates, {result.late} late"
        )
        if result.refused:
            print(f"{result.refused} ICMP port unreachable (connection refused) reports")
        if result.received:
            print(
                f"rtt min/avg/max/p50/p99 = {result.min_ms:.3f}/{result.avg_ms:.3f}/"
                f"{result.max_ms:.3f}/{result.p50_ms:.3f}/{result.p99_ms:.3f} ms"
            )
    if result.lost:
        print(f"rawstack: {result.lost} of {result.sent} probes lost", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
