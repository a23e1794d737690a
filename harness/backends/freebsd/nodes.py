"""Executing a plan on FreeBSD: :class:`FreeBSDNetwork` (VNET jails + epair) and its nodes.

A :class:`FreeBSDNode` is one jail with the surface of :class:`rawstack_harness.backends.base.Node`
(addresses, MACs, ``run``/``popen`` through ``jexec``) except ``socket()``: a jail has no
setns, so the test process cannot open a socket inside one (supervision probes run inside
the probing jail instead, see :mod:`rawstack_harness.backends.freebsd.probes`).

ICMP: FreeBSD's ``icmp_input`` answers echo requests itself and never passes them to raw
sockets, so a rawstack ICMP responder cannot see them; on this backend the *kernel's* echo
is the responder (the backend's ``capabilities.icmp_responder``), and tests say so.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from rawstack_harness.backends.base import Network, NodeProcess, Peer
from rawstack_harness.backends.common import ProcessNode, SpecNode
from rawstack_harness.backends.freebsd import runs
from rawstack_harness.backends.freebsd.planning import (
    freebsd_sysctl,
    placeholders,
    plan,
    record_capture,
    substitute,
)
from rawstack_harness.errors import HarnessError, NotPrivileged, Unsupported
from rawstack_harness.topology.spec import Topology, validate

NO_NODE_SOCKETS = (
    "node.socket() is unsupported on FreeBSD: a jail has no setns, so the test process "
    "cannot open a socket inside one (run a process in the jail with node.run/node.popen)"
)
_ETHER_RE = re.compile(r"^\s+ether\s+([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})\s*$", re.MULTILINE)


def parse_ether(ifconfig_output: str) -> str | None:
    """The ``ether`` address in ``ifconfig IF`` output (not ``hwaddr``, the factory one)."""
    found = _ETHER_RE.search(ifconfig_output)
    return found.group(1).lower() if found else None


class FreeBSDNode(SpecNode, ProcessNode):
    """One jail, with the node surface of :class:`rawstack_harness.backends.base.Node`."""

    rawstack_icmp = False  # the kernel's echo answers pings in a jail

    def __init__(self, net: Network, name: str, jail: str) -> None:
        self.net = net
        self.name = name
        self.jail = jail
        self.procs: list[NodeProcess] = []

    @property
    def netns(self) -> str:
        """The jail name: unique on the machine, as a Linux node's namespace name is."""
        return self.jail

    def _topology(self) -> Topology:
        return self.net.topology

    def mac(self, ifname: str = "eth0") -> str:
        """The interface's MAC address as ``ifconfig`` in the jail reports it."""
        done = self.run(["ifconfig", ifname], capture_output=True, text=True)
        mac = parse_ether(done.stdout) if done.returncode == 0 else None
        if mac is None:
            raise LookupError(f"node {self.name} has no Ethernet interface {ifname!r}")
        return mac

    def sysctl(self, key: str, value: str | None = None) -> str:
        """Read (and with ``value``, first write) a sysctl in the jail; Linux names map."""
        name = freebsd_sysctl(key, "sysctl")
        if value is not None:
            done = self.run(["sysctl", f"{name}={value}"], capture_output=True, text=True)
            if done.returncode != 0:
                raise HarnessError(f"sysctl {name}={value}: {done.stderr.strip()}")
        done = self.run(["sysctl", "-n", name], capture_output=True, text=True)
        if done.returncode != 0:
            raise HarnessError(f"sysctl {name}: {done.stderr.strip()}")
        return str(done.stdout).strip()

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        """Unsupported: a jail has no setns, so the test process cannot open sockets in it."""
        raise Unsupported(NO_NODE_SOCKETS)

    def _enter(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        # jexec execs the command after jail_attach, so a popen'd pid is the command's own.
        return ["jexec", self.jail, *argv], None

    def __repr__(self) -> str:
        return f"<FreeBSDNode {self.name} jail={self.jail}>"


class FreeBSDNetwork:
    """Executes a :class:`Plan`; ``net["a"]`` is a :class:`FreeBSDNode`; ``destroy()`` is
    idempotent.

    Standalone with ``root``, or inside a :class:`FreeBSDRun` (whose root it then uses).
    """

    def __init__(
        self, topology: Topology, root: str = runs.DEFAULT_ROOT, run: runs.FreeBSDRun | None = None
    ) -> None:
        reason = runs.missing_requirement()
        if reason:
            raise NotPrivileged(reason)
        root = run.root if run is not None else root
        validate(topology)  # before anything exists
        if topology.segments or any(link.impair for link in topology.links):
            raise Unsupported("segments and link impairment need the Linux backend")
        runs.reap_dead_runs(root)
        self.topology = topology
        self.root = root
        self.run = run
        self.dir, self._lock = runs.new_run_dir(root)
        self.plan = plan(topology, self.dir.name)
        self.captured: dict[str, str] = {}
        self._save()
        self._down = False
        self.nodes = {name: FreeBSDNode(self, name, jail) for name, jail in self.plan.jails}
        self.peers: dict[str, Peer] = {}  # node name -> its supervised serve-all
        if run is not None:
            run.networks.append(self)

    def __getitem__(self, name: str) -> FreeBSDNode:
        return self.nodes[name]

    def _save(self) -> None:
        teardown = [list(s.argv) for s in self.plan.teardown]
        label = self.run.label if self.run is not None else "network"
        state = {
            "teardown": teardown,
            "captured": self.captured,
            "label": label,
            "returnable": [list(r) for r in self.plan.returnable],
        }
        runs.save_state(self.dir, {**state, "pid": os.getpid()})

    def build(self) -> FreeBSDNetwork:
        """Run every setup step; on failure tear down what was made and raise."""
        try:
            for step in self.plan.setup:
                argv = substitute(step.argv, self.captured)
                assert argv is not None, f"plan bug: unresolved {step.argv}"
                done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
                if done.returncode != 0:
                    raise HarnessError(f"{' '.join(argv)}: {done.stderr.strip() or 'failed'}")
                if step.capture:
                    record_capture(step.capture, done.stdout, self.captured)
                    self._save()
                elif consumed := placeholders(step.argv):
                    # Renamed: the kernel's epairN name is gone and may be reused by someone
                    # else, so teardown must never destroy it by that name.
                    for key in consumed:
                        self.captured.pop(key, None)
                    self._save()
        except BaseException:
            self.destroy()
            raise
        return self

    def jail(self, node: str) -> str:
        return self.plan.jail(node)

    def describe(self) -> dict[str, Any]:
        """Nodes, jails and addresses, as ``status --json`` shows them."""
        return {
            "name": self.topology.name,
            "nodes": {
                n.name: {"jail": n.jail, "addresses": n.addresses()} for n in self.nodes.values()
            },
        }

    def remove(self) -> None:
        """Remove the jails and epairs (``jail -r`` also kills what runs in a jail).

        Every step runs; then :class:`HarnessError` if a checked step failed (an epair
        the host could not destroy is a leak, and the test that made it should say so).
        """
        if self._down:
            return
        self._down = True
        try:
            problems = runs.finish_teardown(
                self.root, self.plan.teardown, self.captured, self.plan.returnable
            )
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock)
            if self.run is not None and self in self.run.networks:
                self.run.networks.remove(self)
        if problems:
            raise HarnessError(f"teardown of run {self.plan.run_id}: {'; '.join(problems)}")

    # Link events, impairment and segments are Linux-only (the constructor refuses them).
    def set_link(self, a: str, b: str | None = None, *, up: bool) -> None:
        raise Unsupported("link events need the Linux backend")

    def impair(self, a: str, b: str | None = None, impair: object = None) -> str:
        raise Unsupported("link impairment needs the Linux backend")

    def set_member(self, segment: str, node: str, *, up: bool) -> None:
        raise Unsupported("segments need the Linux backend")

    def mechanisms(self) -> list[str]:
        return []

    def destroy(self) -> None:
        """Stop the processes started in the nodes, then :meth:`remove` the jails."""
        try:
            for node in self.nodes.values():
                node.stop_processes()
        finally:
            self.remove()


def build(topology: Topology, run: runs.FreeBSDRun) -> FreeBSDNetwork:
    """Validate ``topology`` and build it in ``run``; on any failure nothing is left."""
    return FreeBSDNetwork(validate(topology), run=run).build()
