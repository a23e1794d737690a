"""Copy-on-write prefaulting (harness/backends/linux/prefault.py): its pure parts here, and,
where the kernel has them (Linux: pagemap flags, MADV_POPULATE_WRITE), learn + populate for
real in forked children of this process (no root needed)."""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import resource
import sys

import pytest

# A module of the Linux backend, but pure Python: importable everywhere.
from rawstack_harness.backends.linux import prefault

PAGE = prefault.PAGE
MAPS = """\
55d0c0000000-55d0c0021000 r--p 00000000 08:01 123 /usr/bin/python3.11
55d0c0400000-55d0c0402000 rw-p 00400000 08:01 123 /usr/bin/python3.11
55d0c1000000-55d0c1100000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000040000 rw-s 00000000 00:05 9 /dev/zero (deleted)
7f0000100000-7f0000180000 rw-p 00000000 00:00 0
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0 [stack]
7ffc00100000-7ffc00102000 r-xp 00000000 00:00 0 [vdso]
"""


def test_private_writable_keeps_private_rw_mappings_but_the_stack() -> None:
    assert prefault.private_writable(MAPS) == [
        (0x55D0C0400000, 0x2000),
        (0x55D0C1000000, 0x100000),
        (0x7F0000100000, 0x80000),
    ]


def test_exclusive_runs_joins_consecutive_copied_pages() -> None:
    copied = prefault.PM_PRESENT | prefault.PM_MMAP_EXCLUSIVE
    shared = prefault.PM_PRESENT
    entries = [copied, copied, shared, 0, copied, prefault.PM_MMAP_EXCLUSIVE, copied, copied]
    base = 0x10000 * PAGE
    assert prefault.exclusive_runs(entries, base) == [
        (base, 2 * PAGE),
        (base + 4 * PAGE, PAGE),
        (base + 6 * PAGE, 2 * PAGE),  # a run to the end of the mapping
    ]
    assert prefault.exclusive_runs([], base) == []


def _kernel_at_least(major: int, minor: int) -> bool:
    try:
        got = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return got >= (major, minor)


linux_5_14 = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _kernel_at_least(5, 14),
    reason="needs Linux >= 5.14 (pagemap flags, MADV_POPULATE_WRITE)",
)


def _in_child(fn: object) -> int:
    """Run ``fn()`` (an int) in a forked child; its result through a pipe."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write_fd, str(fn()).encode())  # type: ignore[operator]
        finally:
            os._exit(0)
    os.close(write_fd)
    try:
        data = os.read(read_fd, 64)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    return int(data)


@linux_5_14
def test_learn_finds_the_pages_a_child_writes_and_populate_takes_their_faults_first() -> None:
    pages = 256
    buf = mmap.mmap(-1, pages * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(pages):
        buf[i * PAGE] = 1  # present, and shared with every child forked from now on

    def write_half() -> None:
        for i in range(0, pages, 2):
            buf[i * PAGE] = 2

    base = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    written = [(base + i * PAGE, PAGE) for i in range(0, pages, 2)]
    # Up to three scouts: once in a fresh Debian root, under load, one reported every
    # written page but the first, as if that page had been in flight (a page being
    # migrated shows in pagemap as not present). A learn that is wrong is wrong each time.
    for _ in range(3):
        runs = prefault.learn(write_half)
        inside = [(a, n) for a, n in runs if base <= a < base + pages * PAGE]
        if inside == written:
            break
    assert inside == written

    def faults_of_writing_half(first: bool) -> int:
        if first:
            prefault.populate(ctypes.CDLL(None, use_errno=True), inside)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        write_half()
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    assert _in_child(lambda: faults_of_writing_half(False)) >= pages // 2  # one a page
    assert _in_child(lambda: faults_of_writing_half(True)) < pages // 8  # a few of Python's


def test_learn_gives_nothing_when_the_exercise_fails() -> None:
    if not hasattr(os, "fork") or not os.path.exists("/proc/self/pagemap"):
        pytest.skip("needs fork and /proc/self/pagemap")

    def boom() -> None:
        raise RuntimeError("no")

    assert prefault.learn(boom) == []
