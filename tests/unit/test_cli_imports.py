"""Building the ``rawstack`` parser loads no peer, engine, codec or socket module.

Every command's start pays for the parser of all of them (rawstack.cli.COMMAND_MODULES), so
each module imports its heavy dependencies inside ``run()``. A command that needs a
constant for its help text keeps a copy; the copies are checked against the originals. The
peer registry (``rawstack.peers.registry``: names and default ports) is the one light module
under ``rawstack.peers``: it imports no peer, so the parser may read it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from rawstack.cli import COMMAND_MODULES, build_parser, command_name

LAZY = (
    "rawstack.peers",
    "rawstack.engines",
    "rawstack.codec",
    "rawstack.quirks",
    "rawstack.sockets",
)
# Light by design: the package's __init__ and the registry import no peer.
LIGHT = ("rawstack.peers", "rawstack.peers.registry")


def _modules_after(code: str) -> list[str]:
    """rawstack modules loaded by a fresh interpreter after running ``code``."""
    script = (
        f"import sys, json\n{code}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('rawstack'))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def _lazy(loaded: list[str]) -> list[str]:
    return [m for m in loaded if m.startswith(LAZY) and m not in LIGHT]


def test_building_the_parser_imports_no_heavy_module() -> None:
    loaded = _modules_after("from rawstack.cli import build_parser\nbuild_parser()")
    # Sanity: the parser really was built from the command modules.
    assert "rawstack.cli.serve_all" in loaded
    assert "rawstack.cli.craft" in loaded
    assert _lazy(loaded) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["serve-all", "--help"],
        ["http", "get", "--help"],
        ["chao", "send", "--help"],
        ["craft", "chao", "--help"],
    ],
)
def test_help_imports_no_heavy_module(argv: list[str]) -> None:
    code = f"from rawstack.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert _lazy(_modules_after(code)) == []


def test_a_command_loads_its_own_peer_and_not_the_others() -> None:
    # craft chao runs (prints a frame) and so loads the codecs, but no peer or engine.
    loaded = _modules_after(
        "from rawstack.cli import main\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['craft', 'chao', '--src-mac', '02:00:00:00:00:01', 'hi'])"
    )
    assert "rawstack.codec.chao" in loaded
    heavy = [m for m in loaded if m.startswith(("rawstack.peers", "rawstack.engines"))]
    assert [m for m in heavy if m not in LIGHT] == []


def test_copied_constants_match_their_sources() -> None:
    from rawstack.cli import craft, serve_all, udp
    from rawstack.codec.ethernet import BROADCAST_MAC, mac_to_str
    from rawstack.peers import serve_all as peers_serve_all
    from rawstack.peers import udp as peers_udp
    from rawstack.quirks import KNOWN_OS

    assert serve_all.ALL_PEERS is peers_serve_all.ALL_PEERS  # both the registry's
    assert udp.MAX_DATAGRAM == peers_udp.MAX_DATAGRAM
    assert craft.KNOWN_OS == KNOWN_OS
    assert mac_to_str(BROADCAST_MAC) == craft.BROADCAST


def test_chao_send_without_message_uses_the_peers_default() -> None:
    args = build_parser().parse_args(["chao", "send", "--iface", "eth0"])
    # The default is resolved in run_send (the peer's DEFAULT_MESSAGE), not at parse time.
    assert args.message is None
    assert args.func.__name__ == "run_send"


def _helps(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``prog -> help text`` for a parser and every sub-parser below it."""
    found = {parser.prog: parser.format_help()}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.update(_helps(sub))
    return found


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_one_command_parser_equals_that_part_of_the_whole(module: str) -> None:
    name = command_name(module)
    whole = {p: h for p, h in _helps(build_parser()).items() if p.split()[1:2] == [name]}
    alone = build_parser(name)
    assert whole, f"{module} registers no command named {name!r}"
    assert {p: h for p, h in _helps(alone).items() if p != "rawstack"} == whole
