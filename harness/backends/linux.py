"""The Linux backend: network namespaces and veth pairs over netlink (pyroute2), no ``ip``.

Theory of operation: each node's namespace is created by a helper thread that unshares a
fresh namespace, bind-mounts ``/proc/thread-self/ns/net`` on ``/run/netns/<name>`` and opens
a netlink socket there; pyroute2 then drives that socket from the caller's thread. A veth is
created inside node A's namespace with its peer placed straight into node B's (``net_ns_fd``),
so no interface ever appears in the root namespace and names need not be unique machine-wide.
Every namespace is written to the run's manifest before it exists (see :mod:`harness.runstate`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

from harness.backends import nsutil
from harness.runstate import NETNS_DIR, HarnessError, Run
from harness.topology.spec import Endpoint, Topology, validate

# Tests expect addresses usable at once: without this IPv6 ones stay "tentative" (DAD) ~1s.
_NODE_DEFAULT_SYSCTLS = (
    ("net/ipv6/conf/default/accept_dad", "0"),
    ("net/ipv6/conf/all/accept_dad", "0"),
)


def _write_sysctls(items: Sequence[tuple[str, str]]) -> None:
    for key, value in items:
        path = "/proc/sys/" + key.replace(".", "/") if "/" not in key else "/proc/sys/" + key
        try:
            with open(path, "w", encoding="ascii") as fh:
                fh.write(value)
        except OSError as exc:
            raise HarnessError(f"sysctl {key}={value}: {exc.strerror}") from None


class LinuxNode:
    """One node: its namespace, netlink handle and ways to run things inside it."""

    def __init__(self, net: Network, name: str, netns: str) -> None:
        self.net = net
        self.name = name
        self.netns = netns
        self.path = os.path.join(NETNS_DIR, netns)
        self.fd = -1
        self._nl: socket.socket | None = None
        self.ipr: Any = None
        self.procs: list[subprocess.Popen[Any]] = []

    # -- creation -----------------------------------------------------------------------
    def create(self) -> None:
        self.net.run.manifest.add("netns", self.path)

        def inside() -> tuple[socket.socket, int]:
            nsutil.unshare_net()
            os.close(os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444))
            nsutil.bind_mount("/proc/thread-self/ns/net", self.path)
            _write_sysctls(_NODE_DEFAULT_SYSCTLS)
            nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)  # NETLINK_ROUTE
            return nl, os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)

        self._nl, self.fd = nsutil.in_new_netns(inside)
        dev, ino = nsutil.netns_inode(self.path)
        self.net.run.manifest.add("netns", self.path, dev_ino=[dev, ino])
        from pyroute2 import IPRoute

        self.ipr = IPRoute(use_socket=self._nl)
        self.ipr.link("set", index=1, state="up")  # lo is always ifindex 1 in a new namespace

    # -- access from tests --------------------------------------------------------------
    def endpoints(self) -> list[Endpoint]:
        return self.net.topology.endpoints(self.name)

    def ifnames(self) -> list[str]:
        return [e.ifname for e in self.endpoints()]

    def addresses(self, ifname: str | None = None, version: int | None = None) -> list[str]:
        """Configured addresses (no prefix) of one interface or of all, optionally v4/v6."""
        out: list[str] = []
        for ep in self.endpoints():
            if ifname is None or ep.ifname == ifname:
                out.extend(
                    str(i.ip) for i in ep.interfaces() if version is None or i.version == version
                )
        return out

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        """The first address of that IP version (the one a test usually wants)."""
        found = self.addresses(ifname, version)
        if not found:
            raise LookupError(f"node {self.name} has no IPv{version} address")
        return found[0]

    def mac(self, ifname: str = "eth0") -> str:
        """The interface's MAC address as the kernel reports it."""
        idx = self.ifindex(ifname)
        return str(self.ipr.get_links(idx)[0].get("address"))

    def ifindex(self, ifname: str) -> int:
        found = self.ipr.link_lookup(ifname=ifname)
        if not found:
            raise LookupError(f"node {self.name} has no interface {ifname!r}")
        return int(found[0])

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        """A socket opened inside this node's namespace, usable from the test process."""
        return nsutil.in_netns(self.fd, lambda: socket.socket(family, type, proto))

    def sysctl(self, key: str, value: str | None = None) -> str:
        """Read (and with ``value``, first write) a ``net.*`` sysctl inside the node."""
        path = "/proc/sys/" + key.replace(".", "/")

        def inside() -> str:
            if value is not None:
                _write_sysctls([(key, value)])
            with open(path, encoding="ascii") as fh:
                return fh.read().strip()

        return nsutil.in_netns(self.fd, inside)

    def set_sysctls(self, items: Sequence[tuple[str, str]]) -> None:
        """Write several ``net.*`` sysctls inside the node in one helper thread."""
        nsutil.in_netns(self.fd, lambda: _write_sysctls(items))

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside the namespace (it dies with the calling thread)."""
        kwargs.setdefault("timeout", 60)
        return subprocess.run(
            list(argv), preexec_fn=nsutil.child_preexec(self.fd), check=False, **kwargs
        )

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside the namespace, in its own process group, recorded."""
        proc = subprocess.Popen(
            list(argv),
            preexec_fn=nsutil.child_preexec(self.fd),  # noqa: PLW1509 - only setns + prctl
            start_new_session=True,
            **kwargs,
        )
        self.net.run.manifest.add(
            "proc", f"pid:{proc.pid}", pid=proc.pid, start=nsutil.proc_start_time(proc.pid)
        )
        self.procs.append(proc)
        return proc

    def stop_processes(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``, every process started with :meth:`popen`."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 15)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait()
            # The group may hold grandchildren even after its leader exited.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, 9)
            self.net.run.manifest.remove("proc", f"pid:{proc.pid}")
        self.procs.clear()

    def destroy(self) -> None:
        from harness.runstate import remove_netns

        self.stop_processes()
        if self.ipr is not None:
            with contextlib.suppress(Exception):
                self.ipr.close()
            self.ipr = None
        if self._nl is not None:
            self._nl.close()
            self._nl = None
        dev_ino = None
        if self.fd >= 0:
            st = os.fstat(self.fd)
            dev_ino = (st.st_dev, st.st_ino)
            os.close(self.fd)
            self.fd = -1
        remove_netns(self.path, dev_ino)
        self.net.run.manifest.remove("netns", self.path)

    def __repr__(self) -> str:
        return f"<LinuxNode {self.name} netns={self.netns}>"


class Network:
    """A built topology: ``net["a"]`` is a :class:`LinuxNode`. Call :meth:`destroy`."""

    def __init__(self, topology: Topology, run: Run) -> None:
        self.topology = topology
        self.run = run
        self.prefix = run.next_prefix()
        self.nodes: dict[str, LinuxNode] = {}
        self.peers: dict[str, Any] = {}  # node name -> supervise.PeerProcess
        self.destroyed = False

    def __getitem__(self, name: str) -> LinuxNode:
        return self.nodes[name]

    def build(self) -> Network:
        try:
            for node in self.topology.nodes:
                ln = LinuxNode(self, node.name, f"{self.prefix}-{node.name}")
                self.nodes[node.name] = ln
                ln.create()
            for link in self.topology.links:
                self._add_link(link.a, link.b)
            for node in self.topology.nodes:
                ln = self.nodes[node.name]
                if node.sysctls:
                    ln.set_sysctls(node.sysctls)
                for route in node.routes:
                    self._add_route(ln, route.dst, route.via)
        except BaseException as exc:
            self.destroy()
            if isinstance(exc, PermissionError):
                raise HarnessError(
                    f"building the topology: {exc}; this needs root / CAP_NET_ADMIN"
                ) from None
            if isinstance(exc, OSError) and not isinstance(exc, HarnessError):
                raise HarnessError(f"building the topology: {exc}") from exc
            raise
        return self

    def _add_link(self, a: Endpoint, b: Endpoint) -> None:
        na, nb = self.nodes[a.node], self.nodes[b.node]
        peer: dict[str, Any] = {"ifname": b.ifname}
        if nb is not na:
            peer["net_ns_fd"] = nb.fd
        if b.mac:
            peer["address"] = b.mac
        kw: dict[str, Any] = {"ifname": a.ifname, "kind": "veth", "peer": peer}
        if a.mac:
            kw["address"] = a.mac
        na.ipr.link("add", **kw)
        for node, ep in ((na, a), (nb, b)):
            idx = node.ifindex(ep.ifname)
            for iface in ep.interfaces():
                node.ipr.addr(
                    "add", index=idx, address=str(iface.ip), prefixlen=iface.network.prefixlen
                )
            up: dict[str, Any] = {"index": idx, "state": "up"}
            if ep.mtu:
                up["mtu"] = ep.mtu
            node.ipr.link("set", **up)

    def _add_route(self, node: LinuxNode, dst: str, via: str) -> None:
        gw = ipaddress.ip_address(via)
        if dst == "default":
            dst = "0.0.0.0/0" if gw.version == 4 else "::/0"
        family = socket.AF_INET if gw.version == 4 else socket.AF_INET6
        node.ipr.route("add", dst=dst, gateway=via, family=family)

    def release(self) -> None:
        """Forget every resource without removing it (another run took ownership)."""
        for node in self.nodes.values():
            node.stop_processes()
            if node.ipr is not None:
                node.ipr.close()
            if node._nl is not None:
                node._nl.close()
            if node.fd >= 0:
                os.close(node.fd)
            self.run.manifest.remove("netns", node.path)
        self.destroyed = True

    def describe(self) -> dict[str, Any]:
        """Nodes, namespaces and addresses, as ``status --json`` shows them."""
        return {
            "name": self.topology.name,
            "nodes": {
                n.name: {"netns": n.netns, "path": n.path, "addresses": n.addresses()}
                for n in self.nodes.values()
            },
        }

    def destroy(self) -> None:
        """Stop processes and remove every namespace (and so every veth) of this topology."""
        if self.destroyed:
            return
        self.destroyed = True
        errors = []
        for node in reversed(list(self.nodes.values())):
            try:
                node.destroy()
            except Exception as exc:  # keep going: the rest must still go
                errors.append(exc)
        if errors:
            raise HarnessError(f"teardown: {errors[0]}")


def build(topology: Topology, run: Run) -> Network:
    """Validate ``topology`` and build it in ``run``; on any failure nothing is left."""
    return Network(validate(topology), run).build()
