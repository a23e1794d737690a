"""The ``rawstack`` command line.

Each subcommand lives in its own module under :mod:`rawstack.cli` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a
``run(args) -> int`` callable. Modules are imported here, in one list, so ``--help`` shows
every command and a reader finds a command's module from its name.

Start-up cost matters (the harness spawns ``rawstack serve-all`` for every test): a command
module imports its peers, engines and codecs inside ``run()``, never at the top, and when
the first argument names a command only that command's parser is built.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import sys
from collections.abc import Callable, Sequence

from rawstack import __version__
from rawstack.cli.stdout import quiet_on_closed_stdout
from rawstack.errors import EXIT_USAGE, RawstackError

# One module per subcommand group; the order is the order in ``--help``.
COMMAND_MODULES = (
    "rawstack.cli.craft",
    "rawstack.cli.http",
    "rawstack.cli.udp",
    "rawstack.cli.chao",
    "rawstack.cli.icmp",
    "rawstack.cli.ping",
    "rawstack.cli.syn_probe",
    "rawstack.cli.serve_all",
)

EPILOG = """\
exit status:
  0   success
  1   the exchange failed (no reply, loss, refused, server error)
  2   bad arguments or input
  77  missing privilege (CAP_NET_RAW or CAP_NET_ADMIN): run as root, e.g. with sudo
"""


def command_name(module: str) -> str:
    """``"rawstack.cli.serve_all"`` -> ``"serve-all"``: each module registers that command."""
    return module.rsplit(".", 1)[1].replace("_", "-")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with ``only`` (a command name) the parser of that command alone.

    A command's own parser, usage and errors do not depend on its siblings, so ``only`` parses
    that command's arguments exactly as the whole parser would.
    """
    parser = argparse.ArgumentParser(
        prog="rawstack",
        description="A raw-socket network stack: packet crafting, servers and clients "
        "for HTTP, UDP, CHAO (a link-layer protocol) and ICMP on bare sockets.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rawstack {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        if only is not None and command_name(name) != only:
            continue
        importlib.import_module(name).register(sub)
    return parser


# A process that runs main() many times (the harness's warm peer host forks one child per
# peer and builds each parser before forking) builds each parser once. parse_args does not
# change a parser, so sharing it between calls is safe.
_cached_parser = functools.lru_cache(maxsize=None)(build_parser)


def main(argv: Sequence[str] | None = None) -> int:
    return quiet_on_closed_stdout(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args_list = sys.argv[1:] if argv is None else list(argv)
    first = args_list[0] if args_list else None
    known = first in {command_name(m) for m in COMMAND_MODULES}
    parser = _cached_parser(first if known else None)
    args = parser.parse_args(args_list)
    return reported(lambda: int(args.func(args)))


def reported(run: Callable[[], int]) -> int:
    """``run()``'s status, or a failure's: one ``rawstack: error:`` line on stderr and its
    exit status (what every command does with the errors it raises)."""
    try:
        return run()
    except RawstackError as exc:
        print(f"rawstack: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:  # bad values found after argparse (addresses, hex, MACs)
        print(f"rawstack: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
