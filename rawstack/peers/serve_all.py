"""Run servers on one loop until SIGTERM/SIGINT: ``serve-all`` and every ``... serve``.

All servers are started before any ready line is printed, so a ready line means the whole
process is serving; if one fails to start, the ones already started are closed and its
error propagates (the CLI prints it as one line).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Optional

from rawstack.peers.base import Server, announce_ready, log
from rawstack.peers.loop import Loop


def serve(servers: Sequence[Server], loop: Optional[Loop] = None) -> int:
    """Start ``servers``, print their ready lines, run until a signal; return 0."""
    loop = loop or Loop()
    started: list[Server] = []
    try:
        loop.install_signal_handlers()
        ready = []
        for server in servers:
            fields = server.start(loop)
            started.append(server)
            ready.append((server.name, fields))
        for name, fields in ready:
            announce_ready(name, **fields)
        loop.run()
    finally:
        for server in reversed(started):
            try:
                server.close()
            finally:
                log(server.name, "stopped " + json.dumps(server.stats(), sort_keys=True))
        loop.close()
    return 0


def default_servers(
    iface: str,
    http_port: int = 8080,
    udp_port: int = 8080,
    bind: str = "0.0.0.0",
) -> list[Server]:
    """The four peers the harness runs on each side: HTTP, UDP echo, CHAO and ICMP."""
    from rawstack.peers.chao import ChaoServer
    from rawstack.peers.http_server import HttpServer
    from rawstack.peers.icmp import IcmpResponder
    from rawstack.peers.udp import UdpEchoServer

    return [
        HttpServer(bind, http_port),
        UdpEchoServer(bind, udp_port),
        ChaoServer(iface),
        IcmpResponder(iface),
    ]
