"""The contract every server keeps, so one loop and one ready protocol serve them all."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from rawstack.peers.loop import Reactor


class Server(Protocol):
    """A server that can be started on a shared :class:`Loop`."""

    name: str  # "http", "udp", "chao", "icmp"

    def start(self, loop: Reactor) -> dict[str, Any]:
        """Open sockets, register with ``loop``; return the ready fields (``addr``, ``iface``...).

        Raises :class:`rawstack.errors.RawstackError` subclasses on failure (port in use,
        unknown interface, missing privilege), having closed whatever it opened.
        """
        ...

    def close(self) -> None:
        """Unregister and close every socket; idempotent."""
        ...

    def stats(self) -> dict[str, Any]:
        """Counters for ``/status`` and logs."""
        ...


def announce_ready(peer: str, **fields: Any) -> None:
    """Print the one JSON ready line on stdout (the harness waits for it) and flush."""
    announce_all([(peer, fields)])


def announce_all(ready: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
    """Print every ``(peer, fields)`` ready line in one write, then flush.

    One write, not one per line: whoever waits on the lines (the harness, through a pipe)
    is woken once, and serve-all's four lines cost one system call, not four.
    """
    lines = [
        json.dumps({"event": "ready", "peer": peer, **fields}, sort_keys=False) + "\n"
        for peer, fields in ready
    ]
    sys.stdout.write("".join(lines))
    sys.stdout.flush()


def log(peer: str, message: str) -> None:
    """Logs go to stderr, one line each, prefixed by the peer name."""
    sys.stderr.write(f"[{peer}] {message}\n")
    sys.stderr.flush()
