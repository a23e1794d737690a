"""FreeBSD teardown after TCP traffic, against a model of the kernel's jails and epairs.

:class:`FakeFreeBSD` answers the commands the backend runs the way FreeBSD does, as far as
teardown is concerned: ``ifconfig epair create`` makes ``epairNa``/``epairNb``, ``ifconfig X
vnet J`` moves an end into a jail's vnet, destroying one end destroys both wherever the other
is, ``jexec`` works only in a live jail, and ``jail -r`` of a jail whose TCP sockets linger
(TIME_WAIT after an HTTP exchange) leaves it dying: its vnet, and every interface still in
it, stays until :meth:`FakeFreeBSD.time_passes`, when the interfaces come back to the host
under the names they carry (``vnet_if_return`` in sys/net/if.c). Unknown names fail as
ifconfig(8) does: "interface X does not exist".
"""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness import cli
from rawstack_harness.backends import select_backend
from rawstack_harness.backends.freebsd import (
    RETURNING,
    FreeBSDRun,
    build,
    host_ifname,
    reap_dead_runs,
    reap_returned_epairs,
    runs,
)
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology import line3, pair

HOST = ""  # the host's vnet


@dataclass
class Iface:
    name: str
    vnet: str
    pair: int  # both ends of an epair share it
    home: str = HOST  # where it was created: a jail's own lo0 dies with the jail


@dataclass
class FakeFreeBSD:
    """Stands in for subprocess.run: a host, its jails (alive or dying) and epairs."""

    ifaces: list[Iface] = field(default_factory=list)
    jails: dict[str, str] = field(default_factory=dict)  # name -> "alive" | "dying"
    lingering: set[str] = field(default_factory=set)  # jails with TCP sockets in teardown
    calls: list[list[str]] = field(default_factory=list)
    refuse: set[tuple[str, ...]] = field(default_factory=set)  # argv that fail ("busy")
    _units: itertools.count[int] = field(default_factory=itertools.count)

    def __call__(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        if tuple(argv) in self.refuse:
            return subprocess.CompletedProcess(argv, 1, "", "ifconfig: SIOCIFDESTROY: busy\n")
        try:
            out = self._run(argv, HOST)
        except LookupError as exc:
            return subprocess.CompletedProcess(argv, 1, "", f"{exc.args[0]}\n")
        return subprocess.CompletedProcess(argv, 0, out, "")

    # -- the commands ------------------------------------------------------------------
    def _run(self, argv: list[str], vnet: str) -> str:
        cmd, args = argv[0], argv[1:]
        if cmd == "jexec":
            if self.jails.get(args[0]) != "alive":
                raise LookupError(f'jexec: jail "{args[0]}" not found')
            return self._run(args[1:], args[0])
        if cmd == "jail" and args[0] == "-c":
            jail = args[1][len("name=") :]
            self.jails[jail] = "alive"
            self.ifaces.append(Iface("lo0", jail, -1 - len(self.jails), home=jail))
            return ""
        if cmd == "jail" and args[0] == "-r":
            return self._remove(args[1])
        if cmd == "jls":
            listed = [j for j, state in self.jails.items() if state == "alive" or "-d" in args]
            return "\n".join(listed)
        if cmd == "ifconfig":
            return self._ifconfig(args, vnet)
        if cmd in ("sysctl", "route"):
            return ""
        raise AssertionError(f"the backend ran an unexpected command: {argv}")

    def _ifconfig(self, args: list[str], vnet: str) -> str:
        if args == ["-l"]:
            return " ".join(i.name for i in self.ifaces if i.vnet == vnet) + "\n"
        if args == ["epair", "create"]:
            unit = next(self._units)
            self.ifaces += [Iface(f"epair{unit}{s}", HOST, unit) for s in "ab"]
            return f"epair{unit}a\n"
        iface = self._find(args[0], vnet)
        if args[1:] == ["destroy"]:  # one end takes the other with it, wherever it is
            self.ifaces = [i for i in self.ifaces if i.pair != iface.pair]
        elif args[1] == "name":
            iface.name = args[2]
        elif args[1] == "vnet":
            assert self.jails.get(args[2]) == "alive", args
            iface.vnet = args[2]
        return ""

    def _find(self, name: str, vnet: str) -> Iface:
        for iface in self.ifaces:
            if iface.name == name and iface.vnet == vnet:
                return iface
        raise LookupError(f"ifconfig: interface {name} does not exist")

    def _remove(self, jail: str) -> str:
        if self.jails.get(jail) != "alive":
            raise LookupError(f'jail: "{jail}" not found')
        if jail in self.lingering:
            self.jails[jail] = "dying"  # its vnet, and what is in it, outlives jail -r
        else:
            self._dies(jail)
        return ""

    def _dies(self, jail: str) -> None:
        """The vnet goes: its own interfaces with it, moved-in ones back to the host."""
        del self.jails[jail]
        self.ifaces = [i for i in self.ifaces if i.home != jail]
        for iface in self.ifaces:
            if iface.vnet == jail:
                iface.vnet = HOST

    # -- what the tests do -------------------------------------------------------------
    def carry_tcp(self, *jails: str) -> None:
        """An exchange over TCP: the sockets' teardown keeps each jail's vnet referenced."""
        self.lingering.update(jails)

    def time_passes(self) -> None:
        """The lingering sockets close: dying jails die and hand their interfaces back."""
        self.lingering.clear()
        for jail, state in list(self.jails.items()):
            if state == "dying":
                self._dies(jail)

    def host_ifnames(self) -> list[str]:
        return sorted(i.name for i in self.ifaces if i.vnet == HOST)

    def epairs(self) -> list[str]:
        """Every epair end left anywhere (host, live or dying jail), by its current name."""
        return sorted(i.name for i in self.ifaces if i.home == HOST)


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> FakeFreeBSD:
    """Every command the backend runs goes to a fresh :class:`FakeFreeBSD`."""
    fake = FakeFreeBSD()
    monkeypatch.setattr(runs, "missing_requirement", lambda: None)
    monkeypatch.setattr(subprocess, "run", fake)
    return fake


def _index(calls: list[list[str]], argv: list[str]) -> int:
    return calls.index(argv)


def _pair_whose_in_jail_destroy_fails(
    root: Path, kernel: FakeFreeBSD
) -> tuple[FreeBSDRun, str, str, str]:
    """A built pair whose a end refuses ``ifconfig eth0 destroy`` in its jail:
    (run, jail a, host-side name of end a, of end b)."""
    run = FreeBSDRun(str(root))
    net = build(pair(), run)
    ja = net.jail("a")
    kernel.refuse.add(("jexec", ja, "ifconfig", "eth0", "destroy"))
    names = host_ifname(net.plan.run_id, 0, "a"), host_ifname(net.plan.run_id, 0, "b")
    return run, ja, *names


def test_teardown_after_tcp_destroys_in_the_jail_first_and_leaves_nothing(
    tmp_path: Path, kernel: FakeFreeBSD
) -> None:
    run = FreeBSDRun(str(tmp_path))
    net = build(pair(), run)
    ja, jb = net.jail("a"), net.jail("b")
    assert kernel.host_ifnames() == []  # both ends are in the jails, as eth0
    kernel.carry_tcp(ja, jb)  # an HTTP exchange: TIME_WAIT on both sides
    kernel.calls.clear()
    run.close()
    calls = kernel.calls
    in_jail = ["jexec", ja, "ifconfig", "eth0", "destroy"]
    assert calls[0] == in_jail
    assert _index(calls, in_jail) < _index(calls, ["jail", "-r", ja])
    assert _index(calls, in_jail) < _index(calls, ["jail", "-r", jb])
    assert kernel.epairs() == []  # gone at once, though both jails are still dying
    assert kernel.jails == {ja: "dying", jb: "dying"}
    assert not (tmp_path / RETURNING).exists()  # so nothing is left for the reaper to await
    kernel.time_passes()
    assert kernel.epairs() == []  # the dying jails had nothing left to hand back
    assert kernel.jails == {}
    assert reap_dead_runs(str(tmp_path)) == []
    assert reap_returned_epairs(str(tmp_path)) == []


def test_line3_after_tcp_leaves_nothing(tmp_path: Path, kernel: FakeFreeBSD) -> None:
    run = FreeBSDRun(str(tmp_path))
    net = build(line3(), run)
    kernel.carry_tcp(*(net.jail(n) for n in ("a", "r", "b")))
    run.close()
    kernel.time_passes()
    assert kernel.epairs() == []


def test_epairs_a_dying_jail_returns_are_reaped(
    tmp_path: Path, kernel: FakeFreeBSD, monkeypatch: pytest.MonkeyPatch
) -> None:
    run, ja, a_name, b_name = _pair_whose_in_jail_destroy_fails(tmp_path, kernel)
    kernel.carry_tcp(ja, ja.replace("_a", "_b"))
    run.close()
    assert kernel.host_ifnames() == []  # still in the dying jails' vnets
    ledger = tmp_path / RETURNING
    assert sorted(p.name for p in ledger.iterdir()) == [a_name, b_name]
    assert reap_returned_epairs(str(tmp_path)) == []  # nothing back yet: records kept
    assert sorted(p.name for p in ledger.iterdir()) == [a_name, b_name]
    kernel.time_passes()
    # Renamed before jail -r, so they come back under run-unique names, not as two eth0.
    assert kernel.host_ifnames() == [a_name, b_name]
    freebsd_backend = select_backend("freebsd")
    monkeypatch.setattr(cli, "_backend", lambda: freebsd_backend)
    monkeypatch.setattr(cli, "_need_root", lambda: None)
    assert cli.main(["--run-dir", str(tmp_path), "clean"]) == 0
    assert kernel.epairs() == []
    assert ["ifconfig", a_name, "destroy"] in kernel.calls
    assert list(ledger.iterdir()) == []


def test_records_of_jails_that_died_without_returning_anything_are_dropped(
    tmp_path: Path, kernel: FakeFreeBSD
) -> None:
    run, ja, a_name, b_name = _pair_whose_in_jail_destroy_fails(tmp_path, kernel)
    kernel.carry_tcp(ja)  # only a lingers: b dies at once and hands its end back
    run.close()
    # The host-side fallback destroyed the returned b end, and a with it (in the dying jail).
    assert kernel.epairs() == []
    ledger = tmp_path / RETURNING
    assert [p.name for p in ledger.iterdir()] == [a_name]  # a's jail could still return it
    assert ["ifconfig", b_name, "destroy"] in kernel.calls
    kernel.time_passes()
    kernel.calls.clear()
    assert reap_returned_epairs(str(tmp_path)) == []
    assert list(ledger.iterdir()) == []  # its jail is gone and it never came back
    assert not any(c[-1] == "destroy" for c in kernel.calls)  # nothing that is not ours


def test_a_host_side_destroy_that_fails_is_reported_after_every_step(
    tmp_path: Path, kernel: FakeFreeBSD
) -> None:
    run, ja, a_name, b_name = _pair_whose_in_jail_destroy_fails(tmp_path, kernel)
    kernel.refuse.add(("ifconfig", a_name, "destroy"))
    kernel.refuse.add(("ifconfig", b_name, "destroy"))
    with pytest.raises(
        HarnessError,
        match=rf"ifconfig {a_name} destroy: ifconfig: SIOCIFDESTROY: busy; ifconfig {b_name} ",
    ):
        run.close()
    assert ["jail", "-r", ja.replace("_a", "_b")] in kernel.calls  # every step ran first
    assert run.networks == []
    assert list(tmp_path.iterdir()) == []
    assert kernel.host_ifnames() == [a_name, b_name]  # the leak the error names
