"""rawstack.peers.registry: the one table of serve-all's peers, and ready-line parsing."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from rawstack.cli import serve_all as cli_serve_all
from rawstack.errors import UsageError
from rawstack.peers import registry as registry_module
from rawstack.peers import serve_all
from rawstack.peers.registry import (
    ALL_PEERS,
    BY_NAME,
    PEERS,
    parse_peers,
    ready_event,
    ready_port,
)


def test_the_names_and_their_order() -> None:
    assert ALL_PEERS == ("http", "udp", "chao", "icmp")
    assert [p.name for p in PEERS] == list(BY_NAME)
    assert (BY_NAME["http"].default_port, BY_NAME["udp"].default_port) == (8080, 8080)
    assert [p.name for p in PEERS if p.link] == ["chao"]


def test_every_user_takes_the_registry_s_tuple() -> None:
    assert serve_all.ALL_PEERS is ALL_PEERS
    assert cli_serve_all.ALL_PEERS is ALL_PEERS


def test_default_servers_follow_the_registry() -> None:
    names = [s.name for s in serve_all.default_servers("lo", peers=("icmp", "http"))]
    assert names == ["http", "icmp"]  # serving order, whatever order was asked


@pytest.mark.parametrize(
    ("text", "expected"),
    [(" icmp,http ", ("http", "icmp")), ("chao", ("chao",)), ("udp,udp", ("udp",))],
)
def test_parse_peers_in_serving_order(text: str, expected: tuple[str, ...]) -> None:
    assert parse_peers(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http,gopher", "bad --x 'http,gopher': gopher not in http,udp,chao,icmp"),
        (",", "bad --x ',': empty list not in http,udp,chao,icmp"),
    ],
)
def test_parse_peers_rejects_names_it_does_not_know(text: str, message: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_peers(text, "--x")
    assert str(info.value).startswith(message)
    assert info.value.exit_code == 2


def test_ready_event_and_port() -> None:
    line = b'{"event": "ready", "peer": "http", "addr": "0.0.0.0:8081"}'
    event = ready_event(line)
    assert event is not None
    assert ready_port(event) == 8081
    assert ready_port({"addr": "[::]:9"}) == 9
    assert ready_event(b'{"event": "stopped"}') is None
    assert ready_event(b"not json") is None
    assert ready_event(b"[1, 2]") is None
    with pytest.raises(ValueError, match="no host:port"):
        ready_port({"peer": "chao"})


def _tuples_naming_every_peer(tree: ast.Module) -> list[int]:
    """Lines of tuple/list literals that spell out all four peer names (a copied registry)."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List)):
            names = {e.value for e in node.elts if isinstance(e, ast.Constant)}
            if set(ALL_PEERS) <= names:
                lines.append(node.lineno)
    return lines


def test_peer_names_are_spelled_out_once() -> None:
    import rawstack_harness

    import rawstack

    roots = [Path(rawstack.__file__).parent, Path(rawstack_harness.__file__).parent]
    registry = Path(registry_module.__file__)
    found = {
        str(path): lines
        for root in roots
        for path in sorted(root.rglob("*.py"))
        if path != registry
        for lines in [_tuples_naming_every_peer(ast.parse(path.read_text(encoding="utf-8")))]
        if lines
    }
    assert found == {}
    assert _tuples_naming_every_peer(ast.parse('X = ("icmp", "chao", "udp", "http")')) == [1]


class _Fake:
    """A server that serves nothing: its ready fields, and the loop stopped soon after."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port

    def start(self, loop: Any) -> dict[str, Any]:
        loop.call_later(0.05, loop.stop)
        return {"addr": f"0.0.0.0:{self.port}"}

    def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {}


def test_serve_prints_every_ready_line_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    # One write: the harness reading them through a pipe is woken once, not per line.
    import io
    import sys

    from rawstack.peers.loop import Loop
    from rawstack.peers.serve_all import serve

    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    monkeypatch.setattr(sys, "stdout", Recorder())
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    loop = Loop()
    monkeypatch.setattr(loop, "install_signal_handlers", lambda: None)
    assert serve([_Fake("http", 8080), _Fake("udp", 9000)], loop) == 0
    ready = [w for w in writes if '"ready"' in w]
    assert len(ready) == 1
    events = [ready_event(line.encode()) for line in ready[0].splitlines()]
    assert [(e or {}).get("peer") for e in events] == ["http", "udp"]
    assert ready_port(events[1] or {}) == 9000
