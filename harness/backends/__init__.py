"""The one place that picks a topology backend for this OS: Linux namespaces or FreeBSD jails.

Theory of operation: the plugin, supervision, the clients and ``netns-harness`` never import
a backend module; they call :func:`select_backend` (by ``sys.platform``) and use the
:class:`~rawstack_harness.backends.base.Backend` it returns, whose
:class:`~rawstack_harness.backends.base.Capabilities` state what differs. The registry names
each backend's module; it is imported on first use (the Linux one needs pyroute2 only when
it builds, the FreeBSD one is never loaded on Linux).
"""

from __future__ import annotations

import importlib
import sys

from rawstack_harness.backends.base import (
    KERNEL,
    RAWSTACK,
    Backend,
    Capabilities,
    Kept,
    Network,
    Node,
    Peer,
    ReadyEvent,
    Run,
)
from rawstack_harness.errors import UnsupportedPlatform

__all__ = [
    "KERNEL",
    "RAWSTACK",
    "REGISTRY",
    "Backend",
    "Capabilities",
    "Kept",
    "Network",
    "Node",
    "Peer",
    "ReadyEvent",
    "Run",
    "select_backend",
    "unavailable_reason",
]

# sys.platform prefix -> the module whose ``BACKEND`` builds topologies there.
REGISTRY = {
    "linux": "rawstack_harness.backends.linux",
    "freebsd": "rawstack_harness.backends.freebsd",
}


def select_backend(platform: str | None = None) -> Backend:
    """The backend for ``platform`` (default ``sys.platform``), or :class:`UnsupportedPlatform`."""
    plat = sys.platform if platform is None else platform
    for prefix, module in REGISTRY.items():
        if plat.startswith(prefix):
            backend: Backend = importlib.import_module(module).BACKEND
            return backend
    raise UnsupportedPlatform(
        f"no topology backend for {plat}: the harness builds Linux network namespaces "
        "or FreeBSD VNET jails"
    )


def unavailable_reason(platform: str | None = None) -> str | None:
    """Why topologies cannot be built here (a skip reason), or None."""
    try:
        return select_backend(platform).missing_requirement()
    except UnsupportedPlatform as exc:
        return str(exc)
