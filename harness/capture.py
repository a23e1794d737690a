"""Packet captures of a topology's links, kept in memory and written as pcap files on demand.

Theory of operation: :func:`start_capture` opens one ``AF_PACKET``/``SOCK_RAW`` socket per
link endpoint *inside* the endpoint's node (``node.socket()``), bound to that interface with
``ETH_P_ALL``, so each socket sees every frame the interface sends and receives, nothing else.
One daemon thread per process reads every capture's sockets through one epoll set, in
batches (after a read it pauses :data:`PAUSE`; a flood gets no pause); a stop or a sync drains
the sockets itself, in the caller's thread, so neither waits for the reader. The kernel
stamps each frame (``SO_TIMESTAMPNS``), so the times are the kernel's, not when a thread
got the GIL.
Frames go into a per-endpoint ring bounded in bytes: a long test keeps its last few MB, never
grows without limit. :meth:`Capture.write` turns the rings into classic pcap files
(:mod:`rawstack.codec.pcap`, Ethernet link type, nanosecond timestamps) that tshark, tcpdump
and Wireshark read.

:meth:`Capture.stop` must run before the topology is destroyed: an open socket holds a
reference to its namespace, so a forgotten one would keep the namespace alive. It takes the
sockets from the reader, drains what is queued, then closes them; the frames stay readable.

Limits: the kernel hands over VLAN tags out of band (``PACKET_AUXDATA``), so tagged frames
are written untagged; veth offloads mean TCP segments may be larger than the MTU and TCP/UDP
checksums of outgoing frames may be unfilled (Wireshark flags these only when asked to check).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import select
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rawstack_harness.probes import close_soon

from rawstack.codec.pcap import LINKTYPE_ETHERNET, MAX_SNAPLEN, PcapRecord, write_pcap

__all__ = [
    "MODES",
    "RING_BYTES",
    "Capture",
    "Frame",
    "ItemCaptures",
    "Ring",
    "Tap",
    "open_tap_socket",
    "parse_mode",
    "safe_dirname",
    "start_capture",
    "stop_all",
]

if TYPE_CHECKING:
    from rawstack_harness.topology.spec import Topology


class SocketNode(Protocol):
    """What a tap needs of a node: a socket opened inside it."""

    def socket(self, family: int, type: int, proto: int) -> socket.socket: ...


class Captured(Protocol):
    """What capture needs of a network (every ``Network`` is one): its spec and its nodes."""

    @property
    def topology(self) -> Topology: ...

    def __getitem__(self, name: str) -> SocketNode: ...


MODES = ("never", "failed", "always")
RING_BYTES = 4 << 20  # per endpoint: a few hundred ms of a flood, hours of probes
RCVBUF = 2 << 20  # bursts while the test thread holds the GIL; charged only when used
BATCH = 256  # frames read from one socket before the others get a turn
PAUSE = 0.005  # s after reading frames before the thread looks again (see Capture._run)
FRAME_OVERHEAD = 96  # bytes a kept frame costs besides its data (objects, deque slot)

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6  # struct tpacket_stats {tp_packets, tp_drops}; reading resets it
SO_RCVBUFFORCE = 33
# Not exported by every Python; 35 is asm-generic (x86, arm, riscv, ...).
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")
_ANCBUF = socket.CMSG_SPACE(_TIMESPEC.size)


def parse_mode(value: str) -> str:
    """``never``, ``failed`` or ``always``; anything else is a ValueError naming the choices."""
    mode = value.strip().lower()
    if mode not in MODES:
        raise ValueError(f"{value!r} is not one of {', '.join(MODES)}")
    return mode


@dataclass(frozen=True)
class Frame:
    """One captured frame: kernel time in ns since the epoch, bytes kept, length on the wire."""

    ts_ns: int
    data: bytes
    orig_len: int

    def record(self) -> PcapRecord:
        sec, frac = divmod(self.ts_ns, 1_000_000_000)
        return PcapRecord(self.data, sec, frac, max(self.orig_len, len(self.data)))


class Ring:
    """The newest frames whose total cost stays within ``limit`` bytes; counts what it drops."""

    def __init__(self, limit: int = RING_BYTES) -> None:
        if limit <= 0:
            raise ValueError(f"ring limit must be positive, not {limit}")
        self.limit = limit
        self.size = 0
        self.seen = 0
        self.evicted = 0
        self._frames: deque[Frame] = deque()

    @staticmethod
    def cost(frame: Frame) -> int:
        return len(frame.data) + FRAME_OVERHEAD

    def extend(self, frames: Iterable[Frame]) -> None:
        for frame in frames:
            self._frames.append(frame)
            self.size += self.cost(frame)
            self.seen += 1
        # A single frame larger than the limit is still kept: the newest is never dropped.
        while self.size > self.limit and len(self._frames) > 1:
            self.size -= self.cost(self._frames.popleft())
            self.evicted += 1

    def frames(self) -> list[Frame]:
        return list(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


class Tap:
    """One endpoint's socket and ring; ``label`` is ``node:ifname``."""

    def __init__(self, label: str, sock: socket.socket, limit: int = RING_BYTES) -> None:
        self.label = label
        self.sock = sock
        self.ring = Ring(limit)
        self.kernel_drops = 0
        self.error: str | None = None

    @property
    def filename(self) -> str:
        return self.label.replace(":", "-") + ".pcap"

    def read_kernel_drops(self) -> None:
        """Add what the kernel dropped (socket buffer full) since the last read."""
        if self.sock.family != getattr(socket, "AF_PACKET", -1) or self.sock.fileno() < 0:
            return
        with contextlib.suppress(OSError):
            raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
            self.kernel_drops += struct.unpack("II", raw)[1]

    def summary(self) -> str:
        parts = [f"{len(self.ring)} frames"]
        if self.ring.evicted:
            parts.append(f"{self.ring.evicted} older ones dropped (ring limit)")
        if self.kernel_drops:
            parts.append(f"{self.kernel_drops} dropped by the kernel (socket buffer full)")
        if self.error:
            parts.append(f"stopped early: {self.error}")
        return ", ".join(parts)


def open_tap_socket(node: SocketNode, ifname: str) -> socket.socket:
    """A non-blocking, timestamping packet socket for every frame of ``ifname`` in ``node``."""
    sock: socket.socket = node.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        # Protocol 0 at creation receives nothing; the bind sets interface and ETH_P_ALL at
        # once, so no frame of another interface is ever queued (packet(7)). The interface
        # name is resolved in the socket's namespace, the node's.
        sock.bind((ifname, ETH_P_ALL))
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:  # not CAP_NET_ADMIN in the node's namespace: take what rmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    except BaseException:
        sock.close()
        raise
    return sock


class _Reader:
    """The one thread of this process that reads every running capture's taps.

    A capture registers its taps' descriptors with the reader's epoll set on start and
    removes them on stop; a stop or sync drains the taps itself, in the caller's thread,
    under the capture's lock, so it never waits for this thread (nor for its pause). One
    thread for the process, not one per capture: starting and joining a thread per test
    cost ~0.2 ms of a bare pair's ~4.
    """

    def __init__(self) -> None:
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:  # a forked child has no thread but ours, and no capture
        self._lock = threading.Lock()
        self._taps: dict[int, tuple[Capture, Tap]] = {}
        self._epoll: select.epoll | None = None
        self._thread: threading.Thread | None = None
        self._changed = threading.Event()  # ends a pause: a capture came or went

    def add(self, capture: Capture) -> None:
        with self._lock:
            if self._epoll is None:
                self._epoll = select.epoll()
            for tap in capture.taps:
                fd = tap.sock.fileno()
                self._taps[fd] = (capture, tap)
                self._epoll.register(fd, select.EPOLLIN)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="netns-capture-reader", daemon=True
                )
                self._thread.start()
        self._changed.set()

    def remove(self, capture: Capture) -> None:
        """Called with ``capture._lock`` held, its sockets still open."""
        with self._lock:
            for fd in [fd for fd, (c, _) in self._taps.items() if c is capture]:
                del self._taps[fd]
                if self._epoll is not None:
                    with contextlib.suppress(OSError):
                        self._epoll.unregister(fd)
        self._changed.set()

    def _run(self) -> None:
        epoll = self._epoll
        assert epoll is not None
        while True:
            try:
                events = epoll.poll()
            except InterruptedError:
                continue
            read = full = 0
            pauses = []
            for fd, _ in events:
                with self._lock:
                    found = self._taps.get(fd)
                if found is None:
                    continue
                capture, tap = found
                n = capture._read(tap)
                read, full = read + n, full + (n == capture.batch)
                pauses.append(capture.pause)
                if tap.error is not None:
                    with self._lock, contextlib.suppress(OSError, KeyError):
                        del self._taps[fd]
                        epoll.unregister(fd)
            if read and not full:
                # Frames carry the kernel's timestamps and wait in the socket buffers, so
                # they can be read a few at a time: woken per frame, this thread took the
                # GIL from the test's threads ~100 times while a pair's peers were probed.
                # A stop or sync drains for itself; a flood (a full batch) gets no pause.
                self._changed.clear()
                self._changed.wait(min(pauses))


_READER = _Reader()
_LOCAL = threading.local()


def _buffer() -> bytearray:
    """This thread's receive buffer (a frame is copied out of it at once)."""
    buf: bytearray | None = getattr(_LOCAL, "buf", None)
    if buf is None:
        buf = _LOCAL.buf = bytearray(MAX_SNAPLEN)
    return buf


class Capture:
    """One network's taps, read by the process's capture thread from :meth:`start` to
    :meth:`stop`; a stop or sync drains them itself."""

    def __init__(
        self,
        taps: Sequence[Tap],
        name: str = "capture",
        batch: int = BATCH,
        pause: float = PAUSE,
    ) -> None:
        self.taps = list(taps)
        self.name = name
        self.batch = batch
        self.pause = pause
        self.error: str | None = None
        self._lock = threading.Lock()
        self._started = False
        self._closed = False

    @property
    def running(self) -> bool:
        return self._started and not self._closed

    def start(self) -> Capture:
        self._started = True
        _READER.add(self)
        return self

    def stop(self) -> None:
        """Drain what is queued, stop reading, close every socket (idempotent)."""
        stop_all([self])

    def _halt(self) -> None:
        """Called with ``_lock`` held: take the taps from the reader, drain them."""
        if self._started:
            _READER.remove(self)
        self._drain_all()
        for tap in self.taps:
            tap.read_kernel_drops()

    def sync(self) -> None:
        """Read every frame queued on the taps by now into the rings.

        A failing test's report is written while the capture still runs; without this, its
        frame counts and pcaps miss what the kernel queued but the reader thread (which
        needs the GIL, and a core, on a loaded machine) has not read yet. The drain happens
        here: it waits for no thread.
        """
        with self._lock:
            if not self._closed:
                self._drain_all()

    def frames(self, tap: Tap) -> list[Frame]:
        """A snapshot of ``tap``'s ring (the reader may still be adding)."""
        with self._lock:
            return tap.ring.frames()

    def write(self, directory: Path, prefix: str = "", since_ns: int = 0) -> list[tuple[Path, Tap]]:
        """Write one pcap per tap as ``<directory>/<prefix><node>-<ifname>.pcap``; with
        ``since_ns``, only frames from then on (a shared topology: one test's time span)."""
        directory.mkdir(parents=True, exist_ok=True)
        written: list[tuple[Path, Tap]] = []
        self.sync()
        for tap in self.taps:
            if not self._closed:
                tap.read_kernel_drops()
            frames = [f for f in self.frames(tap) if f.ts_ns >= since_ns]
            data = write_pcap([f.record() for f in frames], LINKTYPE_ETHERNET, nanosecond=True)
            path = directory / f"{prefix}{tap.filename}"
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # a reader (or CI upload) never sees half a file
            written.append((path, tap))
        return written

    # -- reading ---------------------------------------------------------------------------
    def _read(self, tap: Tap) -> int:
        """The reader thread's turn at ``tap``: up to a batch, unless stopped meanwhile."""
        with self._lock:
            if self._closed or tap.error is not None:
                return 0
            return self._guarded(tap)

    def _guarded(self, tap: Tap) -> int:
        """:meth:`_drain`, a bug in it kept as ``error`` (the summary says why frames stop)
        rather than raised into the reader or a teardown."""
        try:
            return self._drain(tap)
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            tap.error = tap.error or "capture failed"
            return 0

    def _drain_all(self) -> None:
        """Called with ``_lock`` held."""
        for tap in self.taps:
            while tap.error is None and self._guarded(tap) == self.batch:
                pass

    def _drain(self, tap: Tap) -> int:
        """Read up to a batch of queued frames, return how many; a broken tap sets ``error``.
        Called with ``_lock`` held."""
        frames: list[Frame] = []
        buf = _buffer()
        view = memoryview(buf)
        try:
            while len(frames) < self.batch:
                try:
                    n, anc, _, _ = tap.sock.recvmsg_into([buf], _ANCBUF, socket.MSG_TRUNC)
                except (BlockingIOError, InterruptedError):
                    break
                frames.append(Frame(_timestamp(anc), bytes(view[: min(n, len(buf))]), n))
        except OSError as exc:
            # ENETDOWN: the interface went away (its namespace was removed under us).
            tap.error = "interface removed" if exc.errno == errno.ENETDOWN else str(exc)
        finally:
            view.release()
            if frames:
                tap.ring.extend(frames)
        return len(frames)


def stop_all(captures: Iterable[Capture]) -> None:
    """Stop several captures; their sockets close in the background.

    Closing a packet socket waits for an RCU grace period (``synchronize_net()`` in
    ``packet_release``), 5-15 ms each, and nothing needs to wait for it: the frames are in
    the rings already, and a socket still closing only delays the kernel's deletion of a
    namespace the harness has unmounted (see :func:`rawstack_harness.probes.close_soon`).
    """
    pending = [c for c in captures if not c._closed]
    socks = [tap.sock for capture in pending for tap in capture.taps]
    try:
        for capture in pending:
            with capture._lock:
                try:
                    capture._halt()
                finally:
                    capture._closed = True
    finally:
        close_soon(*socks)


def _timestamp(ancdata: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return int(sec) * 1_000_000_000 + int(nsec)
    return time.time_ns()  # the kernel always sends one once asked; this is a fallback


def start_capture(net: Captured, limit: int = RING_BYTES) -> Capture:
    """Open a tap on every link endpoint of ``net`` and start reading.

    Needs a backend whose nodes open sockets (``capabilities.node_sockets``) and AF_PACKET,
    which is Linux's; the plugin asks the capabilities before calling this.
    """
    taps: list[Tap] = []
    try:
        for link in net.topology.links:
            for ep in (link.a, link.b):
                sock = open_tap_socket(net[ep.node], ep.ifname)
                taps.append(Tap(f"{ep.node}:{ep.ifname}", sock, limit))
        return Capture(taps, name=f"capture-{net.topology.name}").start()
    except BaseException:
        for tap in taps:
            tap.sock.close()
        raise


def safe_dirname(nodeid: str) -> str:
    """A folder name for a test id, as ``ci/failure_logs.py`` names its ``.log`` files."""
    return re.sub(r"[^\w.\-\[\]=,]+", "_", nodeid).strip("_")[:200] or "test"


class ItemCaptures:
    """One test's captures (one per network it built), written together into ``directory``."""

    def __init__(self, directory: Path, limit: int = RING_BYTES) -> None:
        self.directory = directory
        self.limit = limit
        self.captures: list[tuple[str, Capture]] = []
        self.notes: list[str] = []
        self.written: list[tuple[Path, Tap]] = []
        self._names: list[str] = []

    def add(self, net: Captured) -> None:
        """Start capturing ``net``; a failure to open a tap becomes a note, not a test error."""
        name = str(net.topology.name)
        self._names.append(name)
        taken = self._names.count(name)  # two "pair" topologies: pair-a-eth0, pair2-a-eth0
        prefix = f"{name}{taken if taken > 1 else ''}-"
        try:
            self.captures.append((prefix, start_capture(net, self.limit)))
        except OSError as exc:
            self.note(f"topology {name!r} not captured: {exc}")

    def note(self, message: str) -> None:
        self.notes.append(message)

    def stop(self) -> None:
        stop_all(capture for _, capture in self.captures)

    def write(self) -> list[tuple[Path, Tap]]:
        """(Re)write every pcap; an earlier run's pcaps of this test are removed first.

        A disk error becomes a note in the report: a diagnostic must not fail the teardown
        that removes the topology.
        """
        written: list[tuple[Path, Tap]] = []
        try:
            if self.directory.is_dir():
                for old in self.directory.glob("*.pcap"):
                    old.unlink()
            for prefix, capture in self.captures:
                written += capture.write(self.directory, prefix)
        except OSError as exc:
            self.note(f"could not write the pcaps: {exc}")
        self.written = written
        return written

    def section(self) -> str:
        """What a report shows: each file with its frame count, and why anything is missing."""
        lines = [f"{path} ({tap.summary()})" for path, tap in self.written]
        if lines:
            lines.insert(0, "one pcap per link endpoint (read with `tshark -r FILE`):")
        lines += [
            f"topology {prefix[:-1]!r}: capture thread failed: {c.error}"
            for prefix, c in self.captures
            if c.error
        ]
        return "\n".join(lines + self.notes)
