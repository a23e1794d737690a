"""The FreeBSD backend: the same topology spec on VNET jails joined by epair interfaces.

Theory of operation: planning is pure. :func:`plan` turns a spec and a run id into the exact
argv lists that build it (``jail -c ... vnet persist``, ``ifconfig epair create``, ``ifconfig
X vnet JAIL``, ``jexec JAIL ifconfig X name eth0``, addresses, ``route add``, ``sysctl``) and
the ones that tear it down; the unit tests compare those lists verbatim. Only ``ifconfig epair
create`` has an output we need (the kernel picks ``epairNa``), so its step captures it and
the next two steps rename both ends to run-unique names through ``{linkI.a}``/``{linkI.b}``
placeholders; everything after that uses fixed names.

:class:`FreeBSDNetwork` executes a plan. Like the Linux backend, every run owns a directory
with a ``lock`` held (flock) for its lifetime, and the teardown list (plus captured names) is
written there *before* anything is created, so :func:`clean_dead_runs` can remove the jails
and epairs of a run whose owner died, and never those of a live run.

Teardown renames each ``eth0`` back to its run-unique name before ``jail -r``: removing a
VNET jail returns its interfaces to the host, and two returning ``eth0`` would collide.
Destroying one end of an epair destroys both.

ICMP: FreeBSD's ``icmp_input`` answers echo requests itself and never passes them to raw
sockets, so a rawstack ICMP responder cannot see them; on this backend the *kernel's* echo
is the responder (:data:`ICMP_RESPONDER`), and tests say so.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.runstate import HarnessError, NotPrivileged
from harness.topology.spec import SpecError, Topology, validate

DEFAULT_ROOT = os.environ.get("RAWSTACK_HARNESS_RUN_DIR", "/var/run/rawstack-harness")
JAIL_PREFIX = "rsh"
ICMP_RESPONDER = "kernel"  # see the module docstring
_RUN_ID_RE = re.compile(r"^[0-9a-z]{1,8}$")
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


@dataclass(frozen=True)
class Step:
    """One command. ``capture`` names the ``ifconfig epair create`` output it records."""

    argv: tuple[str, ...]
    capture: str | None = None


@dataclass(frozen=True)
class Plan:
    """What to run to build a topology, and to remove it (best effort, in order)."""

    run_id: str
    jails: tuple[tuple[str, str], ...]  # (node, jail name)
    setup: tuple[Step, ...]
    teardown: tuple[Step, ...]

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


def plan(topo: Topology, run_id: str) -> Plan:
    """The exact commands that build ``topo`` for ``run_id`` and tear it down. Pure."""
    validate(topo)
    if not _RUN_ID_RE.match(run_id):
        raise ValueError(f"run id {run_id!r} must be 1-8 of 0-9 a-z")
    jails = tuple((n.name, jail_name(run_id, n.name)) for n in topo.nodes)
    jail = dict(jails)
    setup: list[Step] = []
    for n, node in enumerate(topo.nodes):
        j = jail[node.name]
        setup.append(
            Step(("jail", "-c", f"name={j}", f"host.hostname={node.name}", "vnet", "persist"))
        )
        setup.append(_jexec(j, "ifconfig", "lo0", "inet", "127.0.0.1/8", "up"))
        for key, value in _NODE_SYSCTLS:
            setup.append(_jexec(j, "sysctl", f"{key}={value}"))
        for k, (key, value) in enumerate(node.sysctls):
            name = freebsd_sysctl(key, f"nodes[{n}].sysctls[{k}]")
            setup.append(_jexec(j, "sysctl", f"{name}={value}"))
    for i, link in enumerate(topo.links):
        setup.append(Step(("ifconfig", "epair", "create"), capture=f"link{i}"))
        for side in ("a", "b"):
            setup.append(
                Step(("ifconfig", f"{{link{i}.{side}}}", "name", host_ifname(run_id, i, side)))
            )
        for side, ep in (("a", link.a), ("b", link.b)):
            j, unique = jail[ep.node], host_ifname(run_id, i, side)
            setup.append(Step(("ifconfig", unique, "vnet", j)))
            setup.append(_jexec(j, "ifconfig", unique, "name", ep.ifname))
            if ep.mac is not None:
                setup.append(_jexec(j, "ifconfig", ep.ifname, "ether", ep.mac.lower()))
            if ep.mtu is not None:
                setup.append(_jexec(j, "ifconfig", ep.ifname, "mtu", str(ep.mtu)))
            addrs = ep.interfaces()
            if any(a.version == 6 for a in addrs):
                setup.append(_jexec(j, "ifconfig", ep.ifname, "inet6", "-ifdisabled"))
            for addr in addrs:
                family = "inet" if addr.version == 4 else "inet6"
                setup.append(_jexec(j, "ifconfig", ep.ifname, family, str(addr), "alias"))
            setup.append(_jexec(j, "ifconfig", ep.ifname, "up"))
    for node in topo.nodes:
        for route in node.routes:
            family = "-inet6" if ipaddress.ip_address(route.via).version == 6 else "-inet"
            setup.append(
                _jexec(jail[node.name], "route", "-n", "add", family, route.dst, route.via)
            )
    teardown: list[Step] = []
    for i, link in enumerate(topo.links):
        for side, ep in (("a", link.a), ("b", link.b)):
            teardown.append(
                _jexec(jail[ep.node], "ifconfig", ep.ifname, "name", host_ifname(run_id, i, side))
            )
    teardown.extend(Step(("jail", "-r", j)) for _, j in jails)
    for i in range(len(topo.links)):
        teardown.append(Step(("ifconfig", host_ifname(run_id, i, "a"), "destroy")))
        # Only while the kernel's name is still ours: the executor forgets it once renamed.
        teardown.append(Step(("ifconfig", f"{{link{i}.a}}", "destroy")))
    return Plan(run_id, jails, tuple(setup), tuple(teardown))


def substitute(argv: Sequence[str], captured: Mapping[str, str]) -> tuple[str, ...] | None:
    """``argv`` with placeholders filled, or None when one has not been captured."""
    out = []
    for arg in argv:
        missing = [m for m in _PLACEHOLDER_RE.findall(arg) if m not in captured]
        if missing:
            return None
        out.append(_PLACEHOLDER_RE.sub(lambda m: captured[m.group(1)], arg))
    return tuple(out)


def record_capture(name: str, stdout: str, captured: dict[str, str]) -> None:
    """``ifconfig epair create`` prints ``epairNa``; the other end is ``epairNb``."""
    created = stdout.strip()
    if not re.fullmatch(r"epair\d+a", created):
        raise HarnessError(f"ifconfig epair create printed {created!r}, not epairNa")
    captured[f"{name}.a"] = created
    captured[f"{name}.b"] = created[:-1] + "b"


def unavailable_reason() -> str | None:
    """Why this host cannot run the backend (for skips), or None."""
    if not sys.platform.startswith("freebsd"):
        return f"the FreeBSD backend needs FreeBSD (this is {sys.platform})"
    if os.geteuid() != 0:
        return "needs root (jail(8), ifconfig(8))"
    try:
        out = subprocess.run(
            ["sysctl", "-n", "kern.features.vimage"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"cannot read kern.features.vimage: {exc}"
    if out.returncode != 0 or out.stdout.strip() != "1":
        return "kernel lacks VIMAGE (sysctl kern.features.vimage is not 1)"
    return None


def _run_teardown(steps: Sequence[Step], captured: Mapping[str, str]) -> None:
    for step in steps:
        argv = substitute(step.argv, captured)
        if argv is not None:
            subprocess.run(argv, capture_output=True, timeout=60, check=False)


class FreeBSDNetwork:
    """Executes a :class:`Plan` for one run; ``down()`` is idempotent."""

    def __init__(self, topology: Topology, root: str = DEFAULT_ROOT) -> None:
        reason = unavailable_reason()
        if reason:
            raise NotPrivileged(reason)
        os.makedirs(root, mode=0o755, exist_ok=True)
        clean_dead_runs(root)
        self.topology = topology
        self.root = root
        self.plan = plan(topology, "0")  # validates the spec before anything exists
        while True:
            run_id = secrets.token_hex(3)
            self.dir = Path(root) / run_id
            # Locked under a dot-name (cleaners skip those), then renamed: no cleaner can
            # ever see this run's directory with its lock free.
            tmp = Path(root) / f".new-{run_id}"
            if self.dir.exists():
                continue
            try:
                tmp.mkdir(mode=0o755)
            except FileExistsError:
                continue
            self._lock = os.open(tmp / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            os.rename(tmp, self.dir)
            break
        self.plan = plan(topology, run_id)
        self.captured: dict[str, str] = {}
        self._save()
        self._down = False

    def _save(self) -> None:
        state = {"teardown": [list(s.argv) for s in self.plan.teardown], "captured": self.captured}
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.dir / "state.json")

    def up(self) -> FreeBSDNetwork:
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
                elif consumed := _PLACEHOLDER_RE.findall(" ".join(step.argv)):
                    # Renamed: the kernel's epairN name is gone and may be reused by someone
                    # else, so teardown must never destroy it by that name.
                    for key in consumed:
                        self.captured.pop(key, None)
                    self._save()
        except BaseException:
            self.down()
            raise
        return self

    def jail(self, node: str) -> str:
        return self.plan.jail(node)

    def run(
        self, node: str, argv: Sequence[str], **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        """Run a command inside ``node``'s jail."""
        return subprocess.run(["jexec", self.jail(node), *argv], check=False, **kwargs)

    def popen(self, node: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a peer inside ``node``'s jail; the caller waits for its ready line."""
        return subprocess.Popen(["jexec", self.jail(node), *argv], **kwargs)

    def down(self) -> None:
        if self._down:
            return
        self._down = True
        _run_teardown(self.plan.teardown, self.captured)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self._lock)


def clean_dead_runs(root: str = DEFAULT_ROOT) -> list[str]:
    """Tear down runs whose lock is free (their owner is gone); return their ids."""
    reaped: list[str] = []
    with contextlib.suppress(FileNotFoundError):
        for run_dir in sorted(Path(root).iterdir()):
            if not _RUN_ID_RE.match(run_dir.name):
                continue
            try:
                fd = os.open(run_dir / "lock", os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # being created right now, or already half removed
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue  # a live run
            try:
                state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
                steps = [Step(tuple(argv)) for argv in state["teardown"]]
                _run_teardown(steps, state.get("captured", {}))
            except (OSError, ValueError, KeyError):
                pass  # nothing recorded means nothing was created
            shutil.rmtree(run_dir, ignore_errors=True)
            os.close(fd)
            reaped.append(run_dir.name)
    return reaped
