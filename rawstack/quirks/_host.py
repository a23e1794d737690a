"""Which quirk row describes the kernel we run on.

Precedence: the explicit arguments, then RAWSTACK_OS / RAWSTACK_OSREL, then detection
(``platform.system()``; FreeBSD's ``kern.osreldate`` from sysctl(8), as golang/net
``ipv4/sys_freebsd.go`` does with sysctlbyname). Detection is injectable so the unit tests
can play every kernel from a Linux box.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Callable

from rawstack.quirks._table import KernelQuirks, normalize_os, quirks_for

ENV_OS = "RAWSTACK_OS"
ENV_OSREL = "RAWSTACK_OSREL"

# platform.system() spellings that differ from our lower-case names.
_SYSTEM_NAMES = {"dragonflybsd": "dragonfly", "dragonfly": "dragonfly"}


def read_osreldate() -> int:
    """FreeBSD's ``kern.osreldate`` through sysctl(8)."""
    # Imported here, not at the top: only FreeBSD detection needs it, and every raw peer's
    # start-up imports this module.
    import subprocess

    try:
        out = subprocess.run(
            ["sysctl", "-n", "kern.osreldate"],
            capture_output=True,
            text=True,
            check=True,
            timeout=5,
        ).stdout
        return int(out.strip())
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise ValueError(
            f"cannot read kern.osreldate ({exc}); set {ENV_OSREL} to this host's value"
        ) from exc


def _parse_osrel(text: str, source: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{source} must be an integer kern.osreldate, not {text!r}") from None


def host_quirks(
    override_os: str | None = None,
    override_osrel: int | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    system: Callable[[], str] | None = None,
    osreldate: Callable[[], int] | None = None,
) -> KernelQuirks:
    """The quirk row for this host, or for the overrides / environment when given.

    ``environ``, ``system`` and ``osreldate`` default to ``os.environ``,
    ``platform.system`` and :func:`read_osreldate`; kern.osreldate is read only when the
    host itself was detected as FreeBSD. ValueError on an OS not in the table.
    """
    env = os.environ if environ is None else environ
    name = override_os or env.get(ENV_OS) or None
    detected = name is None
    if name is None:
        if system is None:
            import platform  # see read_osreldate: kept off the start-up path

            system = platform.system
        system_name = system()
        name = _SYSTEM_NAMES.get(system_name.lower(), system_name)
    name = normalize_os(name)
    osrel = override_osrel
    # RAWSTACK_OSREL is read for FreeBSD only, so exporting it once does not break
    # lookups for other kernels; an explicit override_osrel is always checked.
    if osrel is None and name == "freebsd" and env.get(ENV_OSREL):
        osrel = _parse_osrel(env[ENV_OSREL], ENV_OSREL)
    if osrel is None and name == "freebsd" and detected:
        osrel = (osreldate or read_osreldate)()
    return quirks_for(name, osrel)
