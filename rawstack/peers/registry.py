"""The one table of the peers ``serve-all`` runs: names, serving order, ports, ready lines.

Theory of operation: everything that names a peer (``serve-all --peers``, the harness's
``--netns-peers``, its probes and clients) takes the name from :data:`PEERS`, so adding a
peer is one row here plus its server. A serving peer announces itself with one JSON ready
line on stdout (``{"event": "ready", "peer": "http", "addr": "0.0.0.0:8080"}``, written by
:func:`rawstack.peers.base.announce_ready`); :func:`ready_event` reads one back and
:func:`ready_port` takes the port out of its ``addr``. This module imports no peer, so the
CLI's parser and the pytest plugin can load it for free.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from rawstack.errors import UsageError

READY = "ready"  # the ``event`` of a ready line


@dataclass(frozen=True)
class PeerInfo:
    """One peer: its name, the port it listens on unless told (None: it has no port), and
    whether it speaks raw link-layer frames (a client then needs its MAC and an interface)."""

    name: str
    default_port: int | None
    what: str
    link: bool = False


# Serving order: serve-all starts, announces and reports them in this order.
PEERS = (
    PeerInfo("http", 8080, "HTTP/1.1 server (TCP)"),
    PeerInfo("udp", 8080, "UDP echo server"),
    PeerInfo("chao", None, "CHAO responder (raw Ethernet frames, EtherType 0x88B5)", link=True),
    PeerInfo("icmp", None, "ICMP echo responder (raw socket)"),
)
ALL_PEERS = tuple(p.name for p in PEERS)
BY_NAME = {p.name: p for p in PEERS}


def parse_peers(text: str, option: str = "--peers") -> tuple[str, ...]:
    """``"icmp,http"`` -> ``("http", "icmp")``, in serving order; else a UsageError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown or not names:
        raise UsageError(
            f"bad {option} {text!r}: {', '.join(unknown) or 'empty list'} not in "
            f"{','.join(ALL_PEERS)} (comma-separated)"
        )
    return tuple(p for p in ALL_PEERS if p in names)


def ready_event(line: bytes | str) -> dict[str, object] | None:
    """The ready event a line holds, or None if the line is anything else."""
    try:
        msg = json.loads(line)
    except ValueError:
        return None
    return msg if isinstance(msg, dict) and msg.get("event") == READY else None


def ready_port(event: Mapping[str, object]) -> int:
    """The port in a ready event's ``addr`` (``"0.0.0.0:8080"``, ``"[::]:8080"``)."""
    addr = event.get("addr")
    if not isinstance(addr, str) or ":" not in addr:
        raise ValueError(f"ready line {dict(event)!r} has no host:port addr")
    return int(addr.rsplit(":", 1)[1])
