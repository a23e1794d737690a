"""What machine the figures come from: CPU, cores, memory, kernel, Python, tools, date."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Sequence


def cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` in /proc/cpuinfo text (x86), else ``Hardware``/``cpu`` lines."""
    for key in ("model name", "Hardware", "cpu model", "cpu"):
        match = re.search(rf"^{re.escape(key)}\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
        if match:
            return match.group(1).strip()
    return platform.processor() or "unknown"


def meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as {field: kibibytes}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[name.strip()] = int(parts[0])
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return ""


def tool_version(argv: Sequence[str], contains: str = "") -> str:
    """The first line of a tool's version output containing ``contains``."""
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [x.strip() for x in (done.stdout + done.stderr).splitlines() if contains in x]
    return lines[0] if lines else "unknown"


def git_revision(root: str) -> str:
    """HEAD and whether the tree had local changes (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "-C", root, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head} (with uncommitted changes)" if dirty else head


def machine_info(root: str = ".") -> dict[str, str]:
    """Everything the report states about the machine, in display order."""
    mem = meminfo(_read("/proc/meminfo"))
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return {
        "date (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "CPU": cpu_model(_read("/proc/cpuinfo")),
        "cores": f"{os.cpu_count()} online, {usable} usable by this run",
        "memory": f"{mem.get('MemTotal', 0) / 1048576:.1f} GiB",
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "load average at start": load,
        "rawstack revision": git_revision(root),
        "wrk": tool_version(["wrk", "-v"]),
        "nginx": tool_version(["nginx", "-v"]),
        "socat": tool_version(["socat", "-V"], "socat version"),
        "ping": tool_version(["ping", "-V"]),
    }
