"""Run bookkeeping for the FreeBSD backend: locked run directories, dead-run cleanup, status.

Like the Linux backend, every run (a process's :class:`FreeBSDRun`, and each network built
in it) owns a directory under ``DEFAULT_ROOT`` with a ``lock`` held (flock) for its lifetime.
A network writes its teardown list (plus the captured epair names) there *before* anything
is created, so :func:`reap_dead_runs` can remove the jails and epairs of a run whose owner
died, and never those of a live run. There is no reaper process: dead runs go at the next
run's start or at ``netns-harness clean``.

Teardown (:func:`finish_teardown`) runs every step, checks the checked ones, then, if an
epair was not destroyed inside its jail, asks ``jls -d`` which of the plan's jails are still
there (left dying by sockets in TCP teardown): each end such a jail may hold is recorded
under ``<root>/.returning/`` (one file per interface name, holding the jail's name), because
the jail hands it back to the host when it finally dies. :func:`reap_returned_epairs` (part
of :func:`reap_dead_runs`) destroys the recorded names that have appeared on the host and
forgets those whose jail is gone. Only recorded names are touched, so a live run's epair (in
this root or another) never is.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rawstack_harness.backends.common import locked_run_dir
from rawstack_harness.backends.freebsd.planning import GONE, RUN_ID_RE, Step, substitute
from rawstack_harness.errors import NotPrivileged

DEFAULT_ROOT = os.environ.get("RAWSTACK_HARNESS_RUN_DIR", "/var/run/rawstack-harness")


class _Destroyable(Protocol):
    """What a run needs of the networks built in it (a network knows its run, not back)."""

    def destroy(self) -> None: ...


def missing_requirement() -> str | None:
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


RETURNING = ".returning"  # under the root: interfaces a dying jail may still hand back


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)


@dataclass(frozen=True)
class TeardownOutcome:
    """What :func:`run_teardown` saw: checked steps' problems, names destroyed for good."""

    problems: tuple[str, ...] = ()
    disposed: frozenset[str] = frozenset()


def run_teardown(steps: Sequence[Step], captured: Mapping[str, str]) -> TeardownOutcome:
    """Run every step whose placeholders are known; report what the checked ones said.

    An unchecked step may fail (its work may be done already). A checked one must succeed
    or say the interface is already gone (:data:`~.planning.GONE`); anything else is a
    problem, one line each, reported after every step has run.
    """
    problems: list[str] = []
    disposed: set[str] = set()
    for step in steps:
        argv = substitute(step.argv, captured)
        if argv is None:
            continue
        done = _run(argv)
        if done.returncode == 0:
            disposed.update(step.disposes)
        elif step.checked and GONE not in (done.stderr or ""):
            why = (done.stderr or "").strip() or f"exit status {done.returncode}"
            problems.append(f"{' '.join(argv)}: {why}")
    return TeardownOutcome(tuple(problems), frozenset(disposed))


def _listed(argv: Sequence[str]) -> set[str] | None:
    """The words a listing command prints (``ifconfig -l``, ``jls -d name``), None on failure."""
    done = _run(argv)
    return set(done.stdout.split()) if done.returncode == 0 else None


def finish_teardown(
    root: str,
    steps: Sequence[Step],
    captured: Mapping[str, str],
    returnable: Sequence[Sequence[str]],
) -> list[str]:
    """:func:`run_teardown`, then record what jails left dying may still hand back.

    Returns the checked steps' problems. Recorded: each returnable name not destroyed for
    good, whose jail ``jls -d`` still lists (or all of them when jls cannot tell).
    """
    outcome = run_teardown(steps, captured)
    pending = [(j, name) for j, name in returnable if name not in outcome.disposed]
    if not pending:
        return list(outcome.problems)
    present = _listed(["jls", "-d", "name"])
    pending = [(j, name) for j, name in pending if present is None or j in present]
    if pending:
        ledger = Path(root) / RETURNING
        ledger.mkdir(mode=0o755, exist_ok=True)
        for jail, ifname in pending:
            (ledger / ifname).write_text(jail, encoding="utf-8")
    return list(outcome.problems)


def reap_returned_epairs(root: str = DEFAULT_ROOT) -> list[str]:
    """Destroy recorded interfaces that dying jails have handed back; return their names.

    A record is dropped once its interface is destroyed, or once its jail is gone from
    ``jls -d`` without the interface on the host (then it will never come back).
    """
    ledger = Path(root) / RETURNING
    try:
        records = {f.name: f.read_text(encoding="utf-8") for f in sorted(ledger.iterdir())}
    except FileNotFoundError:
        return []
    if not records:
        return []
    host, jails = _listed(["ifconfig", "-l"]), _listed(["jls", "-d", "name"])
    if host is None or jails is None:
        return []  # cannot tell: keep every record for the next time
    reaped: list[str] = []
    for ifname, jail in records.items():
        if ifname in host:
            done = _run(["ifconfig", ifname, "destroy"])
            if done.returncode != 0 and GONE not in done.stderr:
                continue  # keep it; the next clean tries again
            reaped.append(ifname)  # its other end went too: that record finds it GONE
        elif jail in jails:
            continue  # still dying: it may come back yet
        (ledger / ifname).unlink(missing_ok=True)
    return reaped


def new_run_dir(root: str) -> tuple[Path, int]:
    """A fresh ``<root>/<id>`` with its ``lock`` held: (directory, lock fd)."""
    return locked_run_dir(root)


def save_state(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state.json`` atomically: a cleaner never reads half of it."""
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, run_dir / "state.json")


class FreeBSDRun:
    """One process's run: a locked directory for peer logs, and the networks built in it.

    Its state lists nothing to tear down, so :func:`reap_dead_runs` just removes the
    directory of a dead owner; each network has its own directory and teardown list.
    """

    def __init__(self, root: str = DEFAULT_ROOT, label: str = "pytest") -> None:
        reason = missing_requirement()
        if reason:
            raise NotPrivileged(reason)
        self.root = root
        self.label = label
        reap_dead_runs(root)
        self.dir, self._lock = new_run_dir(root)
        self.id = self.dir.name
        save_state(self.dir, {"teardown": [], "label": label, "pid": os.getpid()})
        self.networks: list[_Destroyable] = []
        self.closed = False

    def close(self) -> None:
        """Destroy every network still up, then drop the directory."""
        if self.closed:
            return
        self.closed = True
        failures: list[BaseException] = []
        try:
            for net in reversed(list(self.networks)):
                try:
                    net.destroy()
                except Exception as exc:  # the others must go all the same
                    failures.append(exc)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock)
        if failures:
            raise failures[0]


def _run_dirs(root: str) -> list[Path]:
    """Run directories under ``root`` (sorted); dot-names are being created, so skipped."""
    try:
        return [d for d in sorted(Path(root).iterdir()) if RUN_ID_RE.match(d.name)]
    except FileNotFoundError:
        return []


def reap_dead_runs(root: str = DEFAULT_ROOT) -> list[str]:
    """Tear down runs whose lock is free (their owner is gone), then reap the epairs dying
    jails have handed back (:func:`reap_returned_epairs`); return the runs' ids."""
    reaped: list[str] = []
    for run_dir in _run_dirs(root):
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
            finish_teardown(root, steps, state.get("captured", {}), state.get("returnable", []))
        except (OSError, ValueError, KeyError):
            pass  # nothing recorded means nothing was created
        shutil.rmtree(run_dir, ignore_errors=True)
        os.close(fd)
        reaped.append(run_dir.name)
    reap_returned_epairs(root)
    return reaped


def describe_runs(root: str = DEFAULT_ROOT) -> list[dict[str, Any]]:
    """Every run directory under ``root``: id, label, pid, alive (lock held), jails."""
    runs: list[dict[str, Any]] = []
    for run_dir in _run_dirs(root):
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
