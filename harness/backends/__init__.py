"""The one place that picks a topology backend for this OS: Linux namespaces or FreeBSD jails.

Theory of operation: the plugin's fixtures, supervision and ``netns-harness`` never import a
backend module; they call :func:`select_backend` (by ``sys.platform``) and use the
:class:`Backend` it returns. Both backends hand out node handles with one surface
(:class:`NodeHandle`): addresses, MACs, interface names, ``run`` and ``popen`` inside the
node. Two things differ and are stated here rather than discovered by a failing test:

* ``socket()``: a Linux node opens sockets in its namespace from the test process (setns);
  a FreeBSD jail has no setns, so there it raises :class:`Unsupported`
  (``node_sockets`` is False) and supervision probes run inside the jail instead.
* the ICMP peer: on Linux the kernel's echo is turned off and rawstack's responder answers;
  the BSD kernels consume echo requests before any raw socket sees them, so on FreeBSD the
  kernel's echo *is* the peer (``icmp_responder == "kernel"``) and serve-all runs without
  its ICMP responder.

Backend modules are imported lazily: ``rawstack_harness.backends.linux`` needs pyroute2, which is
not installed on FreeBSD.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rawstack.errors import UsageError

if TYPE_CHECKING:
    from rawstack_harness.topology.spec import Topology

ALL_PEERS = ("http", "udp", "chao", "icmp")
RAWSTACK = "rawstack"
KERNEL = "kernel"


# Not HarnessError subclasses: rawstack_harness.runstate imports this package (for nsutil), so
# importing runstate from here would be a cycle.
class UnsupportedPlatform(UsageError):
    """No topology backend exists for this OS (exit 2: the command cannot be used here)."""


class Unsupported(NotImplementedError):
    """This backend cannot do what was asked (e.g. ``socket()`` in a FreeBSD jail)."""


class NodeHandle(Protocol):
    """What tests, supervision and clients use of a node, on every backend."""

    @property
    def name(self) -> str: ...

    @property
    def netns(self) -> str:
        """A machine-unique name: the namespace (Linux) or the jail (FreeBSD)."""
        ...

    @property
    def net(self) -> Any: ...

    def ifnames(self) -> list[str]: ...

    def addresses(self, ifname: str | None = None, version: int | None = None) -> list[str]: ...

    def addr(self, version: int = 4, ifname: str | None = None) -> str: ...

    def mac(self, ifname: str = "eth0") -> str: ...

    def sysctl(self, key: str, value: str | None = None) -> str: ...

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket: ...

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]: ...

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]: ...

    def stop_processes(self, timeout: float = 3.0) -> None: ...


class NetworkHandle(Protocol):
    """A built topology: ``net["a"]`` is a node; ``peers`` maps node -> serve-all process."""

    peers: dict[str, Any]

    @property
    def topology(self) -> Topology: ...

    @property
    def run(self) -> Any: ...

    def __getitem__(self, name: str) -> NodeHandle: ...

    def describe(self) -> dict[str, Any]: ...

    def destroy(self) -> None: ...


class Backend:
    """One OS's way of building topologies; see the module docstring for what differs."""

    name = ""
    description = ""
    icmp_responder = RAWSTACK
    node_sockets = True
    supports_keep = True

    @property
    def default_root(self) -> str:
        """Where runs keep their state unless told (``RAWSTACK_HARNESS_RUN_DIR``)."""
        raise NotImplementedError

    def missing_requirement(self) -> str | None:
        """None when topologies can be built here, else what is missing."""
        raise NotImplementedError

    def open_run(self, root: str, label: str) -> Any:
        """This process's run (state directory, lock) under ``root``."""
        raise NotImplementedError

    def build(self, topology: Topology, run: Any) -> NetworkHandle:
        """Build ``topology`` in ``run``; on failure nothing is left."""
        raise NotImplementedError

    def reap_dead_runs(self, root: str) -> list[str]:
        """Remove what runs whose owner died left behind; return their ids."""
        raise NotImplementedError

    def probe_peer(
        self,
        peer: str,
        *,
        src: NodeHandle,
        src_ifname: str,
        dst: NodeHandle,
        dst_ifname: str,
        ready: dict[str, dict[str, Any]],
    ) -> float:
        """One independent exchange with ``dst``'s ``peer`` from ``src``; RTT in seconds."""
        return self._prober()(
            peer, src=src, src_ifname=src_ifname, dst=dst, dst_ifname=dst_ifname, ready=ready
        )

    def _prober(self) -> Callable[..., float]:
        """The backend's ``probe_peer`` function (its module imported only now)."""
        raise NotImplementedError

    def enter_hint(self, node: str, info: dict[str, Any]) -> str:
        """How a shell enters a node of a kept topology (``info``: ``describe()``'s entry)."""
        raise NotImplementedError

    def servers(self, peers: Sequence[str]) -> dict[str, str]:
        """Who answers each peer: ``"rawstack"`` (serve-all) or ``"kernel"``."""
        kernel = {"icmp"} if self.icmp_responder == KERNEL else set()
        return {p: KERNEL if p in kernel else RAWSTACK for p in peers}

    def serve_all_peers(self) -> tuple[str, ...] | None:
        """``serve-all --peers``: None runs all four (the default); else only those."""
        if self.icmp_responder == KERNEL:
            return tuple(p for p in ALL_PEERS if p != "icmp")
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


class LinuxBackend(Backend):
    name = "linux"
    description = "network namespaces joined by veth pairs (netlink)"

    @property
    def default_root(self) -> str:
        from rawstack_harness.runstate import DEFAULT_ROOT

        return DEFAULT_ROOT

    def missing_requirement(self) -> str | None:
        from rawstack_harness import env

        return env.missing_requirement()

    def open_run(self, root: str, label: str) -> Any:
        from rawstack_harness.runstate import Run

        return Run(root, label=label)

    def build(self, topology: Topology, run: Any) -> NetworkHandle:
        from rawstack_harness.backends.linux import build

        return build(topology, run)

    def reap_dead_runs(self, root: str) -> list[str]:
        from rawstack_harness.runstate import global_cleanup, reap_dead_runs

        reaped = reap_dead_runs(root)
        global_cleanup(root)
        return reaped

    def _prober(self) -> Callable[..., float]:
        from rawstack_harness.probes import probe_peer

        return probe_peer

    def enter_hint(self, node: str, info: dict[str, Any]) -> str:
        return f"nsenter --net={info['path']}"


class FreeBSDBackend(Backend):
    name = "freebsd"
    description = "VNET jails joined by epair interfaces (jail(8), ifconfig(8))"
    icmp_responder = KERNEL
    node_sockets = False
    supports_keep = False

    @property
    def default_root(self) -> str:
        from rawstack_harness.backends.freebsd import DEFAULT_ROOT

        return DEFAULT_ROOT

    def missing_requirement(self) -> str | None:
        from rawstack_harness.backends import freebsd

        return freebsd.unavailable_reason()

    def open_run(self, root: str, label: str) -> Any:
        from rawstack_harness.backends.freebsd import FreeBSDRun

        return FreeBSDRun(root, label=label)

    def build(self, topology: Topology, run: Any) -> NetworkHandle:
        from rawstack_harness.backends.freebsd import build

        return build(topology, run)

    def reap_dead_runs(self, root: str) -> list[str]:
        from rawstack_harness.backends.freebsd import clean_dead_runs

        return clean_dead_runs(root)

    def _prober(self) -> Callable[..., float]:
        from rawstack_harness.backends.freebsd import probe_peer

        return probe_peer

    def enter_hint(self, node: str, info: dict[str, Any]) -> str:
        return f"jexec {info['jail']}"


LINUX = LinuxBackend()
FREEBSD = FreeBSDBackend()


def select_backend(platform: str | None = None) -> Backend:
    """The backend for ``platform`` (default ``sys.platform``), or :class:`UnsupportedPlatform`."""
    plat = sys.platform if platform is None else platform
    if plat.startswith("linux"):
        return LINUX
    if plat.startswith("freebsd"):
        return FREEBSD
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
