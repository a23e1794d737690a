"""The pure half of the FreeBSD backend: a topology spec and a run id -> exact commands.

:func:`plan` returns the argv lists that build a topology (``jail -c ... vnet persist``,
``ifconfig epair create``, ``ifconfig X vnet JAIL``, ``jexec JAIL ifconfig X name eth0``,
addresses, ``route add``, ``sysctl``) and those that tear it down; the unit tests compare
them verbatim. Nothing here runs a command or touches a file.

Only ``ifconfig epair create`` has an output we need (the kernel picks ``epairNa``), so its
step captures it (:func:`record_capture`) and the next two steps rename both ends to
run-unique names through ``{linkI.a}``/``{linkI.b}`` placeholders (:func:`substitute`);
every later step uses fixed names.

Teardown destroys each epair *inside* its jail first, as FreeBSD's own test tooling does
(``vnet_cleanup`` in tests/sys/common/vnet.subr runs ``jexec JAIL ifconfig IF destroy`` before
``jail -r``; atf_python's ``cleanup_vnet_interfaces`` likewise). Destroying one end of an
epair destroys both. Interfaces left in a jail go back to the host only when the jail's vnet
is destroyed (``vnet_if_return`` in sys/net/if.c), and sockets in TCP teardown keep a removed
jail dying -- its vnet alive -- for minutes; an epair destroyed in the jail never comes back.
What survives (an end that never made it into its jail, a failed in-jail destroy) is renamed
to its run-unique name before ``jail -r`` (two returning ``eth0`` would collide), then
destroyed on the host: a *checked* step (:attr:`Step.checked`) whose only acceptable failure
is ``ifconfig``'s "interface X does not exist". :attr:`Plan.returnable` lists, per jail, the
names that a dying jail could still hand back; the executor records those of jails left
dying, and :func:`rawstack_harness.backends.freebsd.runs.reap_returned_epairs` destroys them
when they appear.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rawstack_harness.errors import HarnessError, SpecError
from rawstack_harness.topology.spec import Endpoint, Topology, validate

JAIL_PREFIX = "rsh"
RUN_ID_RE = re.compile(r"^[0-9a-z]{1,8}$")
_PLACEHOLDER_RE = re.compile(r"\{(link\d+\.[ab])\}")

# Linux sysctl names in specs -> FreeBSD's; FreeBSD's own net.inet*/net.link names pass.
SYSCTL_MAP = {
    "net.ipv4.ip_forward": "net.inet.ip.forwarding",
    "net.ipv4.conf.all.forwarding": "net.inet.ip.forwarding",
    "net.ipv6.conf.all.forwarding": "net.inet6.ip6.forwarding",
}
_NATIVE_SYSCTL = ("net.inet.", "net.inet6.", "net.link.")
# Addresses usable at once, as the Linux backend does by turning DAD off.
_NODE_SYSCTLS = (("net.inet6.ip6.dad_count", "0"),)


# What ifconfig(8) prints for a name it cannot find (sbin/ifconfig/ifconfig.c): the one
# failure a checked teardown step may have, since it means the interface is already gone.
GONE = "does not exist"


@dataclass(frozen=True)
class Step:
    """One command. ``capture`` names the ``ifconfig epair create`` output it records;
    a ``checked`` teardown step must succeed or report the interface already :data:`GONE`;
    ``disposes``: the host-side names that are gone for good once this step succeeds."""

    argv: tuple[str, ...]
    capture: str | None = None
    checked: bool = False
    disposes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    """What to run to build a topology, and to remove it (in order, every step).

    ``returnable``: (jail, host-side name) of every epair end a jail holds, i.e. what a jail
    left dying could hand back to the host later (see the module docstring).
    """

    run_id: str
    jails: tuple[tuple[str, str], ...]  # (node, jail name)
    setup: tuple[Step, ...]
    teardown: tuple[Step, ...]
    returnable: tuple[tuple[str, str], ...] = ()

    def jail(self, node: str) -> str:
        return dict(self.jails)[node]


def jail_name(run_id: str, node: str) -> str:
    """``rsh<run id>_<node>``: the run id lets cleanup tell whose jail it is."""
    return f"{JAIL_PREFIX}{run_id}_{node}"


def host_ifname(run_id: str, link: int, side: str) -> str:
    """The run-unique name an epair end carries outside its jail (at most 15 chars)."""
    return f"rs{run_id}l{link}{side}"


def freebsd_sysctl(name: str, path: str = "sysctls") -> str:
    """The FreeBSD name for a spec sysctl, or :class:`SpecError` naming ``path``."""
    if name in SYSCTL_MAP:
        return SYSCTL_MAP[name]
    if name.startswith(_NATIVE_SYSCTL):
        return name
    raise SpecError(path, f"{name!r} has no FreeBSD equivalent known to this backend")


def _jexec(jail: str, *argv: str) -> Step:
    return Step(("jexec", jail, *argv))


def _node_steps(topo: Topology, jail: Mapping[str, str]) -> list[Step]:
    steps: list[Step] = []
    for n, node in enumerate(topo.nodes):
        j = jail[node.name]
        steps.append(
            Step(("jail", "-c", f"name={j}", f"host.hostname={node.name}", "vnet", "persist"))
        )
        steps.append(_jexec(j, "ifconfig", "lo0", "inet", "127.0.0.1/8", "up"))
        for key, value in _NODE_SYSCTLS:
            steps.append(_jexec(j, "sysctl", f"{key}={value}"))
        for k, (key, value) in enumerate(node.sysctls):
            name = freebsd_sysctl(key, f"nodes[{n}].sysctls[{k}]")
            steps.append(_jexec(j, "sysctl", f"{name}={value}"))
    return steps


def _link_steps(topo: Topology, jail: Mapping[str, str], run_id: str) -> list[Step]:
    steps: list[Step] = []
    for i, link in enumerate(topo.links):
        steps.append(Step(("ifconfig", "epair", "create"), capture=f"link{i}"))
        for side in ("a", "b"):
            steps.append(
                Step(("ifconfig", f"{{link{i}.{side}}}", "name", host_ifname(run_id, i, side)))
            )
        for side, ep in (("a", link.a), ("b", link.b)):
            j, unique = jail[ep.node], host_ifname(run_id, i, side)
            steps.append(Step(("ifconfig", unique, "vnet", j)))
            steps.append(_jexec(j, "ifconfig", unique, "name", ep.ifname))
            if ep.mac is not None:
                steps.append(_jexec(j, "ifconfig", ep.ifname, "ether", ep.mac.lower()))
            if ep.mtu is not None:
                steps.append(_jexec(j, "ifconfig", ep.ifname, "mtu", str(ep.mtu)))
            addrs = ep.interfaces()
            if any(a.version == 6 for a in addrs):
                steps.append(_jexec(j, "ifconfig", ep.ifname, "inet6", "-ifdisabled"))
            for addr in addrs:
                family = "inet" if addr.version == 4 else "inet6"
                steps.append(_jexec(j, "ifconfig", ep.ifname, family, str(addr), "alias"))
            steps.append(_jexec(j, "ifconfig", ep.ifname, "up"))
    return steps


def _route_steps(topo: Topology, jail: Mapping[str, str]) -> list[Step]:
    steps: list[Step] = []
    for node in topo.nodes:
        for route in node.routes:
            family = "-inet6" if ipaddress.ip_address(route.via).version == 6 else "-inet"
            j = jail[node.name]
            steps.append(_jexec(j, "route", "-n", "add", family, route.dst, route.via))
    return steps


def _ends(
    topo: Topology, jail: Mapping[str, str], run_id: str
) -> list[tuple[str, Endpoint, str]]:
    """(jail, endpoint, run-unique name) for both ends of every link, a before b."""
    return [
        (jail[ep.node], ep, host_ifname(run_id, i, side))
        for i, link in enumerate(topo.links)
        for side, ep in (("a", link.a), ("b", link.b))
    ]


def _teardown_steps(topo: Topology, jails: Sequence[tuple[str, str]], run_id: str) -> list[Step]:
    jail = dict(jails)
    # In the jail first, from the a end: both ends go, and nothing is left for a dying jail
    # to return (module docstring).
    steps = [
        Step(
            ("jexec", jail[link.a.node], "ifconfig", link.a.ifname, "destroy"),
            disposes=(host_ifname(run_id, i, "a"), host_ifname(run_id, i, "b")),
        )
        for i, link in enumerate(topo.links)
    ]
    # Survivors carry run-unique names before jail -r hands them back.
    steps.extend(
        _jexec(j, "ifconfig", ep.ifname, "name", unique)
        for j, ep, unique in _ends(topo, jail, run_id)
    )
    steps.extend(Step(("jail", "-r", j)) for _, j in jails)
    for i in range(len(topo.links)):
        # Both names: a jail that died at once hands its end back while the other end may
        # still sit in a dying jail. Destroying either takes both.
        for side in ("a", "b"):
            steps.append(Step(("ifconfig", host_ifname(run_id, i, side), "destroy"), checked=True))
        # Only while the kernel's name is still ours: the executor forgets it once renamed.
        steps.append(Step(("ifconfig", f"{{link{i}.a}}", "destroy"), checked=True))
    return steps


def plan(topo: Topology, run_id: str) -> Plan:
    """The exact commands that build ``topo`` for ``run_id`` and tear it down. Pure."""
    validate(topo)
    if not RUN_ID_RE.match(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-8 of 0-9 a-z")
    jails = tuple((n.name, jail_name(run_id, n.name)) for n in topo.nodes)
    jail = dict(jails)
    setup = [*_node_steps(topo, jail), *_link_steps(topo, jail, run_id), *_route_steps(topo, jail)]
    returnable = tuple((j, unique) for j, _, unique in _ends(topo, jail, run_id))
    teardown = tuple(_teardown_steps(topo, jails, run_id))
    return Plan(run_id, jails, tuple(setup), teardown, returnable)


def placeholders(argv: Sequence[str]) -> list[str]:
    """The captured names (``link0.a``, ...) that ``argv`` refers to."""
    return [m for arg in argv for m in _PLACEHOLDER_RE.findall(arg)]


def substitute(argv: Sequence[str], captured: Mapping[str, str]) -> tuple[str, ...] | None:
    """``argv`` with placeholders filled, or None when one has not been captured."""
    if any(name not in captured for name in placeholders(argv)):
        return None
    return tuple(_PLACEHOLDER_RE.sub(lambda m: captured[m.group(1)], arg) for arg in argv)


def record_capture(name: str, stdout: str, captured: dict[str, str]) -> None:
    """``ifconfig epair create`` prints ``epairNa``; the other end is ``epairNb``."""
    created = stdout.strip()
    if not re.fullmatch(r"epair\d+a", created):
        raise HarnessError(f"ifconfig epair create printed {created!r}, not epairNa")
    captured[f"{name}.a"] = created
    captured[f"{name}.b"] = created[:-1] + "b"
