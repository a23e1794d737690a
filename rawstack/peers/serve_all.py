"""Run servers on one loop until SIGTERM/SIGINT: ``serve-all`` and every ``... serve``.

All servers are started before any ready line is printed, so a ready line means the whole
process is serving; if one fails to start, the ones already started are closed and its
error propagates (the CLI prints it as one line).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from rawstack.peers.base import Server, announce_all, log
from rawstack.peers.loop import Loop
from rawstack.peers.registry import ALL_PEERS, BY_NAME, parse_peers

__all__ = ["ALL_PEERS", "default_servers", "parse_peers", "serve"]


def serve(servers: Sequence[Server], loop: Loop | None = None) -> int:
    """Start ``servers``, print their ready lines, run until a signal; return 0."""
    loop = loop or Loop()
    started: list[Server] = []
    serving = False
    try:
        loop.install_signal_handlers()
        ready = []
        for server in servers:
            fields = server.start(loop)
            started.append(server)
            ready.append((server.name, fields))
        serving = True

        def announce() -> None:
            announce_all(ready)

        # Announce from inside run(): Loop.run() sets its running flag on entry, so a
        # SIGTERM sent the instant the ready line is read must not arrive before that.
        loop.call_later(0, announce)
        loop.run()
    finally:
        for server in reversed(started):
            try:
                server.close()
            finally:
                # A failed start is reported as one error line; stats only after serving.
                if serving:
                    log(server.name, "stopped " + json.dumps(server.stats(), sort_keys=True))
        loop.close()
    return 0


def default_servers(
    iface: str,
    http_port: int | None = None,
    udp_port: int | None = None,
    bind: str = "::",
    peers: Sequence[str] = ALL_PEERS,
) -> list[Server]:
    """The peers the harness runs on each side: HTTP, UDP echo, CHAO and ICMP (or a subset)."""
    from rawstack.peers.chao import ChaoServer
    from rawstack.peers.http_server import HttpServer
    from rawstack.peers.icmp import IcmpResponder
    from rawstack.peers.udp import UdpEchoServer

    http_port = BY_NAME["http"].default_port if http_port is None else http_port
    udp_port = BY_NAME["udp"].default_port if udp_port is None else udp_port
    assert http_port is not None
    assert udp_port is not None
    # One constructor per registry row (rawstack.peers.registry names them and their order).
    makers: dict[str, Callable[[], Server]] = {
        "http": lambda: HttpServer(bind, http_port),
        "udp": lambda: UdpEchoServer(bind, udp_port),
        "chao": lambda: ChaoServer(iface),
        "icmp": lambda: IcmpResponder(iface),
    }
    return [makers[name]() for name in ALL_PEERS if name in peers]
