"""Root or rootless: which mode a run uses, and entering the rootless one.

Theory of operation: in *root* mode the harness works in the host's namespaces as it always
did (topologies visible to ``ip netns``). In *rootless* mode the run first enters a user
namespace of its own (:mod:`.userns`) and a pid namespace tied to the process the user
started (:mod:`.pidinit`), where it is root, and from then on the same backend code builds
the same topologies inside it. ``auto`` (the default) picks root mode when this process
already has CAP_NET_ADMIN and CAP_SYS_ADMIN, rootless mode otherwise. A process that is
already inside a rootless run (an xdist worker, a pytester subprocess, a peer) uses it.

:func:`begin` must run while the process is single-threaded: pytest calls it from the
plugin's ``pytest_configure``, ``netns-harness`` before its command, the keeper first thing.
When the kernel refuses, :func:`begin` keeps the one-line reason, which
:func:`rawstack_harness.backends.linux.env.missing_requirement` then reports (fixtures skip,
commands exit 77).
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from rawstack_harness.backends.linux import env
from rawstack_harness.backends.linux.userns import Refused, inside_run
from rawstack_harness.errors import HarnessError

MODES = ("auto", "root", "rootless")
ROOT, ROOTLESS = "root", "rootless"

# The mode a process asked for; children (the keeper ``up`` starts) inherit it.
ENV_MODE = "RAWSTACK_HARNESS_NETNS_MODE"

class _State:
    refusal: str | None = None  # why this process could not enter rootless mode


_STATE = _State()


def requested() -> str:
    """The mode this process was asked for (``--netns-mode``, inherited), default auto."""
    mode = os.environ.get(ENV_MODE, "auto")
    return mode if mode in MODES else "auto"


def resolve(mode: str | None = None) -> str:
    """``root`` or ``rootless`` for a requested mode (``auto`` looks at our capabilities)."""
    if mode is None:
        mode = requested()
    if mode not in MODES:
        raise ValueError(f"{mode!r} is not one of {'|'.join(MODES)}")
    if mode != "auto":
        return mode
    if inside_run():
        return ROOTLESS
    return ROOT if env.has_admin_caps() else ROOTLESS


def begin(mode: str, own: bool = False) -> str:
    """Enter rootless mode if ``mode`` resolves to it (once); return the resolved mode.

    ``own``: start a run of our own even inside another rootless run (a keeper must not end
    with the process that started it; inside a rootless run it still ends with that run).

    A refusal is not raised: it is kept for :func:`refusal` (and so for
    ``missing_requirement``), so one line reaches the user as a skip or exit 77."""
    os.environ[ENV_MODE] = mode
    resolved = resolve(mode)
    if resolved != ROOTLESS or (inside_run() and not own):
        return resolved
    from rawstack_harness.backends.linux import pidinit, userns

    try:
        userns.enter()
        pidinit.begin()
    except Refused as exc:
        _STATE.refusal = str(exc)
    else:
        env.missing_requirement.cache_clear()
    return resolved


def refusal() -> str | None:
    """Why this process could not enter rootless mode (None if it did or never tried)."""
    return _STATE.refusal


def active() -> bool:
    """True in a process of a rootless run."""
    return inside_run()


def outer_pid() -> int | None:
    """The host pid whose ``/proc/PID/ns/*`` are this rootless run's namespaces."""
    from rawstack_harness.backends.linux.pidinit import ENV_OUTER

    value = os.environ.get(ENV_OUTER)
    return int(value) if value and inside_run() else None


def registry_dir() -> Path:
    """Where this user's rootless keepers are listed, outside any user namespace:
    ``$XDG_RUNTIME_DIR/rawstack-harness`` (bound back into every run), else
    ``/tmp/rawstack-harness-<uid>`` (the host's uid, read from our uid_map in a run)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        return Path(base, "rawstack-harness")
    return Path(tempfile.gettempdir(), f"rawstack-harness-{_host_uid()}")


def registry(path: Path | None = None, create: bool = False) -> Path:
    """:func:`registry_dir` (or ``path``), checked to be this user's directory; made 0700
    with ``create`` (a keeper; the last one out removes it)."""
    path = path or registry_dir()
    if create:
        path.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise HarnessError(f"{path} is not a directory of this user's: not using it")
    return path


def _host_uid() -> int:
    """The real uid on the host, also inside a run (where getuid() is 0)."""
    try:
        with open("/proc/self/uid_map", encoding="ascii") as fh:
            inside, outside, _count = fh.readline().split()
        return int(outside) if inside == "0" else os.getuid()
    except (OSError, ValueError):
        return os.getuid()
