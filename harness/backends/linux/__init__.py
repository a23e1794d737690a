"""The Linux backend: network namespaces joined by veth pairs, built over netlink.

Split by responsibility, as the FreeBSD backend is:

* :mod:`.nodes` -- building a topology: :class:`~.nodes.LinuxNetwork` and its
  :class:`~.nodes.LinuxNode` handles (setns sockets, ``run``/``popen`` in the namespace).
* :mod:`.rtnl` -- batched rtnetlink requests (pyroute2's encoders, one plain socket).
* :mod:`.nsutil` -- namespace primitives through libc (unshare, setns, bind mounts).
* :mod:`.runs` -- run ownership: locked run directories, the manifest, reaping.
* :mod:`.reaper` -- ``python -m rawstack_harness.backends.linux.reaper``: the process that
  removes a dead run's namespaces and processes (a SIGKILLed pytest leaves nothing).
* :mod:`.keeper` -- ``python -m rawstack_harness.backends.linux.keeper``: owns a kept topology.
* :mod:`.env` -- what this machine lacks to build topologies.
* :mod:`.rootless` -- ``--netns-mode``: root, or a run of its own in user namespaces, entered
  through :mod:`.userns` (user, mount and network namespaces; the kernel's refusals named) and
  :mod:`.pidinit` (a pid namespace whose init dies with the process the user started).

:data:`BACKEND` is what :func:`rawstack_harness.backends.select_backend` returns on Linux. The
submodules are imported only when used: importing this package costs nothing (the plugin
loads it to answer the report header) and needs no pyroute2.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rawstack_harness.backends.base import Capabilities, Kept, Network, ProbeNode, ReadyEvent, Run

if TYPE_CHECKING:
    from rawstack_harness.backends.linux.nodes import LinuxNetwork
    from rawstack_harness.backends.linux.runs import LinuxRun
    from rawstack_harness.topology.spec import Topology


class LinuxBackend:
    """Network namespaces joined by veth pairs; see :mod:`rawstack_harness.backends.base`."""

    name = "linux"
    capabilities = Capabilities()

    @property
    def description(self) -> str:
        from rawstack_harness.backends.linux import rootless

        where = " in a user namespace of the run's own (rootless)" if rootless.active() else ""
        return f"network namespaces joined by veth pairs (netlink){where}"

    def will_enter(self, mode: str) -> bool:
        from rawstack_harness.backends.linux import rootless

        return rootless.resolve(mode) == rootless.ROOTLESS and not rootless.active()

    def enter_mode(self, mode: str) -> str:
        from rawstack_harness.backends.linux import rootless

        resolved = rootless.begin(mode)
        if rootless.active():
            self.capabilities = _ROOTLESS_CAPS
        return resolved

    def exec_in(self, name: str, node: str, argv: Sequence[str], root: str) -> int:
        from rawstack_harness.backends.linux import keeper

        return keeper.exec_in(name, node, argv, root)

    @property
    def default_root(self) -> str:
        from rawstack_harness.backends.linux.runs import DEFAULT_ROOT

        return DEFAULT_ROOT

    def missing_requirement(self) -> str | None:
        from rawstack_harness.backends.linux import env

        return env.missing_requirement()

    def change_kept(self, name: str, root: str, what: str, args: list[str]) -> str:
        from rawstack_harness.backends.linux import events

        return events.change(name, root, what, args)

    def impairment(self) -> str:
        from rawstack_harness.backends.linux.impair import plan, probe

        if self.missing_requirement():
            return "link impairment: not probed (no topologies can be built here)"
        try:
            return plan.describe_features(probe.probe())
        except Exception as exc:  # the header must never break a run: say why instead
            return f"link impairment: not probed ({type(exc).__name__}: {exc})"

    def open_run(self, root: str, label: str, *, fork: bool = True) -> LinuxRun:
        from rawstack_harness.backends.linux.runs import LinuxRun

        return LinuxRun(root, label=label, fork=fork)

    def build(self, topology: Topology, run: Run) -> LinuxNetwork:
        from rawstack_harness.backends.linux.nodes import build

        return build(topology, _own_run(run))

    def reap_dead_runs(self, root: str) -> list[str]:
        from rawstack_harness.backends.linux import env
        from rawstack_harness.backends.linux.keeper import rootless_kept
        from rawstack_harness.backends.linux.runs import global_cleanup, reap_dead_runs

        if not env.has_admin_caps():
            # A rootless run leaves nothing to reap (its namespaces die with it); reading the
            # listings removes those of killed keepers.
            rootless_kept()
            return []
        reaped = reap_dead_runs(root)
        global_cleanup(root)
        return reaped

    def describe_runs(self, root: str) -> list[dict[str, Any]]:
        from rawstack_harness.backends.linux import env
        from rawstack_harness.backends.linux.keeper import rootless_kept
        from rawstack_harness.backends.linux.runs import describe_runs

        # Root's runs (0600 manifests) are not a plain user's to read; its own are listed.
        runs = describe_runs(root) if env.has_admin_caps() else []
        for info in rootless_kept():  # their run dirs live in their own mount namespaces
            nodes = info.get("topology", {}).get("nodes", {}).values()
            runs.append(
                {
                    "run": "rootless",
                    "label": f"keeper:{info['name']}",
                    "pid": info["pid"],
                    "alive": True,
                    "name": info["name"],
                    "netns": [n["path"] for n in nodes],
                }
            )
        return runs

    def keep(self, net: Network, name: str) -> Kept:
        from rawstack_harness.backends.linux.keeper import hand_over
        from rawstack_harness.backends.linux.nodes import LinuxNetwork

        if not isinstance(net, LinuxNetwork):
            raise TypeError(f"{net!r} was not built by the Linux backend")
        kept = hand_over(net, name)
        pattern = f"{net.prefix}-<node>"
        from rawstack_harness.backends.linux.runs import DEFAULT_ROOT

        run_dir = "" if net.run.root == DEFAULT_ROOT else f" --run-dir {net.run.root}"
        return Kept(
            kept,
            f"`netns-harness{run_dir} exec {kept} <node> -- COMMAND` (or `nsenter "
            f"--net={_netns_path(pattern)}`, `ip netns exec {pattern}`)",
        )

    def keep_spec(self, name: str, topology: Topology, root: str) -> dict[str, Any]:
        from rawstack_harness.backends.linux import keeper
        from rawstack_harness.topology import to_dict

        msg = keeper.start(name, "spec", to_dict(topology), root)
        found = keeper.find(name, root)
        return {"run": msg.get("run"), "topology": found[1].get("topology") if found else None}

    def unkeep(self, name: str, root: str) -> bool:
        from rawstack_harness.backends.linux import keeper

        return keeper.stop(name, root)

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
        # The plain-socket probes open their sockets in ``src`` from here (setns), all of
        # them in flight at once on one poll set.
        from rawstack_harness.probes import probe_peers

        return probe_peers(
            peers,
            src=src,
            src_ifname=src_ifname,
            dst=dst,
            dst_ifname=dst_ifname,
            ready=ready,
            on_failure=on_failure,
        )

    def enter_hint(self, node: str, info: Mapping[str, Any]) -> str:
        from rawstack_harness.backends.linux import env

        if not env.has_admin_caps():
            return f"{info['path']} (in the keeper's own namespaces: use exec)"
        return f"nsenter --net={info['path']}"

    def __repr__(self) -> str:
        return "<LinuxBackend linux>"


# A rootless run's namespaces end with its pid namespace: no keeper can adopt them.
_ROOTLESS_CAPS = Capabilities(
    keep=False,
    no_keep="a rootless run's namespaces end with the run (its pid namespace); "
    "`netns-harness up` keeps a topology rootless",
)


def _netns_path(netns: str) -> str:
    from rawstack_harness.backends.linux.runs import NETNS_DIR

    return f"{NETNS_DIR}/{netns}"


def _own_run(run: Run) -> LinuxRun:
    from rawstack_harness.backends.linux.runs import LinuxRun

    if not isinstance(run, LinuxRun):
        raise TypeError(f"{run!r} was not opened by the Linux backend")
    return run


BACKEND = LinuxBackend()
