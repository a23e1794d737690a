"""The Linux backend: network namespaces and veth pairs over netlink (pyroute2), no ``ip``.

Theory of operation: each node's namespace is one the run's pool made ahead, while the
last test ran (:mod:`~rawstack_harness.backends.linux.nspool`); when the pool has none
left, the calling thread makes it the same way (``unshare``, node sysctls, a
``NETLINK_ROUTE`` socket there, then ``setns`` back: :func:`~.nsutil.briefly`), so no
namespace costs more than its own syscalls. Either is then bind-mounted on
``/run/netns/<name>``. The links, addresses and routes are then one
:class:`~rawstack_harness.backends.linux.rtnl.Batch` per node, sent in node order: a link
between two nodes is created by the earlier one with its peer placed straight into the
later one's namespace (``IFLA_NET_NS_FD``), so no interface ever appears in the root
namespace and names need not be unique machine-wide. Interface indexes are chosen here, so
no batch waits on a lookup. Teardown unmounts the namespaces (the kernel then deletes them
and their veths) after one scan of /proc for stray processes. Every namespace is written to
the run's manifest before it has its name (see :mod:`rawstack_harness.backends.linux.runs`);
a pooled one is anonymous until then, held only by the pool's descriptor.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from rawstack_harness.backends.base import NodeProcess, Peer
from rawstack_harness.backends.common import STOP_TIMEOUT, ProcessNode, SpecNode
from rawstack_harness.backends.linux import fabric, names, nspool, nsutil, rtnl
from rawstack_harness.backends.linux.fabric import Fabric
from rawstack_harness.backends.linux.forked import ForkedProcess
from rawstack_harness.backends.linux.nspool import NamespacePool
from rawstack_harness.backends.linux.peerhost import ENV_PREFIX
from rawstack_harness.backends.linux.runs import NETNS_DIR, LinuxRun, remove_namespaces
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology.spec import Topology, validate

LINK_READY_TIMEOUT = 0.5  # seconds build() waits for the kernel to report links up


def _next_index() -> int:
    # Kernels with tunnel modules loaded put fallback devices (sit0, ...) in every new
    # namespace: our indexes start after whatever is there (the calling thread's).
    return max(i for i, _ in socket.if_nameindex()) + 1


def _create_namespaces(nodes: Sequence[LinuxNode], pool: NamespacePool | None) -> None:
    """Give each node a namespace the pool made ahead, or one made now from the calling
    thread when the pool has none left, and name it (see the module docstring)."""
    fresh = pool.take(len(nodes)) if pool is not None else []
    for node, item in zip(nodes, fresh):
        node.fd, node.nl = item.fd, item.nl  # the node's from here on: it closes them
    for node in nodes:
        if node.fd < 0:
            item = nspool.make_fresh()
            node.fd, node.nl = item.fd, item.nl
        os.close(os.open(node.path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
        nsutil.bind_mount(f"/proc/self/fd/{node.fd}", node.path)
        # Looked up now, not when the pool made it: a module loaded since may have added
        # its fallback device to every namespace.
        node.next_index = nsutil.briefly(functools.partial(nsutil.setns, node.fd), _next_index)


def stop_processes(nodes: Iterable[LinuxNode], timeout: float = STOP_TIMEOUT) -> set[int]:
    """Stop what every node started: one SIGTERM round for all, then each as it ends.

    Forked peers are recycled or SIGKILLed instead and not waited for (see
    :meth:`LinuxNode.kill_forked`): their namespaces go next, so nothing a graceful exit
    does matters, and the kernel finishes a killed one's exit on its own (a packet socket's
    close waits for an RCU grace period, 5-15 ms). The peer host reaps them and strikes them
    off the manifest. ``stop_process`` still stops one gracefully. Returns the recycled
    peers' pids: they leave their namespaces on their own, and must not be killed there.
    """
    nodes = list(nodes)
    recycled: set[int] = set()
    for node in nodes:
        recycled.update(node.kill_forked())
        node.signal_processes(signal.SIGTERM)
    for node in nodes:
        node.stop_processes(timeout)
    return recycled


class LinuxNode(SpecNode, ProcessNode):
    """One node: its namespace, netlink socket and ways to run things inside it."""

    def __init__(self, net: LinuxNetwork, name: str, netns: str) -> None:
        self.net = net
        self.name = name
        self.netns = netns
        self.path = os.path.join(NETNS_DIR, netns)
        self.fd = -1
        self.nl: socket.socket | None = None
        # One request/reply at a time on ``nl``: supervision probes nodes from several
        # threads, and a reader could otherwise swallow another thread's reply.
        self._nl_lock = threading.Lock()
        self.next_index = 2
        self._ipr: Any = None
        self._ipr_sock: socket.socket | None = None
        self.procs: list[NodeProcess] = []

    @property
    def hosts(self) -> str | None:
        """Its ``/etc/netns/<netns>/hosts`` (see names.py): every node's is written on first
        use (a process started in a node, ``describe``, a kept topology), not at build."""
        return self.net.hosts_file(self.netns)

    def _topology(self) -> Topology:
        return self.net.topology

    @property
    def ipr(self) -> Any:
        """A pyroute2 ``IPRoute`` inside the node, for what the helpers here do not cover."""
        if self._ipr is None:
            from pyroute2 import IPRoute

            # pyroute2 >= 0.9 accepts only a SOCK_DGRAM netlink socket here (the kernel
            # treats SOCK_RAW and SOCK_DGRAM alike for netlink); opened in the node's
            # namespace, the socket stays there whichever thread uses it.
            sock = nsutil.in_netns(
                self.fd, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
            )
            try:
                self._ipr = IPRoute(use_socket=sock)
            except BaseException:
                sock.close()
                raise
            self._ipr_sock = sock
        return self._ipr

    def alloc_index(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    # -- access from tests --------------------------------------------------------------
    def mac(self, ifname: str = "eth0") -> str:
        """The interface's MAC address as the kernel reports it."""
        return self._index_and_mac(ifname)[1]

    def ifindex(self, ifname: str) -> int:
        """The interface's index in the node's namespace."""
        return self._index_and_mac(ifname)[0]

    def _index_and_mac(self, ifname: str) -> tuple[int, str]:
        with self._nl_lock:
            found = rtnl.link_index_and_mac(self.netlink(), ifname)
        if found is None:
            raise LookupError(f"node {self.name} has no interface {ifname!r}")
        return found

    def netlink(self) -> socket.socket:
        """The node's ``NETLINK_ROUTE`` socket (for
        :mod:`rawstack_harness.backends.linux.rtnl`)."""
        if self.nl is None:
            raise HarnessError(f"node {self.name} is not built (or already removed)")
        return self.nl

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        """A socket opened inside this node's namespace, usable from the test process."""
        return nsutil.socket_in(self.fd, family, type, proto)

    def sysctl(self, key: str, value: str | None = None) -> str:
        """Read (and with ``value``, first write) a ``net.*`` sysctl inside the node."""
        path = "/proc/sys/" + key.replace(".", "/")

        def inside() -> str:
            if value is not None:
                nsutil.write_sysctls([(key, value)])
            with open(path, encoding="ascii") as fh:
                return fh.read().strip()

        return nsutil.in_netns(self.fd, inside)

    # -- processes (ProcessNode): setns in the child, recorded in the run's manifest ------
    def _enter(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        # The child dies with the thread that forked it (PR_SET_PDEATHSIG); node names
        # resolve in it through the node's hosts file.
        return list(argv), nsutil.child_preexec(self.fd, hosts=self.hosts)

    def spawn_rawstack(
        self,
        args: Sequence[str],
        stdout_path: Path,
        stderr_path: Path,
        ready_lines: int = 0,
        sysctls: Sequence[tuple[str, str]] = (),
        *,
        shared: bool = False,
    ) -> ForkedProcess:
        """``rawstack ARGS`` forked into this node by the run's warm peer host, recorded.

        Its stdout and stderr are appended to the two files; with ``ready_lines`` its first
        lines can also be read from ``stdout`` (see :mod:`.forked`). ``sysctls`` (``net.*``)
        are written by the child in the node before the command runs. ``shared``: not a
        process of its own but a tenant of the run's shared-peers process (serve-all only).
        """
        host = self.net.run.peer_host()
        proc = host.spawn(
            self.fd,
            args,
            stdout_path,
            stderr_path,
            ready_lines=ready_lines,
            sysctls=sysctls,
            shared=shared,
        )
        self.procs.append(proc)
        return proc

    def run_rawstack(
        self, args: Sequence[str], *, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``rawstack ARGS`` in this node, as ``run(..., capture_output=True, text=True)``
        would run ``python -m rawstack ARGS``, but forked by the run's warm peer host: no
        interpreter start (~60 ms) nor imports. The same parser, output and exit status;
        its own process (killed with its group at ``timeout``), in this process's working
        directory, with this process's ``RAWSTACK_*`` variables (the rest of its
        environment is the host's). A run opened with ``fork=False`` execs instead."""
        argv = ["rawstack", *args]
        if not self.net.run.fork:
            return self.run(
                [sys.executable, "-m", "rawstack", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        # Memory files, not pipes: nothing has to read while the command runs, and nothing
        # is left on disk if this process dies.
        out = os.memfd_create("rawstack-stdout", os.MFD_CLOEXEC)
        err = os.memfd_create("rawstack-stderr", os.MFD_CLOEXEC)
        try:
            env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
            host = self.net.run.peer_host()
            proc = host.spawn(self.fd, args, out, err, cwd=os.getcwd(), env=env)
            self.procs.append(proc)
            try:
                code = proc.wait_done(timeout)
            except subprocess.TimeoutExpired:
                proc.killpg(signal.SIGKILL)
                proc.wait(STOP_TIMEOUT)
                raise subprocess.TimeoutExpired(
                    argv, timeout or 0.0, _read_all(out), _read_all(err)
                ) from None
            except BaseException:  # Ctrl-C, say: as subprocess.run, it does not outlive us
                proc.killpg(signal.SIGKILL)
                raise
            finally:
                self.procs.remove(proc)
            return subprocess.CompletedProcess(argv, code, _text(out), _text(err))
        finally:
            os.close(out)
            os.close(err)

    def kill_forked(self) -> list[int]:
        """End every process :meth:`spawn_rawstack` started and forget them; the pids
        recycled. A serving peer goes back to the peer host's pool, to be assigned again
        (:meth:`~.forked.PeerHost.recycle`: it stops serving, leaves the namespace and
        closes what it had); any other is SIGKILLed with its group."""
        recycled = []
        for proc in [p for p in self.procs if isinstance(p, ForkedProcess)]:
            pid = proc.host.recycle(proc)
            if pid:
                recycled.append(pid)
            else:
                proc.killpg(signal.SIGKILL)
            self.procs.remove(proc)
        return recycled

    def _started(self, proc: NodeProcess) -> None:
        self.net.run.manifest.add(
            "proc", f"pid:{proc.pid}", pid=proc.pid, start=nsutil.proc_start_time(proc.pid)
        )

    def _stopped(self, proc: NodeProcess) -> None:
        self.net.run.manifest.remove("proc", f"pid:{proc.pid}")

    def close(self) -> tuple[int, int] | None:
        """Close the harness's handles on the namespace; return its (dev, inode)."""
        if self._ipr is not None:
            with contextlib.suppress(Exception):
                self._ipr.close()
            self._ipr = None
        if self._ipr_sock is not None:
            self._ipr_sock.close()
            self._ipr_sock = None
        if self.nl is not None:
            self.nl.close()
            self.nl = None
        dev_ino = None
        if self.fd >= 0:
            st = os.fstat(self.fd)
            dev_ino = (st.st_dev, st.st_ino)
            os.close(self.fd)
            self.fd = -1
        return dev_ino

    def __repr__(self) -> str:
        return f"<LinuxNode {self.name} netns={self.netns}>"


def _read_all(fd: int) -> bytes:
    """All a memory file holds, whatever its offset."""
    size = os.fstat(fd).st_size
    chunks, pos = [], 0
    while pos < size:
        chunk = os.pread(fd, size - pos, pos)
        if not chunk:
            break
        chunks.append(chunk)
        pos += len(chunk)
    return b"".join(chunks)


def _text(fd: int) -> str:
    return _read_all(fd).decode("utf-8", "replace")


def _solicited_groups(node: LinuxNode) -> set[tuple[str, str]]:
    """``(ifname, group)`` for each IPv6 address of the node, as ``/proc/net/igmp6`` spells
    them: the solicited-node group ``ff02::1:ffXX:XXXX`` (RFC 4291 2.7.1), in hex."""
    return {
        (ep.ifname, "ff0200000000000000000001ff" + iface.ip.packed[-3:].hex())
        for ep in node.endpoints()
        for iface in ep.interfaces()
        if iface.version == 6
    }


def _joined(fh: IO[str]) -> set[tuple[str, str]]:
    """``(ifname, group)`` of every group joined, read afresh from an igmp6 file."""
    fh.seek(0)
    return {(f[1], f[2]) for f in (line.split() for line in fh) if len(f) >= 3}


class LinuxNetwork:
    """A built topology: ``net["a"]`` is a :class:`LinuxNode`. Call :meth:`destroy`."""

    def __init__(self, topology: Topology, run: LinuxRun) -> None:
        self.topology = topology
        self.run = run
        self.prefix = run.next_prefix()
        self.nodes: dict[str, LinuxNode] = {}
        self.hubs: dict[str, LinuxNode] = {}  # segment name -> its bridge's namespace
        self.fabric: Fabric | None = None  # impaired links and segments, if any
        self.peers: dict[str, Peer] = {}  # node name -> its supervised serve-all
        self.destroyed = False
        self._plain_ends: list[tuple[LinuxNode, str]] = []  # veth ends _configure made
        self._hosts: dict[str, str] | None = None  # netns -> its hosts file, once written
        self._hosts_lock = threading.Lock()  # nodes start processes from several threads

    def __getitem__(self, name: str) -> LinuxNode:
        return self.nodes[name]

    def build(self) -> LinuxNetwork:
        try:
            nodes = [
                LinuxNode(self, node.name, f"{self.prefix}-{node.name}")
                for node in self.topology.nodes
            ]
            self.nodes = {n.name: n for n in nodes}
            self.hubs = {
                seg.name: LinuxNode(self, seg.name, fabric.hub_netns(self.prefix, seg.name))
                for seg in self.topology.segments
            }
            nodes += self.hubs.values()
            self.run.manifest.write([{"op": "add", "kind": "netns", "key": n.path} for n in nodes])
            pool = self.run.namespace_pool()
            _create_namespaces(nodes, pool)
            self.run.manifest.write(
                [
                    {"op": "add", "kind": "netns", "key": n.path, "dev_ino": list(ino)}
                    for n in nodes
                    for ino in [nsutil.netns_inode(n.path)]
                ]
            )
            self._configure()
            self._await_links()
            for spec in self.topology.nodes:
                if spec.sysctls:
                    enter = functools.partial(nsutil.setns, self.nodes[spec.name].fd)
                    nsutil.briefly(enter, functools.partial(nsutil.write_sysctls, spec.sysctls))
        except BaseException as exc:
            self.destroy()
            if isinstance(exc, PermissionError):
                raise HarnessError(
                    f"building the topology: {exc}; this needs root / CAP_NET_ADMIN"
                ) from None
            if isinstance(exc, OSError) and not isinstance(exc, HarnessError):
                raise HarnessError(f"building the topology: {exc}") from exc
            raise
        if pool is not None:
            pool.refill(len(nodes))  # made while the test runs, for the next build
        return self

    def _await_links(self) -> None:
        """Wait until the kernel reports every veth end built here up (~0.3 ms).

        A link brought up is usable only once the kernel's link watcher has handled its
        carrier (it activates the transmit queues then, and reports the operational state
        UP): until then what a node sends is dropped, and the first packet to a neighbour
        waits for the 1 s retransmission of its ARP request or neighbour solicitation.
        For at most :data:`LINK_READY_TIMEOUT`; then the network is handed out as it is.
        """
        wanted: dict[LinuxNode, set[str]] = {}
        for node, ifname in self._plain_ends:
            wanted.setdefault(node, set()).add(ifname)
        deadline = time.monotonic() + LINK_READY_TIMEOUT
        while wanted and time.monotonic() < deadline:
            for node in list(wanted):
                wanted[node] -= rtnl.links_up(node.netlink())
                if not wanted[node]:
                    del wanted[node]
            if wanted:
                time.sleep(0.0002)
        self._await_ipv6(deadline)

    def _await_ipv6(self, deadline: float) -> None:
        """Then until every IPv6 address's solicited-node group is joined (~0 ms).

        Neighbour solicitations for an address go to that group (RFC 4291 2.7.1, RFC 4861
        7.2.2), and the kernel joins it from a work queue after the address is added, even
        without DAD; while the machine is busy (namespaces being torn down) that can take
        longer than a test waits, and a solicitation before then goes unanswered until its
        1 s retransmission. Each node's ``/proc/net/igmp6`` is opened inside it and re-read.
        """
        pending: list[tuple[set[tuple[str, str]], IO[str]]] = []
        try:
            for node in self.nodes.values():
                groups = _solicited_groups(node)
                if groups:
                    pending.append((groups, nsutil.open_in(node.fd, "/proc/thread-self/net/igmp6")))
            while pending and time.monotonic() < deadline:
                left = []
                for groups, fh in pending:
                    if groups <= _joined(fh):
                        fh.close()
                    else:
                        left.append((groups, fh))
                pending = left
                if pending:
                    time.sleep(0.0002)
        finally:
            for _, fh in pending:
                fh.close()

    def _configure(self) -> None:
        """Links, addresses and routes: one netlink batch per node, all sent, then ACKs read."""
        order = list(self.nodes)
        rank = {name: i for i, name in enumerate(order)}
        batches = {name: rtnl.Batch(f"node {name}") for name in order}
        for name in order:
            batches[name].link_set(1, "lo")
        indexes: dict[tuple[str, str], int] = {}
        relayed = fabric.relayed_links(self.topology)  # built by the fabric, through a relay
        plain = [link for i, link in enumerate(self.topology.links) if i not in relayed]
        for link in plain:
            a, b = link.a, link.b
            if rank[b.node] < rank[a.node]:
                a, b = b, a  # the earlier node creates it: the later one's batch finds it
            na, nb = self.nodes[a.node], self.nodes[b.node]
            ia, ib = na.alloc_index(), nb.alloc_index()
            if ib == ia:
                # The kernel takes a carrier change as urgent when an interface's index is
                # not its peer's (linkwatch_urgent_event, net/core/link_watch.c); else it
                # may report the link up only ~1 s later, which _await_links waits for.
                ib = nb.alloc_index()
            indexes[(a.node, a.ifname)], indexes[(b.node, b.ifname)] = ia, ib
            self._plain_ends.extend([(na, a.ifname), (nb, b.ifname)])
            batches[a.node].veth(
                ia,
                a.ifname,
                ib,
                b.ifname,
                peer_netns_fd=None if nb is na else nb.fd,
                mac=a.mac,
                peer_mac=b.mac,
                what=f"add veth {a.node}:{a.ifname} <-> {b.node}:{b.ifname}",
            )
        for link in plain:
            for ep in (link.a, link.b):
                index = indexes[(ep.node, ep.ifname)]
                for iface in ep.interfaces():
                    batches[ep.node].addr(index, ep.ifname, iface)
                batches[ep.node].link_set(index, ep.ifname, mtu=ep.mtu)
        pending = [rtnl.send(self.nodes[n].netlink(), batches[n]) for n in order]
        if fabric.needs_fabric(self.topology):
            rtnl.collect(pending)
            pending = []
            nsfds = {name: node.fd for name, node in self.nodes.items()}
            hubs = {name: hub.fd for name, hub in self.hubs.items()}
            self.fabric = fabric.Fabric(self.topology, nsfds, hubs, self.run.manifest)
            self.fabric.build(relayed)
        # Routes last, once every link of every node is up (IPv6 gateways need that).
        for node in self.topology.nodes:
            if node.routes:
                batch = rtnl.Batch(f"node {node.name}")
                for route in node.routes:
                    batch.route(route.dst, route.via)
                pending.append(rtnl.send(self.nodes[node.name].netlink(), batch))
        rtnl.collect(pending)

    # -- run-time events (see fabric.py) -----------------------------------------------
    def _fabric(self) -> Fabric:
        if self.fabric is None:
            self.fabric = fabric.Fabric(
                self.topology,
                {name: node.fd for name, node in self.nodes.items()},
                {},
                self.run.manifest,
            )
        return self.fabric

    def set_link(self, a: str, b: str | None = None, *, up: bool) -> None:
        """Take the link ``a``-``b`` (``node`` or ``node:ifname``) down, both ends, or up."""
        link = self._fabric().link(self._fabric().find_link(a, b))
        for side in ("a", "b"):
            link.set_up(side, up)

    def impair(self, a: str, b: str | None = None, impair: object = None) -> str:
        """Change (``None``: clear) the link's impairment (spec form); return its mechanism."""
        from rawstack_harness.topology.impair import LinkImpairment, parse_link_impair

        parsed = LinkImpairment() if impair is None else parse_link_impair("impair", impair)
        link = self._fabric().link(self._fabric().find_link(a, b))
        link.set(parsed)
        return link.describe()

    def set_member(self, segment: str, node: str, *, up: bool) -> None:
        """Take a segment member's interface down or up (``node`` or ``node:ifname``)."""
        name, _, ifname = node.partition(":")
        self._fabric().segment(segment).set_member_up(name, up, ifname or None)

    def mechanisms(self) -> list[str]:
        """One line per impaired link and segment: which mechanism serves it."""
        return [] if self.fabric is None else self.fabric.describe()

    def release(self) -> None:
        """Forget every resource without removing it (another run took ownership)."""
        stop_processes(self.nodes.values())
        every = [*self.nodes.values(), *self.hubs.values()]
        for node in every:
            node.close()
        self.run.manifest.write([{"op": "del", "kind": "netns", "key": n.path} for n in every])
        names.forget(self.run.manifest, self._hosts_files())
        self.destroyed = True

    def hosts_file(self, netns: str) -> str | None:
        """The hosts file of node namespace ``netns``, every node's written on first call.

        Lazily, because most tests never start a process that resolves a name: writing and
        removing the files was a fifth of a bare pair's cost.
        """
        with self._hosts_lock:
            if self._hosts is None:
                if self.destroyed:
                    return None
                self._hosts = names.write(
                    self.run.manifest,
                    self.topology,
                    [n.netns for n in self.nodes.values()],
                    self.run.root,
                )
            return self._hosts.get(netns)

    def _hosts_files(self) -> list[str]:
        with self._hosts_lock:
            return list(self._hosts.values()) if self._hosts else []

    def describe(self) -> dict[str, Any]:
        """Nodes, namespaces and addresses, as ``status --json`` shows them (JSON data)."""
        from rawstack_harness.topology import to_dict

        return {
            "name": self.topology.name,
            "nodes": {
                n.name: {
                    "netns": n.netns,
                    "path": n.path,
                    "addresses": n.addresses(),
                    "hosts": n.hosts,
                }
                for n in self.nodes.values()
            },
            "hubs": {h.name: {"netns": h.netns, "path": h.path} for h in self.hubs.values()},
            "spec": to_dict(self.topology),  # for link events on a kept topology
        }

    def destroy(self) -> None:
        """Stop processes and remove every namespace (and so every veth) of this topology."""
        if self.destroyed:
            return
        self.destroyed = True
        nodes = [*reversed(self.nodes.values()), *self.hubs.values()]
        recycled: set[int] = set()
        try:
            recycled = stop_processes(nodes)
            if self.fabric is not None:
                self.fabric.close()  # the relays: their namespaces and veths go with them
        finally:
            items = [(n.path, n.close()) for n in nodes]
            remove_namespaces(items, spare=recycled)
            names.remove(self.run.manifest, self._hosts_files())
            self.run.manifest.write(
                [{"op": "del", "kind": "netns", "key": path} for path, _ in items]
            )


def build(topology: Topology, run: LinuxRun) -> LinuxNetwork:
    """Validate ``topology`` and build it in ``run``; on any failure nothing is left."""
    return LinuxNetwork(validate(topology), run).build()
