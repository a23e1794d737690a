#!/usr/bin/env python3
"""Run what the ``bsd`` and ``darwin`` tox envs run, here, shaped like FreeBSD and macOS.

Theory of operation: neither kernel is reachable from Linux CI, but two things that stop a
FreeBSD or macOS run before or while it runs can be reproduced on Linux: a dependency that
pyproject installs on Linux only being absent (pyroute2), and code, module-level checks and
skip markers that branch on ``sys.platform``. For each target this script

1. derives the absent modules from rawstack's installed requirements: each requirement
   whose environment marker holds here but not on the target (``sys_platform`` and
   ``platform_system`` as CPython reports them there) is absent by its top-level modules;
2. takes the test list from tox.ini (the ``{posargs:...}`` default of ``[testenv:bsd]`` or
   ``[testenv:darwin]``), so there is one definition of what those envs run;
3. checks that the shape took (a shaped child reports its ``sys.platform`` and fails to
   import each absent module), then runs pytest over the list with ``ci/shape`` first on
   ``PYTHONPATH``: its ``sitecustomize`` shapes every Python process of the run. The
   targets' runs go at once, and their output is printed one after the other.

What stays Linux: the kernel (``os.uname()``, ``platform.system()``, the quirk row it
selects) and root. Tests that need a BSD kernel skip with the reason the code gives on such
a machine without one (e.g. the FreeBSD backend's "kernel lacks VIMAGE"). As root the run is
inside a private network namespace (``unshare --net``, loopback brought up), because the
kernel quirk tests send on loopback in-process when ``sys.platform`` is not Linux.

    python ci/shaped.py [--target freebsd|darwin]... [PYTEST OPTIONS...] [-- TESTS...]

(``-- TESTS`` replaces the env's list, as ``tox -e bsd -- TESTS`` does.)

Exit 0 when every target passed, 1 when one failed (or its shape did not take), 2 on usage.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SHAPE_DIR = ROOT / "ci" / "shape"
DIST = "rawstack"
EXTRAS = ("", "test")  # what the tox envs install: the package and its test extra
# Third-party modules that bind the C library by sys.platform while they load (scapy's
# BSD arch module binds sysctl(3)); they load seeing the real platform (ci/shape).
NATIVE = ("scapy",)


@dataclass(frozen=True)
class Target:
    """One OS to look like: its tox env, and the marker values CPython has there."""

    name: str
    tox_env: str
    sys_platform: str
    platform_system: str


TARGETS = {
    "freebsd": Target("freebsd", "bsd", "freebsd14", "FreeBSD"),
    "darwin": Target("darwin", "darwin", "darwin", "Darwin"),
}


def _installs(req: Requirement, environment: Mapping[str, str]) -> bool:
    """Whether pip installs ``req`` for the package with its test extra in ``environment``."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**environment, "extra": extra}) for extra in EXTRAS)


def absent_distributions(target: Target, requires: Sequence[str] | None = None) -> list[str]:
    """Requirements installed here but not on ``target`` (by their markers)."""
    found = metadata.requires(DIST) if requires is None else requires
    target_env = {"sys_platform": target.sys_platform, "platform_system": target.platform_system}
    absent = []
    for line in found or ():
        req = Requirement(line)
        if _installs(req, {}) and not _installs(req, target_env):
            absent.append(req.name)
    return absent


def top_level_modules(dist_name: str) -> list[str]:
    """The importable top-level names a distribution installs (from top_level.txt or RECORD)."""
    dist = metadata.distribution(dist_name)
    listed = (dist.read_text("top_level.txt") or "").split()
    if listed:
        return listed
    names = set()
    for f in dist.files or ():
        first = f.parts[0]
        if first.endswith((".dist-info", ".data")) or first in ("..", "__pycache__"):
            continue
        names.add(first[: -len(".py")] if first.endswith(".py") else first)
    return sorted(names)


def tox_test_list(env: str, tox_ini: Path = ROOT / "tox.ini") -> list[str]:
    """The default test list (``{posargs:...}``) of ``[testenv:ENV]``'s commands."""
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(tox_ini, encoding="utf-8")
    commands = ini.get(f"testenv:{env}", "commands")
    found = re.search(r"\{posargs:([^}]*)\}", commands)
    if found is None:
        raise ValueError(f"{tox_ini}: [testenv:{env}] commands have no {{posargs:...}} list")
    return found.group(1).split()


def shaped_environ(target: Target, absent: Sequence[str]) -> dict[str, str]:
    """This process's environment plus what makes a child Python look like ``target``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SHAPE_DIR), env.get("PYTHONPATH")) if p)
    env["RAWSTACK_SHAPE_PLATFORM"] = target.sys_platform
    env["RAWSTACK_SHAPE_ABSENT"] = ",".join(absent)
    env["RAWSTACK_SHAPE_NATIVE"] = ",".join(NATIVE)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


_PROBE = """
import importlib, json, sys
absent = {}
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
        absent[name] = False
    except ModuleNotFoundError:
        absent[name] = True
print(json.dumps({"platform": sys.platform, "absent": absent}))
"""


def shape_problems(target: Target, absent: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """What a shaped child says is not as ``target`` would have it (empty: the shape took)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *absent],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        return [f"the shaped interpreter failed: {done.stderr.strip()}"]
    seen = json.loads(done.stdout)
    problems = []
    if seen["platform"] != target.sys_platform:
        problems.append(f"sys.platform is {seen['platform']!r}, not {target.sys_platform!r}")
    problems += [f"{name} is importable" for name, gone in seen["absent"].items() if not gone]
    return problems


def _private_network(argv: list[str]) -> list[str]:
    """``argv`` in a fresh network namespace with loopback up, when root on Linux can."""
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        return argv
    wrapped = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
    if not shutil.which("unshare") or not shutil.which("ip"):
        return argv
    try:
        probe = subprocess.run([*wrapped, "true"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return argv
    # Without CAP_SYS_ADMIN (an unprivileged container) it runs on the host's loopback.
    return [*wrapped, *argv] if probe.returncode == 0 else argv


def start_target(
    target: Target, pytest_args: Sequence[str], tests: Sequence[str] | None = None
) -> tuple[list[str], subprocess.Popen[bytes] | None]:
    """Check the shape, then start pytest over the target's list (output to a pipe).

    Returns the absent modules and the process: None, with the reason on stderr, when the
    shape did not take."""
    modules = [m for d in absent_distributions(target) for m in top_level_modules(d)]
    env = shaped_environ(target, modules)
    problems = shape_problems(target, modules, env)
    if problems:
        print(f"ci/shaped.py: the {target.name} shape did not take: {'; '.join(problems)}",
              file=sys.stderr)
        return modules, None
    artifacts = Path(os.environ.get("RAWSTACK_CI_ARTIFACTS", ROOT / ".ci-artifacts"))
    argv = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
        f"--junitxml={artifacts / f'junit-shaped-{target.name}.xml'}",
        *pytest_args, *(tox_test_list(target.tox_env) if tests is None else tests),
    ]
    return modules, subprocess.Popen(
        _private_network(argv), env=env, cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--target", action="append", choices=sorted(TARGETS),
        help="the OS to look like (repeatable; default: all)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    # After "--": tests to run instead of the env's list, as `tox -e bsd -- ARGS` does.
    tests = argv[argv.index("--") + 1 :] if "--" in argv else None
    args, pytest_args = parser.parse_known_args(argv[: argv.index("--")] if tests else argv)
    names = args.target or sorted(TARGETS, reverse=True)
    # The targets run at once, one pytest process each: on two cores that beats each
    # in turn with xdist workers (which collect the whole list again per worker).
    started = {name: start_target(TARGETS[name], pytest_args, tests) for name in names}
    failed = []
    for name, (modules, proc) in started.items():
        target = TARGETS[name]
        print(f"== shaped like {name}: sys.platform={target.sys_platform}, "
              f"absent: {', '.join(modules) or 'nothing'}; tox env {target.tox_env}", flush=True)
        if proc is None:
            failed.append(name)
            continue
        out, _ = proc.communicate()
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        if proc.returncode != 0:
            print(f"ci/shaped.py: {name}-shaped run failed (exit {proc.returncode})",
                  file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
