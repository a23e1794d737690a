"""``rawstack http serve`` and ``rawstack http get``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rawstack.cli._options import positive_float, positive_int, print_json, serve_one
from rawstack.errors import EXIT_FAILED, EXIT_OK, UsageError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("http", help="HTTP/1.1 server and client on bare sockets")
    sub = parser.add_subparsers(dest="http_command", metavar="ACTION")
    sub.required = True

    serve = sub.add_parser(
        "serve",
        help="serve / (hello page), /echo and /status",
        description="Serve GET/HEAD / (the hello page), POST/PUT /echo (the body back; "
        "411 without Content-Length or chunked) and GET /status (JSON counters); OPTIONS * and "
        "CONNECT get 400, as nginx answers. Memory is bounded by backpressure and the limits "
        "below (docs/http.md). Prints one JSON ready line on stdout once listening; exits 0 "
        "on SIGTERM/SIGINT.",
    )
    serve.add_argument(
        "--bind",
        default="::",
        help="address to listen on (default ::, IPv4 and IPv6 both; 0.0.0.0 for IPv4 only)",
    )
    serve.add_argument("--port", type=int, default=8080, help="TCP port; 0 picks a free one")
    serve.add_argument(
        "--max-header-bytes",
        type=positive_int,
        default=16384,
        metavar="N",
        help="largest request head; larger is 431 (default 16384)",
    )
    serve.add_argument(
        "--max-target-bytes",
        type=positive_int,
        default=8192,
        metavar="N",
        help="longest request-target; longer is 414 (default 8192)",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=1 << 20,
        metavar="N",
        help="largest request body; larger is 413 (default 1 MiB)",
    )
    serve.add_argument(
        "--header-timeout",
        type=positive_float,
        default=10.0,
        metavar="S",
        help="a request head must arrive within S seconds of its first byte, else 408; a "
        "connection that sends nothing is closed after S seconds without a reply (default 10)",
    )
    serve.add_argument(
        "--request-timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="a whole request, body included, must arrive within S seconds of its first "
        "byte, else 408 (default 60)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=60.0,
        metavar="S",
        help="close keep-alive connections idle for S seconds, and connections whose "
        "client has not read its answers for S seconds (default 60)",
    )
    serve.add_argument(
        "--max-connections",
        type=positive_int,
        default=4096,
        metavar="N",
        help="open connections at most; one more gets 503 and is closed (default 4096)",
    )
    serve.add_argument(
        "--max-output-bytes",
        type=positive_int,
        default=1 << 20,
        metavar="N",
        help="unsent answers per connection before it stops being read (default 1 MiB)",
    )
    serve.add_argument(
        "--max-buffer-bytes",
        type=positive_int,
        default=256 << 20,
        metavar="N",
        help="input held plus unsent output across all connections before reading pauses "
        "(default 256 MiB)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    serve.set_defaults(func=run_serve)

    get = sub.add_parser(
        "get",
        help="send one request and print the response body",
        description="Send one HTTP/1.1 request and stream the body to stdout (or -o FILE) as "
        "it arrives, never holding it. A status of 400 or more still writes the body (or the "
        "JSON) but exits 1, like curl --fail-with-body; 1xx-3xx exit 0 (redirects are not "
        "followed).",
    )
    get.add_argument("url", help="http://HOST[:PORT]/PATH")
    get.add_argument("--method", "-X", default=None, help="method (default GET, POST with --data)")
    get.add_argument("--data", "-d", default=None, help="request body (UTF-8 text)")
    get.add_argument(
        "--header",
        "-H",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="extra header field; repeatable",
    )
    get.add_argument(
        "--timeout",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="deadline for the whole exchange (default 5)",
    )
    get.add_argument(
        "--output",
        "-o",
        default=None,
        metavar="FILE",
        help="write the body to FILE instead of stdout",
    )
    get.add_argument(
        "--json",
        action="store_true",
        help="print {status, headers, body, timing} as one JSON object (this holds the "
        "body in memory, up to 1 GiB)",
    )
    get.set_defaults(func=run_get)


def run_serve(args: argparse.Namespace) -> int:
    from rawstack.peers.http_server import HttpServer

    server = HttpServer(
        args.bind,
        args.port,
        max_header_bytes=args.max_header_bytes,
        max_body_bytes=args.max_body_bytes,
        max_target_bytes=args.max_target_bytes,
        header_timeout=args.header_timeout,
        request_timeout=args.request_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections,
        max_output_bytes=args.max_output_bytes,
        max_buffer_bytes=args.max_buffer_bytes,
        verbose=args.verbose,
    )
    return serve_one(server, "listening on")


def parse_header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip() or name != name.strip():
        raise UsageError(f"bad --header {text!r}: expected 'Name: value'")
    return name, value.strip()


def run_get(args: argparse.Namespace) -> int:
    from rawstack.peers.http_client import http_get_url

    headers = tuple(parse_header(h) for h in args.header)
    body = args.data.encode("utf-8") if args.data is not None else b""
    method = args.method or ("POST" if args.data is not None else "GET")
    if args.json:
        result = http_get_url(args.url, method, body, headers, args.timeout)
        print_json(result.to_json())
    elif args.output is not None:
        try:
            sink = open(args.output, "wb")  # noqa: SIM115 - closed just below
        except OSError as exc:
            raise UsageError(f"{args.output}: {exc.strerror or exc}") from None
        with sink:
            result = http_get_url(args.url, method, body, headers, args.timeout, sink)
    else:
        result = http_get_url(args.url, method, body, headers, args.timeout, sys.stdout.buffer)
        sys.stdout.buffer.flush()
    if not result.ok:
        print(f"rawstack: {result.status} {result.reason}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
