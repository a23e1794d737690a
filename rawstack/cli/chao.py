"""``rawstack chao serve|send``: the CHAO link-layer protocol (EtherType 0x88B5)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from rawstack.cli._options import add_json_flag, print_json, say
from rawstack.errors import ExchangeFailed

if TYPE_CHECKING:
    from rawstack.engines.chao import ChaoReply


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "chao", help="CHAO link-layer server and client", description=__doc__
    )
    sub = parser.add_subparsers(dest="chao_command", metavar="ACTION")
    sub.required = True

    serve_p = sub.add_parser(
        "serve",
        help="answer CHAO requests on an interface",
        description="Answer every CHAO request on IFACE with a reply to the sender's MAC, in "
        "the request's VLAN when it was 802.1Q-tagged (docs/chao.md). Malformed frames are "
        "dropped and logged, at most 20 lines at once and 10 a second after that, with a "
        "count of the lines left out.",
    )
    serve_p.add_argument("--iface", required=True, help="network interface, e.g. eth0")
    serve_p.set_defaults(func=run_serve)

    send_p = sub.add_parser("send", help="send CHAO requests and wait for the replies")
    send_p.add_argument("--iface", required=True, help="network interface, e.g. eth0")
    send_p.add_argument(
        "--to", default="broadcast", metavar="MAC", help="peer MAC address or 'broadcast'"
    )
    # None, not peers.chao.DEFAULT_MESSAGE: building the parser must not import the peer.
    send_p.add_argument("message", nargs="?", default=None, metavar="MESSAGE")
    send_p.add_argument("-c", "--count", type=int, default=1, help="requests to send")
    send_p.add_argument(
        "-i", "--interval", type=float, default=1.0, help="seconds between requests (default 1)"
    )
    send_p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply")
    add_json_flag(send_p)
    send_p.set_defaults(func=run_send)


def run_serve(args: argparse.Namespace) -> int:
    from rawstack.peers.chao import ChaoServer
    from rawstack.peers.serve_all import serve

    return serve([ChaoServer(args.iface)])


def run_send(args: argparse.Namespace) -> int:
    from rawstack.peers.chao import DEFAULT_MESSAGE, chao_exchange

    def show(reply: ChaoReply) -> None:
        say(
            args,
            f"{len(reply.payload)} bytes from {reply.peer}: seq={reply.seq} "
            f"time={reply.rtt * 1000:.3f} ms: {reply.payload.decode(errors='replace')}",
        )

    result = chao_exchange(
        args.iface,
        to=args.to,
        message=DEFAULT_MESSAGE if args.message is None else args.message,
        count=args.count,
        timeout=args.timeout,
        interval=args.interval,
        on_reply=show,
    )
    if args.json:
        print_json(result.as_dict())
    else:
        print(
            f"{result.sent} requests sent, {result.received} replies received, "
            f"{len(result.lost)} lost"
        )
    if not result.ok:
        raise ExchangeFailed(
            f"no CHAO reply on {args.iface} from {result.to} within {args.timeout:g}s"
        )
    return 0
