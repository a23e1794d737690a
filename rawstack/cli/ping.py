"""``rawstack ping [-4|-6] HOST``: echo requests with our own IP header, iputils-style output."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from rawstack.cli._options import add_family_flags, add_json_flag, print_json, say
from rawstack.errors import EXIT_FAILED, EXIT_OK

if TYPE_CHECKING:
    from rawstack.engines.ping import EchoError, EchoReply
    from rawstack.peers.ping import PingResult


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ping",
        help="ICMP echo through a raw socket (iputils-like output)",
        description="Send ICMP echo requests through IPPROTO_RAW with an IP header built in "
        "user space (in this kernel's raw-socket format) and read the replies on a raw ICMP "
        "socket; a request larger than the path MTU is sent as fragments. Exit 0 if any "
        "reply came back, 1 if none, 2 for bad arguments, no route to HOST or a broadcast "
        "HOST (like iputils). An IPv6 HOST (or -6) sends ICMPv6 echo requests: our own IPv6 "
        "header through IPPROTO_RAW where the kernel takes one (Linux), the hop limit as "
        "RFC 3542 ancillary data where it does not, with iputils' ping -6 output.",
    )
    parser.add_argument("host", metavar="HOST", help="IPv4 or IPv6 address, or a name")
    add_family_flags(parser)
    parser.add_argument("-c", "--count", type=int, default=4, help="requests to send (default 4)")
    parser.add_argument(
        "-i", "--interval", type=float, default=1.0, help="seconds between requests (default 1)"
    )
    parser.add_argument(
        "-s",
        "--size",
        type=int,
        default=56,
        help="data bytes per request, 0..65507 (0..65527 over IPv6; default 56); under 16 "
        "there is no room for "
        "the timestamp, so replies are not timed (as iputils)",
    )
    parser.add_argument(
        "-W",
        "--timeout",
        type=float,
        default=1.0,
        help="seconds to wait for replies after the last request (default 1); as iputils, "
        "the run ends sooner once every request got a reply or an ICMP error",
    )
    parser.add_argument(
        "--ttl", type=int, default=64, help="IP time to live, or IPv6 hop limit (default 64)"
    )
    parser.add_argument(
        "--unprivileged",
        action="store_true",
        help="use the SOCK_DGRAM ICMP (or ICMPv6) socket (needs net.ipv4.ping_group_range, "
        "not CAP_NET_RAW)",
    )
    add_json_flag(parser, "print one JSON object at the end")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import socket

    from rawstack.peers.ping import ping

    def show(event: EchoReply | EchoError | str) -> None:
        if args.json:
            return
        if isinstance(event, str):
            print(f"rawstack: ping: {event}", file=sys.stderr, flush=True)
        else:
            print(event.line(), flush=True)

    def start(header: str) -> None:
        say(args, header)

    result = ping(
        args.host,
        count=args.count,
        interval=args.interval,
        timeout=args.timeout,
        size=args.size,
        ttl=args.ttl,
        unprivileged=args.unprivileged,
        on_event=show,
        on_start=start,
        family={4: socket.AF_INET, 6: socket.AF_INET6}.get(args.family),
    )
    if args.json:
        print_json(as_dict(result))
    else:
        print()
        summary = result.stats.summary()
        print("\n".join(summary))
        if " transmitted, " in summary[-1]:
            print()  # iputils ends the block with a newline of its own after the counts
    return EXIT_OK if result.ok else EXIT_FAILED


def as_dict(result: PingResult) -> dict[str, Any]:
    stats = result.stats
    return {
        "host": result.host,
        "dst": result.dst,
        "transmitted": stats.transmitted,
        "received": stats.received,
        "duplicates": stats.duplicates,
        "errors": stats.errors,
        "loss_percent": stats.loss_percent,
        "time_ms": stats.elapsed_ms,
        "rtts_ms": result.rtts,
        "replies": [
            {
                "seq": r.seq,
                "from": r.src,
                "bytes": r.size,
                "ttl": r.ttl,
                "rtt_ms": r.rtt_ms,
                "duplicate": r.duplicate,
            }
            for r in result.replies
        ],
        "icmp_errors": [e.line() for e in result.errors],
        "summary": stats.summary(),
    }
