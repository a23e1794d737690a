"""The typed interface between the harness and its backends: Backend, Run, Network, Node.

Theory of operation: the plugin, supervision, the clients and ``netns-harness`` know a
backend only through these Protocols; each backend package (``backends/linux/``,
``backends/freebsd/``) implements them and nothing outside ``backends/`` imports one.
What differs between backends is stated as data, in :class:`Capabilities`, never found out
by asking a backend its name:

* ``node_sockets``: a Linux node opens sockets in its namespace from the test process
  (setns); a FreeBSD jail has no setns, so there ``Node.socket`` raises ``Unsupported``
  (with ``no_node_sockets`` as its message) and probes run inside the jail instead.
* ``icmp_responder``: on Linux the kernel's echo is turned off and rawstack's responder
  answers; the BSD kernels consume echo requests before any raw socket sees them, so on
  FreeBSD the kernel's echo *is* the peer and serve-all runs without its ICMP responder.
* ``keep``: whether a built topology can outlive its run (``--netns-keep-failed``,
  ``netns-harness up``); that needs a keeper process, which only the Linux backend has.

Users of the fixtures see :class:`Network` and :class:`Node` (``def test_x(netns_pair:
Network)``); both backends' handles satisfy them, and mypy checks that where each backend
returns them.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, Protocol, Union, overload, runtime_checkable

from rawstack.peers.registry import ALL_PEERS

if TYPE_CHECKING:
    from rawstack_harness.topology.spec import Topology

RAWSTACK = "rawstack"  # the peer is served by rawstack serve-all
KERNEL = "kernel"  # the peer is the kernel's own (FreeBSD's ICMP echo)

# What subprocess takes for stdin/stdout/stderr: a file descriptor, a file, PIPE/DEVNULL.
ProcFile = Union[int, IO[bytes], IO[str], None]
# A process a node started (text or binary pipes).
NodeProcess = Union["subprocess.Popen[str]", "subprocess.Popen[bytes]"]


@runtime_checkable
class GroupSignalled(Protocol):
    """A process handle that is not a process group of its own (a shared-peers tenant):
    ``signal_group`` is what ``os.killpg(proc.pid, sig)`` would be for one that is."""

    def signal_group(self, sig: int) -> None: ...


def signal_group(proc: NodeProcess, sig: int) -> None:
    """``sig`` to ``proc``'s process group (a shared-peers tenant: to the tenant alone)."""
    if isinstance(proc, GroupSignalled):
        proc.signal_group(sig)
    else:
        os.killpg(proc.pid, sig)


def readable(fd: int | socket.socket, timeout: float | None) -> bool:
    """Whether ``fd`` (a descriptor or a socket) is readable, or at EOF, within
    ``timeout`` seconds (None: no limit): poll, not select, so any descriptor number works
    (a run that holds over 1,024, a large topology's, still reads its pipes and sockets)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


# A serve-all ready line, decoded (JSON: its values are whatever the peer announced).
ReadyEvent = Mapping[str, object]


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, stated once (see the module docstring)."""

    icmp_responder: str = RAWSTACK
    node_sockets: bool = True
    no_node_sockets: str = ""  # why not, when ``node_sockets`` is False
    keep: bool = True
    no_keep: str = ""  # why not, when ``keep`` is False

    def servers(self, peers: Sequence[str]) -> dict[str, str]:
        """Who answers each peer: :data:`RAWSTACK` (serve-all) or :data:`KERNEL`."""
        return {
            p: KERNEL if p == "icmp" and self.icmp_responder == KERNEL else RAWSTACK for p in peers
        }

    def serve_all_peers(self) -> tuple[str, ...] | None:
        """``serve-all --peers``: None runs every peer of the registry (its default)."""
        if self.icmp_responder == KERNEL:
            return tuple(p for p in ALL_PEERS if p != "icmp")
        return None


@dataclass(frozen=True)
class Kept:
    """A topology handed to a keeper: its name and how a shell enters its nodes."""

    name: str
    enter: str


class Peer(Protocol):
    """A supervised ``serve-all`` in one node, as ``Network.peers`` holds it."""

    @property
    def ready(self) -> Mapping[str, ReadyEvent]:
        """Peer name -> its ready line."""
        ...

    @property
    def servers(self) -> Mapping[str, str]:
        """Peer name -> who answers it (:data:`RAWSTACK` or :data:`KERNEL`)."""
        ...

    def port(self, peer: str) -> int: ...

    def died(self) -> bool: ...

    def death_message(self) -> str: ...

    def logs(self, since: Mapping[str, int] | None = None) -> str:
        """Its stdout and stderr; with ``since`` (from :meth:`log_marks`), only what came after."""
        ...

    def log_marks(self) -> dict[str, int]:
        """Where its logs end now (file -> size), for :meth:`logs`'s ``since``."""
        ...


class Run(Protocol):
    """One process's run: a locked state directory that outlives nothing it made."""

    @property
    def id(self) -> str: ...

    @property
    def root(self) -> str: ...

    @property
    def dir(self) -> Path: ...

    def close(self) -> None: ...


class ProbeNode(Protocol):
    """The part of a node a supervision probe uses (either end of it), on every backend."""

    @property
    def name(self) -> str: ...

    def addr(self, version: int = 4, ifname: str | None = None) -> str: ...

    def mac(self, ifname: str = "eth0") -> str: ...

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket: ...

    def run(
        self,
        argv: Sequence[str],
        *,
        text: Literal[True],
        capture_output: bool = ...,
        timeout: float | None = ...,
    ) -> subprocess.CompletedProcess[str]: ...


class Node(Protocol):
    """What tests, supervision and clients use of a node, on every backend."""

    @property
    def name(self) -> str: ...

    @property
    def netns(self) -> str:
        """A machine-unique name: the namespace (Linux) or the jail (FreeBSD)."""
        ...

    @property
    def peers(self) -> dict[str, str]:
        """Who answers each peer here: ``"rawstack"`` (serve-all) or ``"kernel"``."""
        ...

    @property
    def net(self) -> Network: ...

    def ifnames(self) -> list[str]: ...

    def addresses(self, ifname: str | None = None, version: int | None = None) -> list[str]: ...

    def addr(self, version: int = 4, ifname: str | None = None) -> str: ...

    def mac(self, ifname: str = "eth0") -> str: ...

    def sysctl(self, key: str, value: str | None = None) -> str: ...

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket: ...

    @overload
    def run(
        self,
        argv: Sequence[str],
        *,
        text: Literal[True],
        capture_output: bool = ...,
        input: str | None = ...,
        timeout: float | None = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.CompletedProcess[str]: ...

    @overload
    def run(
        self,
        argv: Sequence[str],
        *,
        text: Literal[False] = ...,
        capture_output: bool = ...,
        input: bytes | None = ...,
        timeout: float | None = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.CompletedProcess[bytes]: ...

    @overload
    def popen(
        self,
        argv: Sequence[str],
        *,
        text: Literal[True],
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.Popen[str]: ...

    @overload
    def popen(
        self,
        argv: Sequence[str],
        *,
        text: Literal[False] = ...,
        env: Mapping[str, str] | None = ...,
        cwd: str | os.PathLike[str] | None = ...,
        stdin: ProcFile = ...,
        stdout: ProcFile = ...,
        stderr: ProcFile = ...,
    ) -> subprocess.Popen[bytes]: ...

    def stop_process(self, proc: NodeProcess, timeout: float = 3.0) -> int | None:
        """SIGTERM one process :meth:`popen` started (its group), SIGKILL after ``timeout``."""
        ...

    def stop_processes(self, timeout: float = 3.0) -> None:
        """:meth:`stop_process` for every process :meth:`popen` started in this node."""
        ...


class Network(Protocol):
    """A built topology: ``net["a"]`` is a node; ``peers`` maps node -> its serve-all."""

    peers: dict[str, Peer]

    @property
    def topology(self) -> Topology: ...

    def __getitem__(self, name: str) -> Node: ...

    def describe(self) -> dict[str, object]:
        """Nodes and their addresses as JSON data (what ``status --json`` shows)."""
        ...

    def destroy(self) -> None: ...

    def set_link(self, a: str, b: str | None = None, *, up: bool) -> None:
        """Take the link ``a``-``b`` (``node`` or ``node:ifname``) down, both ends, or up."""
        ...

    def impair(self, a: str, b: str | None = None, impair: object = None) -> str:
        """Change (``None``: clear) the link's impairment; return how it is served."""
        ...

    def set_member(self, segment: str, node: str, *, up: bool) -> None:
        """Take a segment member's interface down or up."""
        ...

    def mechanisms(self) -> list[str]:
        """One line per impaired link and segment: which mechanism serves it."""
        ...


class Backend(Protocol):
    """One OS's way of building topologies; :class:`Capabilities` says what differs."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def default_root(self) -> str:
        """Where runs keep their state unless told (``RAWSTACK_HARNESS_RUN_DIR``)."""
        ...

    def change_kept(self, name: str, root: str, what: str, args: list[str]) -> str:
        """A link event on kept topology ``name``: ``link``, ``impair`` or ``member``."""
        ...

    def impairment(self) -> str:
        """How this machine serves link impairment (for the report header)."""
        ...

    def missing_requirement(self) -> str | None:
        """None when topologies can be built here, else what is missing."""
        ...

    def will_enter(self, mode: str) -> bool:
        """Whether :meth:`enter_mode` would move this process into namespaces of its own
        (it forks: the process the user started only waits, with the original stdout)."""
        ...

    def enter_mode(self, mode: str) -> str:
        """Enter ``mode`` (``auto|root|rootless``) while still single-threaded; return the
        mode in use. A refusal is reported by :meth:`missing_requirement`, not raised."""
        ...

    def exec_in(self, name: str, node: str, argv: Sequence[str], root: str) -> int:
        """Run ``argv`` in node ``node`` of the kept topology ``name``; its exit status."""
        ...

    def open_run(self, root: str, label: str, *, fork: bool = True) -> Run:
        """This process's run (state directory, lock) under ``root``. ``fork``: rawstack's
        commands in its nodes fork from a warm host where the backend has one (Linux);
        False, or elsewhere, a fresh interpreter each."""
        ...

    def build(self, topology: Topology, run: Run) -> Network:
        """Build ``topology`` in ``run`` (one :meth:`open_run` gave); on failure nothing is left."""
        ...

    def reap_dead_runs(self, root: str) -> list[str]:
        """Remove what runs whose owner died left behind; return their ids."""
        ...

    def describe_runs(self, root: str) -> list[dict[str, Any]]:
        """Every run under ``root`` for ``status``: run, label, pid, alive, name, its nodes."""
        ...

    def keep(self, net: Network, name: str) -> Kept:
        """Hand a built network to a keeper (its peers stop); ``Unsupported`` without ``keep``."""
        ...

    def keep_spec(self, name: str, topology: Topology, root: str) -> dict[str, Any]:
        """Build ``topology`` in a new keeper ``name``: ``{"run": id, "topology": describe()}``."""
        ...

    def unkeep(self, name: str, root: str) -> bool:
        """Stop the keeper named ``name`` (its topology goes); False if there is none."""
        ...

    def probe_peers(
        self,
        peers: Sequence[str],
        *,
        src: ProbeNode,
        src_ifname: str,
        dst: ProbeNode,
        dst_ifname: str,
        ready: Mapping[str, ReadyEvent],
        on_failure: Callable[[str, BaseException], None],
    ) -> dict[str, float]:
        """Independent exchanges with each of ``dst``'s ``peers`` from ``src``: peer -> RTT.

        Until every peer answered once; after each failed attempt ``on_failure(peer,
        error)`` returns (try again) or raises (give up: the exception propagates).
        """
        ...

    def enter_hint(self, node: str, info: Mapping[str, Any]) -> str:
        """How a shell enters a node of a kept topology (``info``: ``describe()``'s entry)."""
        ...
