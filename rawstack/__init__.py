"""rawstack: a raw-socket network stack in Python.

Layers, bottom up (each in its own package):

- ``rawstack.codec``: pure sans-IO packet codecs (no ``socket`` import).
- ``rawstack.quirks``: how each kernel's raw IPv4 socket format differs from the wire.
- ``rawstack.sockets``: the one thin layer that opens and configures sockets.
- ``rawstack.engines``: sans-IO protocol engines (HTTP, ping, CHAO): bytes in, events out.
- ``rawstack.peers``: servers and clients that drive the engines over sockets.
- ``rawstack.cli``: the ``rawstack`` command line.
"""

__version__ = "0.1.0"
