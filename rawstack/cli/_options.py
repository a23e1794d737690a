"""What the command modules share: argument validators, ``--json`` and its output, serving.

Building the parser imports this module, so it imports no peer, engine, codec or socket
module at the top (tests/unit/test_cli_imports.py); :func:`serve_one` loads them when run.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Callable

from rawstack.errors import EXIT_OK

if TYPE_CHECKING:
    from rawstack.peers.base import Server


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An ``int`` argument type that rejects values below ``low``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}: {text}")
        return value

    return parse


def add_family_flags(parser: argparse.ArgumentParser) -> None:
    """``-4``/``-6`` as iputils has them: ``args.family`` is 4, 6 or None (what HOST gives)."""
    version = parser.add_mutually_exclusive_group()
    version.add_argument(
        "-4", dest="family", action="store_const", const=4, help="IPv4 only (resolve HOST so)"
    )
    version.add_argument(
        "-6", dest="family", action="store_const", const=6, help="IPv6 only (resolve HOST so)"
    )


def add_json_flag(parser: argparse.ArgumentParser, help: str = "print one JSON object") -> None:
    parser.add_argument("--json", action="store_true", help=help)


def print_json(value: Any) -> None:
    """``value`` as one JSON line on stdout, flushed."""
    print(json.dumps(value), flush=True)


def say(args: argparse.Namespace, line: str) -> None:
    """Print a progress line unless ``--json`` asked for the one object instead."""
    if not args.json:
        print(line, flush=True)


def serve_one(server: Server, doing: str) -> int:
    """Run one server until SIGTERM/SIGINT: ready line, ``{doing} ADDR`` and stats logs."""
    from rawstack.peers.base import announce_ready, log
    from rawstack.peers.loop import Loop

    loop = Loop()
    try:
        # Handlers first: a SIGTERM right after the ready line must still exit 0.
        loop.install_signal_handlers()
        fields = server.start(loop)
        announce_ready(server.name, **fields)
        log(server.name, f"{doing} {fields['addr']}")
        # A server that can serve alone without the selector does (UDP echo: two system
        # calls per datagram); it stops on the same signals.
        run_alone = getattr(server, "run_alone", None)
        if run_alone is not None:
            run_alone(loop)
        else:
            loop.run()
        log(server.name, f"stopping: {json.dumps(server.stats(), sort_keys=True)}")
    finally:
        server.close()
        loop.close()
    return EXIT_OK
