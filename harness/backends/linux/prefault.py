"""Copy-on-write faults taken ahead: a spare copies the pages its peer's start will write.

Theory of operation: a child forked from the warm peer host shares all of the host's
memory until it writes to a page; each first write is a fault that copies the page (~3.5 us
on this kind of virtual machine), and a peer's start and first exchanges write ~1,000 of
them (reference counts, the specialising interpreter's inline caches, allocator state) in
the middle of the spawn a test waits for. Which pages is the same every time, because every
child starts from the same frozen host. So the host learns it once: it forks a *scout*
that runs the host's rehearsal (:mod:`.rehearsal`) and reads its own ``/proc/self/pagemap``:
the pages of the private writable mappings it had at fork that are now mapped only by it
(``PM_MMAP_EXCLUSIVE``, bit 56: the ones it copied). Every spare forked later asks the
kernel to copy just those pages at once (``madvise(MADV_POPULATE_WRITE)``, Linux 5.14),
while it waits for its assignment: one system call per run of pages, no fault each, and no
Python run. The pages are ones the peer would have copied anyway, so a peer's memory does
not grow; a page the spare's peer never writes costs 4 KiB.

Where the kernel lacks what this needs (no pagemap flags, no ``MADV_POPULATE_WRITE``),
nothing is learned or populated: a spare then takes the faults as before. Nothing here
raises; only speed is at stake.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import struct
from collections.abc import Callable, Sequence

PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096
MADV_POPULATE_WRITE = 23  # include/uapi/asm-generic/mman-common.h (Linux 5.14)
PM_PRESENT = 1 << 63
PM_MMAP_EXCLUSIVE = 1 << 56  # Documentation/admin-guide/mm/pagemap.rst
MAX_RANGES = 1 << 16  # what a scout may report (a heap is far smaller)

Ranges = list[tuple[int, int]]  # (start address, length in bytes), page-aligned


def private_writable(maps_text: str) -> Ranges:
    """The private writable mappings in ``/proc/<pid>/maps`` text: ``(start, length)``."""
    found = []
    for line in maps_text.splitlines():
        fields = line.split()
        if len(fields) < 2 or not fields[1].startswith("rw") or fields[1][3:4] != "p":
            continue
        name = fields[5] if len(fields) > 5 else ""
        if name in ("[stack]", "[vvar]", "[vdso]", "[vsyscall]"):
            continue  # each process's own, never shared with the host
        start, end = (int(x, 16) for x in fields[0].split("-"))
        found.append((start, end - start))
    return found


def exclusive_runs(entries: Sequence[int], start: int) -> Ranges:
    """Runs of consecutive pages whose pagemap ``entries`` (from page ``start``) are present
    and mapped only by this process: ``(address, length)``."""
    runs: Ranges = []
    flags = PM_PRESENT | PM_MMAP_EXCLUSIVE
    run_start = -1
    for i, entry in enumerate(entries):
        if entry & flags == flags:
            if run_start < 0:
                run_start = i
            continue
        if run_start >= 0:
            runs.append((start + run_start * PAGE, (i - run_start) * PAGE))
            run_start = -1
    if run_start >= 0:
        runs.append((start + run_start * PAGE, (len(entries) - run_start) * PAGE))
    return runs


def copied_pages(mappings: Ranges) -> Ranges:
    """The pages of ``mappings`` this process has copied (or first touched) since its fork."""
    runs: Ranges = []
    with open("/proc/self/pagemap", "rb", buffering=0) as pagemap:
        for start, length in mappings:
            count = length // PAGE
            pagemap.seek(start // PAGE * 8)
            data = pagemap.read(count * 8)
            entries = struct.unpack(f"={len(data) // 8}Q", data[: len(data) // 8 * 8])
            runs += exclusive_runs(entries, start)
    return runs


def learn(exercise: Callable[[], object], timeout: float = 5.0) -> Ranges:
    """Fork a scout that runs ``exercise``; the pages it copied (empty if that fails).

    Call it from the process the spares will be forked from, in the state they start in.
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the scout: never returns
        code = 1
        try:
            os.close(read_fd)
            with open("/proc/self/maps", encoding="ascii") as fh:
                mappings = private_writable(fh.read())
            exercise()
            runs = copied_pages(mappings)[:MAX_RANGES]
            data = struct.pack(f"={2 * len(runs)}Q", *(x for run in runs for x in run))
            while data:
                data = data[os.write(write_fd, data) :]
            code = 0
        except BaseException:  # only speed is at stake: report nothing
            pass
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    try:
        while select.select([read_fd], [], [], timeout)[0]:
            chunk = os.read(read_fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(read_fd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)  # done (or stuck): either way it goes now
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    data = b"".join(chunks)
    values = struct.unpack(f"={len(data) // 8}Q", data[: len(data) // 16 * 16])
    return list(zip(values[0::2], values[1::2]))


def populate(libc: ctypes.CDLL, runs: Ranges) -> int:
    """Copy the pages of ``runs`` now (``MADV_POPULATE_WRITE``); how many bytes were asked.

    A run the kernel refuses (unmapped since, or an older kernel: ``EINVAL``) is skipped;
    at the first ``EINVAL`` the rest are too.
    """
    done = 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    for start, length in runs:
        if madvise(start, length, MADV_POPULATE_WRITE) == 0:
            done += length
        elif ctypes.get_errno() == 22:  # EINVAL: the kernel has no such advice
            break
    return done
