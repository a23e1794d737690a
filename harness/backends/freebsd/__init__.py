"""The FreeBSD backend: the same topology spec on VNET jails joined by epair interfaces.

Split by responsibility, each module readable on its own:

* :mod:`.planning` -- pure: spec + run id -> the exact ``jail``/``ifconfig``/``route``/
  ``sysctl`` commands that build it and tear it down (:func:`plan`), epair name capture.
* :mod:`.runs` -- locked run directories, :class:`FreeBSDRun`, dead-run cleanup and
  ``status`` (:func:`reap_dead_runs`, :func:`describe_runs`), :func:`missing_requirement`,
  checked teardown and the reaper of epairs dying jails hand back
  (:func:`finish_teardown`, :func:`reap_returned_epairs`).
* :mod:`.nodes` -- executing a plan: :class:`FreeBSDNetwork` and its jails'
  :class:`FreeBSDNode` handles (``run``/``popen`` through ``jexec``, no ``socket()``).
* :mod:`.probes` -- supervision probes, run as a short process inside the probing jail.

Everything public is re-exported here, so ``from rawstack_harness.backends.freebsd import X`` works
for every name. :data:`BACKEND` is what :func:`rawstack_harness.backends.select_backend`
returns on FreeBSD.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rawstack_harness.backends.base import (
    KERNEL,
    Capabilities,
    Kept,
    Network,
    ProbeNode,
    ReadyEvent,
    Run,
)
from rawstack_harness.backends.freebsd.nodes import (
    NO_NODE_SOCKETS,
    FreeBSDNetwork,
    FreeBSDNode,
    build,
    parse_ether,
)
from rawstack_harness.backends.freebsd.planning import (
    GONE,
    JAIL_PREFIX,
    SYSCTL_MAP,
    Plan,
    Step,
    freebsd_sysctl,
    host_ifname,
    jail_name,
    placeholders,
    plan,
    record_capture,
    substitute,
)
from rawstack_harness.backends.freebsd.probes import (
    PROBE_TIMEOUT,
    JailLike,
    chao_probe,
    probe_argv,
    probe_here,
    probe_main,
    probe_peer,
)
from rawstack_harness.backends.freebsd.runs import (
    DEFAULT_ROOT,
    RETURNING,
    FreeBSDRun,
    TeardownOutcome,
    describe_runs,
    finish_teardown,
    missing_requirement,
    new_run_dir,
    reap_dead_runs,
    reap_returned_epairs,
    run_teardown,
    save_state,
)
from rawstack_harness.errors import ProbeFailed, Unsupported

if TYPE_CHECKING:
    from rawstack_harness.topology.spec import Topology

__all__ = [
    "BACKEND",
    "DEFAULT_ROOT",
    "GONE",
    "JAIL_PREFIX",
    "NO_NODE_SOCKETS",
    "PROBE_TIMEOUT",
    "RETURNING",
    "SYSCTL_MAP",
    "FreeBSDBackend",
    "FreeBSDNetwork",
    "FreeBSDNode",
    "FreeBSDRun",
    "JailLike",
    "Plan",
    "Step",
    "TeardownOutcome",
    "build",
    "chao_probe",
    "describe_runs",
    "finish_teardown",
    "freebsd_sysctl",
    "host_ifname",
    "jail_name",
    "missing_requirement",
    "new_run_dir",
    "parse_ether",
    "placeholders",
    "plan",
    "probe_argv",
    "probe_here",
    "probe_main",
    "probe_peer",
    "reap_dead_runs",
    "reap_returned_epairs",
    "record_capture",
    "run_teardown",
    "save_state",
    "substitute",
]

_NO_KEEPER = "kept topologies need a keeper process; only the Linux backend has one yet"


class FreeBSDBackend:
    """VNET jails joined by epair interfaces; see :mod:`rawstack_harness.backends.base`."""

    name = "freebsd"
    description = "VNET jails joined by epair interfaces (jail(8), ifconfig(8))"
    capabilities = Capabilities(
        icmp_responder=KERNEL, node_sockets=False, no_node_sockets=NO_NODE_SOCKETS, keep=False
    )

    @property
    def default_root(self) -> str:
        return DEFAULT_ROOT

    def missing_requirement(self) -> str | None:
        return missing_requirement()

    def will_enter(self, mode: str) -> bool:
        return False

    def enter_mode(self, mode: str) -> str:
        if mode == "rootless":
            raise Unsupported("rootless mode needs Linux user namespaces (FreeBSD: run as root)")
        return "root"

    def exec_in(self, name: str, node: str, argv: Sequence[str], root: str) -> int:
        raise Unsupported("FreeBSD jails cannot be kept: there is no topology to exec in")

    def change_kept(self, name: str, root: str, what: str, args: list[str]) -> str:
        raise Unsupported(_NO_KEEPER)

    def impairment(self) -> str:
        return "link impairment and segments: Linux backend only"

    def open_run(self, root: str, label: str, *, fork: bool = True) -> FreeBSDRun:
        return FreeBSDRun(root, label=label)  # no peer host here: every command is exec'ed

    def build(self, topology: Topology, run: Run) -> FreeBSDNetwork:
        if not isinstance(run, FreeBSDRun):
            raise TypeError(f"{run!r} was not opened by the FreeBSD backend")
        return build(topology, run)

    def reap_dead_runs(self, root: str) -> list[str]:
        return reap_dead_runs(root)

    def describe_runs(self, root: str) -> list[dict[str, Any]]:
        return describe_runs(root)

    def keep(self, net: Network, name: str) -> Kept:
        raise Unsupported(f"keeping a topology is not supported on FreeBSD yet: {_NO_KEEPER}")

    def keep_spec(self, name: str, topology: Topology, root: str) -> dict[str, Any]:
        raise Unsupported(f"keeping a topology is not supported on FreeBSD yet: {_NO_KEEPER}")

    def unkeep(self, name: str, root: str) -> bool:
        raise Unsupported(f"kept topologies are not supported on FreeBSD yet: {_NO_KEEPER}")

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
        # A jail has no setns: each probe is a short process inside ``src``'s jail, one
        # after the other.
        rtts: dict[str, float] = {}
        for peer in peers:
            while peer not in rtts:
                try:
                    rtts[peer] = self.probe_peer(
                        peer, src=src, src_ifname=src_ifname, dst=dst, dst_ifname=dst_ifname,
                        ready=ready,
                    )  # fmt: skip
                except (ProbeFailed, OSError) as exc:
                    on_failure(peer, exc)
        return rtts

    def probe_peer(
        self,
        peer: str,
        *,
        src: ProbeNode,
        src_ifname: str,
        dst: ProbeNode,
        dst_ifname: str,
        ready: Mapping[str, ReadyEvent],
    ) -> float:
        """One probe process in ``src``'s jail (see :mod:`.probes`): the RTT."""
        return probe_peer(
            peer, src=src, src_ifname=src_ifname, dst=dst, dst_ifname=dst_ifname, ready=ready
        )

    def enter_hint(self, node: str, info: Mapping[str, Any]) -> str:
        return f"jexec {info['jail']}"

    def __repr__(self) -> str:
        return "<FreeBSDBackend freebsd>"


BACKEND = FreeBSDBackend()
