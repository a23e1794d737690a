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

Nodes (:class:`FreeBSDNode`) have the surface of :class:`harness.backends.NodeHandle`
(addresses, MACs, ``run``/``popen`` through ``jexec``) except ``socket()``: a jail has no
setns, so the test process cannot open a socket inside one. Supervision probes therefore
run as a short process inside the probing jail (:func:`probe_peer`). A process's
:class:`FreeBSDRun` is a locked directory for peer logs plus the networks built in it.

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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.backends import Unsupported
from harness.runstate import HarnessError, NotPrivileged
from harness.topology.spec import Endpoint, SpecError, Topology, validate

DEFAULT_ROOT = os.environ.get("RAWSTACK_HARNESS_RUN_DIR", "/var/run/rawstack-harness")
JAIL_PREFIX = "rsh"
ICMP_RESPONDER = "kernel"  # see the module docstring
_RUN_ID_RE = re.compile(r"^[0-9a-z]{1,8}$")
_PLACEHOLDER_RE = re.compile(r"\{(link\d+\.[ab])\}")
_ETHER_RE = re.compile(r"^\s+ether\s+([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})\s*$", re.MULTILINE)
NO_NODE_SOCKETS = (
    "node.socket() is unsupported on FreeBSD: a jail has no setns, so the test process "
    "cannot open a socket inside one (run a process in the jail with node.run/node.popen)"
)

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


def _new_run_dir(root: str) -> tuple[Path, int]:
    """A fresh ``<root>/<id>`` with its ``lock`` held: (directory, lock fd)."""
    os.makedirs(root, mode=0o755, exist_ok=True)
    while True:
        run_id = secrets.token_hex(3)
        final = Path(root) / run_id
        # Locked under a dot-name (cleaners skip those), then renamed: no cleaner can ever
        # see this directory with its lock free.
        tmp = Path(root) / f".new-{run_id}"
        if final.exists():
            continue
        try:
            tmp.mkdir(mode=0o755)
        except FileExistsError:
            continue
        lock = os.open(tmp / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        os.rename(tmp, final)
        return final, lock


def _save_state(run_dir: Path, state: dict[str, Any]) -> None:
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, run_dir / "state.json")


class FreeBSDRun:
    """One process's run: a locked directory for peer logs, and the networks built in it.

    Its state lists nothing to tear down, so :func:`clean_dead_runs` just removes the
    directory of a dead owner; each network has its own directory and teardown list.
    """

    def __init__(self, root: str = DEFAULT_ROOT, label: str = "pytest") -> None:
        reason = unavailable_reason()
        if reason:
            raise NotPrivileged(reason)
        self.root = root
        self.label = label
        clean_dead_runs(root)
        self.dir, self._lock = _new_run_dir(root)
        self.id = self.dir.name
        _save_state(self.dir, {"teardown": [], "label": label, "pid": os.getpid()})
        self.networks: list[FreeBSDNetwork] = []
        self.closed = False

    def close(self) -> None:
        """Destroy every network still up, then drop the directory."""
        if self.closed:
            return
        self.closed = True
        try:
            for net in reversed(self.networks):
                net.destroy()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock)


def parse_ether(ifconfig_output: str) -> str | None:
    """The ``ether`` address in ``ifconfig IF`` output (not ``hwaddr``, the factory one)."""
    found = _ETHER_RE.search(ifconfig_output)
    return found.group(1).lower() if found else None


class FreeBSDNode:
    """One jail, with the node surface of :class:`harness.backends.NodeHandle`."""

    def __init__(self, net: FreeBSDNetwork, name: str, jail: str) -> None:
        self.net = net
        self.name = name
        self.jail = jail
        self.procs: list[subprocess.Popen[Any]] = []

    @property
    def netns(self) -> str:
        """The jail name: unique on the machine, as a Linux node's namespace name is."""
        return self.jail

    def endpoints(self) -> list[Endpoint]:
        return self.net.topology.endpoints(self.name)

    def ifnames(self) -> list[str]:
        return [e.ifname for e in self.endpoints()]

    def addresses(self, ifname: str | None = None, version: int | None = None) -> list[str]:
        """Configured addresses (no prefix) of one interface or of all, optionally v4/v6."""
        return [
            str(i.ip)
            for ep in self.endpoints()
            if ifname is None or ep.ifname == ifname
            for i in ep.interfaces()
            if version is None or i.version == version
        ]

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        found = self.addresses(ifname, version)
        if not found:
            raise LookupError(f"node {self.name} has no IPv{version} address")
        return found[0]

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

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` inside the jail (``jexec``)."""
        kwargs.setdefault("timeout", 60)
        return subprocess.run(["jexec", self.jail, *argv], check=False, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` inside the jail, in its own process group, recorded."""
        # jexec execs the command after jail_attach, so the pid is the command's own.
        proc = subprocess.Popen(["jexec", self.jail, *argv], start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def stop_processes(self, timeout: float = 3.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``, every process started with :meth:`popen`."""
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()

    def __repr__(self) -> str:
        return f"<FreeBSDNode {self.name} jail={self.jail}>"


class FreeBSDNetwork:
    """Executes a :class:`Plan`; ``net["a"]`` is a :class:`FreeBSDNode`; ``down()`` is idempotent.

    Standalone with ``root``, or inside a :class:`FreeBSDRun` (whose root it then uses).
    """

    def __init__(
        self, topology: Topology, root: str = DEFAULT_ROOT, run: FreeBSDRun | None = None
    ) -> None:
        reason = unavailable_reason()
        if reason:
            raise NotPrivileged(reason)
        root = run.root if run is not None else root
        self.plan = plan(topology, "0")  # validates the spec before anything exists
        clean_dead_runs(root)
        self.topology = topology
        self.root = root
        self.run = run
        self.dir, self._lock = _new_run_dir(root)
        self.plan = plan(topology, self.dir.name)
        self.captured: dict[str, str] = {}
        self._save()
        self._down = False
        self.nodes = {name: FreeBSDNode(self, name, jail) for name, jail in self.plan.jails}
        self.peers: dict[str, Any] = {}  # node name -> supervise.PeerProcess
        if run is not None:
            run.networks.append(self)

    def __getitem__(self, name: str) -> FreeBSDNode:
        return self.nodes[name]

    def _save(self) -> None:
        teardown = [list(s.argv) for s in self.plan.teardown]
        label = self.run.label if self.run is not None else "network"
        state = {"teardown": teardown, "captured": self.captured, "label": label}
        _save_state(self.dir, {**state, "pid": os.getpid()})

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

    def down(self) -> None:
        """Remove the jails and epairs (``jail -r`` also kills what runs in a jail)."""
        if self._down:
            return
        self._down = True
        _run_teardown(self.plan.teardown, self.captured)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self._lock)
        if self.run is not None and self in self.run.networks:
            self.run.networks.remove(self)

    def destroy(self) -> None:
        """Stop the processes started in the nodes, then :meth:`down`."""
        try:
            for node in self.nodes.values():
                node.stop_processes()
        finally:
            self.down()


def build(topology: Topology, run: FreeBSDRun) -> FreeBSDNetwork:
    """Validate ``topology`` and build it in ``run``; on any failure nothing is left."""
    return FreeBSDNetwork(validate(topology), run=run).up()


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


def describe_runs(root: str = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """Every run directory under ``root``: id, label, pid, alive (lock held), jails."""
    runs: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError):
        for run_dir in sorted(Path(root).iterdir()):
            if not _RUN_ID_RE.match(run_dir.name):
                continue
            try:
                state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
                fd = os.open(run_dir / "lock", os.O_RDWR | os.O_CLOEXEC)
            except (OSError, ValueError):
                continue  # being created or removed right now
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                alive = False
            except BlockingIOError:
                alive = True
            finally:
                os.close(fd)
            jails = [a[2] for a in state.get("teardown", []) if a[:2] == ["jail", "-r"]]
            runs.append(
                {
                    "run": run_dir.name,
                    "label": state.get("label"),
                    "pid": state.get("pid"),
                    "alive": alive,
                    "name": None,
                    "jails": jails,
                }
            )
    return runs


# -- supervision probes, run inside the probing node's jail ------------------------------
# The Linux backend's probes open sockets in the source node from the test process; a jail
# has no setns, so here each probe is a short process in the source jail (``jexec``) that
# runs the same plain-socket probes from harness.probes (CHAO over /dev/bpf instead of
# AF_PACKET) and prints its RTT.

PROBE_TIMEOUT = 15.0  # the whole probe process, interpreter start included
_PROBE_CODE = (
    "import sys; from harness.backends.freebsd import probe_main; "
    "sys.exit(probe_main(sys.argv[1:]))"
)


def probe_argv(peer: str, *, ifname: str, target: str, dst_mac: str, ready: Any) -> list[str]:
    """The command a jail runs to probe ``peer`` at ``target`` (``dst_mac`` for CHAO)."""
    if peer in ("http", "udp"):
        arg = str(ready[peer]["addr"]).rsplit(":", 1)[1]
    elif peer == "chao":
        arg = dst_mac
    elif peer == "icmp":
        arg = "-"
    else:
        raise ValueError(f"unknown peer {peer!r}")
    return [sys.executable, "-c", _PROBE_CODE, peer, ifname, target, arg]


def probe_peer(
    peer: str,
    *,
    src: Any,
    src_ifname: str,
    dst: Any,
    dst_ifname: str,
    ready: dict[str, dict[str, Any]],
) -> float:
    """One exchange with ``dst``'s ``peer`` from inside ``src``'s jail; RTT in seconds."""
    from harness.probes import ProbeFailed

    target = dst.addr(4, dst_ifname)
    mac = dst.mac(dst_ifname) if peer == "chao" else ""
    argv = probe_argv(peer, ifname=src_ifname, target=target, dst_mac=mac, ready=ready)
    try:
        done = src.run(argv, capture_output=True, text=True, timeout=PROBE_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise ProbeFailed(
            f"{peer} probe from {src.name}: no result in {PROBE_TIMEOUT:g}s"
        ) from None
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise ProbeFailed(lines[-1] if lines else f"probe exited with status {done.returncode}")
    try:
        return float(json.loads(done.stdout)["rtt"])
    except (ValueError, KeyError, TypeError):
        raise ProbeFailed(f"{peer} probe printed {done.stdout.strip()[:100]!r}") from None


class _Here:
    """The probes' node for the process's own network stack (inside the jail)."""

    def socket(
        self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM, proto: int = 0
    ) -> socket.socket:
        return socket.socket(family, type, proto)

    def mac(self, ifname: str = "eth0") -> str:
        raise LookupError("not needed by the socket probes")

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        raise LookupError("not needed by the socket probes")


def chao_probe(ifname: str, dst_mac: str, timeout: float = 1.0) -> float:
    """A CHAO request to ``dst_mac`` over the link socket (BPF here); wait for its reply."""
    import select

    from harness.probes import ProbeFailed
    from rawstack.codec.chao import CHAO_REPLY, CHAO_REQUEST, Chao
    from rawstack.codec.ethernet import ETH_P_CHAO
    from rawstack.sockets.link import open_link

    seq = int.from_bytes(os.urandom(2), "big")
    sock = open_link(ifname, ETH_P_CHAO)
    try:
        frame = bytes.fromhex(dst_mac.replace(":", "")) + sock.mac
        frame += ETH_P_CHAO.to_bytes(2, "big") + Chao(CHAO_REQUEST, seq, b"harness-probe").encode()
        start = time.monotonic()
        deadline = start + timeout
        sock.send(frame)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ProbeFailed(f"chao {dst_mac}: timed out")
            select.select([sock], [], [], left)
            for got in sock.recv_frames():
                if got[:6] != sock.mac:
                    continue
                with contextlib.suppress(Exception):
                    reply = Chao.decode(got[14:])
                    if reply.type == CHAO_REPLY and reply.seq == seq:
                        return time.monotonic() - start
    finally:
        sock.close()


def probe_here(peer: str, ifname: str, target: str, arg: str) -> float:
    """Run one probe from this process's own stack (what :func:`probe_argv` executes)."""
    from harness import probes

    if peer == "http":
        return probes.http_get(_Here(), target, int(arg))
    if peer == "udp":
        return probes.udp_echo(_Here(), target, int(arg))
    if peer == "icmp":
        return probes.icmp_echo(_Here(), target)
    if peer == "chao":
        return chao_probe(ifname, arg)
    raise ValueError(f"unknown peer {peer!r}")


def probe_main(argv: Sequence[str]) -> int:
    """``PEER IFNAME TARGET ARG``: print ``{"rtt": seconds}``, or one error line and exit 1."""
    from harness.probes import ProbeFailed
    from rawstack.errors import RawstackError

    peer, ifname, target, arg = argv
    try:
        rtt = probe_here(peer, ifname, target, arg)
    except (ProbeFailed, OSError, RawstackError) as exc:
        print(f"{peer} probe of {target}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"rtt": rtt}))
    return 0
