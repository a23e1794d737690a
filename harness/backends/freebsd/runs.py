"""Run bookkeeping for the FreeBSD backend: locked run directories, dead-run cleanup, status.

Like the Linux backend, every run (a process's :class:`FreeBSDRun`, and each network built
in it) owns a directory under ``DEFAULT_ROOT`` with a ``lock`` held (flock) for its lifetime.
A network writes its teardown list (plus the captured epair names) there *before* anything
is created, so :func:`reap_dead_runs` can remove the jails and epairs of a run whose owner
died, and never those of a live run. There is no reaper process: dead runs go at the next
run's start or at ``netns-harness clean``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from rawstack_harness.backends.common import locked_run_dir
from rawstack_harness.backends.freebsd.planning import RUN_ID_RE, Step, substitute
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


def run_teardown(steps: Sequence[Step], captured: Mapping[str, str]) -> None:
    """Every step whose placeholders are known, ignoring failures (best effort)."""
    for step in steps:
        argv = substitute(step.argv, captured)
        if argv is not None:
            subprocess.run(argv, capture_output=True, timeout=60, check=False)


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
        try:
            for net in reversed(self.networks):
                net.destroy()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            os.close(self._lock)


def _run_dirs(root: str) -> list[Path]:
    """Run directories under ``root`` (sorted); dot-names are being created, so skipped."""
    try:
        return [d for d in sorted(Path(root).iterdir()) if RUN_ID_RE.match(d.name)]
    except FileNotFoundError:
        return []


def reap_dead_runs(root: str = DEFAULT_ROOT) -> list[str]:
    """Tear down runs whose lock is free (their owner is gone); return their ids."""
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
            run_teardown(steps, state.get("captured", {}))
        except (OSError, ValueError, KeyError):
            pass  # nothing recorded means nothing was created
        shutil.rmtree(run_dir, ignore_errors=True)
        os.close(fd)
        reaped.append(run_dir.name)
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
