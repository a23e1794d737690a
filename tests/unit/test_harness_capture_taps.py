"""Captures without root: rings, pcap output, the reader thread over datagram socketpairs.

The reader thread only needs sockets that deliver one frame per datagram, so AF_UNIX
socketpairs stand in for packet sockets; SO_TIMESTAMPNS works on them too.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rawstack_harness import capture
from rawstack_harness.capture import (
    FRAME_OVERHEAD,
    SO_TIMESTAMPNS,
    Capture,
    Frame,
    ItemCaptures,
    Ring,
    Tap,
    parse_mode,
    safe_dirname,
    stop_all,
)
from rawstack_harness.topology import pair

from rawstack.codec.pcap import LINKTYPE_ETHERNET, read_pcap


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    """Datagram socketpairs (sender, tap end); closed at the end if the test did not."""
    made: list[tuple[socket.socket, socket.socket]] = []
    yield made
    for a, b in made:
        a.close()
        b.close()


def _tap(pairs: list[tuple[socket.socket, socket.socket]], label: str, **kw: Any) -> Tap:
    sender, end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    end.setblocking(False)
    end.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    pairs.append((sender, end))
    return Tap(label, end, **kw)


def _capture_threads() -> list[threading.Thread]:
    """Threads of one capture (the process's one reader is not)."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("netns-capture") and t.name != "netns-capture-reader"
    ]


@pytest.mark.parametrize(("text", "mode"), [("never", "never"), (" Failed ", "failed"),
                                             ("ALWAYS", "always")])  # fmt: skip
def test_parse_mode(text: str, mode: str) -> None:
    assert parse_mode(text) == mode


@pytest.mark.parametrize("text", ["", "sometimes", "on-failure"])
def test_parse_mode_rejects_other_words(text: str) -> None:
    with pytest.raises(ValueError, match="is not one of never, failed, always"):
        parse_mode(text)


def _frame(i: int, size: int = 100) -> Frame:
    return Frame(1_000_000_000 + i, bytes([i % 256]) * size, size)


def test_ring_keeps_the_newest_frames_within_its_limit() -> None:
    cost = 100 + FRAME_OVERHEAD
    ring = Ring(limit=cost * 3)
    ring.extend(_frame(i) for i in range(5))
    assert [f.ts_ns for f in ring.frames()] == [1_000_000_002, 1_000_000_003, 1_000_000_004]
    assert (ring.seen, ring.evicted, ring.size, len(ring)) == (5, 2, cost * 3, 3)


def test_ring_keeps_a_single_frame_larger_than_its_limit() -> None:
    ring = Ring(limit=10)
    ring.extend([_frame(1), _frame(2)])
    assert [f.ts_ns for f in ring.frames()] == [1_000_000_002]
    assert ring.evicted == 1


def test_ring_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Ring(0)


def test_frame_record_splits_the_timestamp_and_keeps_the_wire_length() -> None:
    record = Frame(1_700_000_000_123_456_789, b"abc", 1514).record()
    assert (record.ts_sec, record.ts_frac, record.data, record.orig_len) == (
        1_700_000_000,
        123_456_789,
        b"abc",
        1514,
    )


def test_capture_reads_every_tap_and_stop_drains_and_closes(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    taps = [_tap(pairs, "a:eth0"), _tap(pairs, "b:eth1")]
    before = time.time_ns()
    cap = Capture(taps, name="t").start()
    assert cap.running
    for i in range(300):  # more than one BATCH, sent before stop(): all must be kept
        pairs[i % 2][0].send(b"frame-%d" % i)
    cap.stop()
    after = time.time_ns()
    assert not cap.running
    assert _capture_threads() == []
    readers = [t for t in threading.enumerate() if t.name == "netns-capture-reader"]
    assert len(readers) == 1  # one for the process, whatever the number of captures
    assert [t.sock.fileno() for t in taps] == [-1, -1]
    got_a = [f.data for f in cap.frames(taps[0])]
    got_b = [f.data for f in cap.frames(taps[1])]
    assert got_a == [b"frame-%d" % i for i in range(0, 300, 2)]
    assert got_b == [b"frame-%d" % i for i in range(1, 300, 2)]
    stamps = [f.ts_ns for f in cap.frames(taps[0])]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] <= stamps[-1] <= after
    assert taps[0].summary() == "150 frames"
    cap.stop()  # idempotent


def test_frames_queued_when_stop_is_asked_are_all_kept(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    tap = _tap(pairs, "a:eth0")
    cap = Capture([tap], batch=4)
    count = 9  # below net.unix.max_dgram_qlen (10 by default): the sends never block
    for i in range(count):
        pairs[0][0].send(b"%d" % i)
    # The reader never gets a turn (never started): the stop drains the whole queue, longer
    # than one batch, itself.
    cap.stop()
    assert [f.data for f in cap.frames(tap)] == [b"%d" % i for i in range(count)]


def test_frames_are_read_in_batches_and_a_sync_or_stop_ends_the_pause(
    pairs: list[tuple[socket.socket, socket.socket]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # After reading, the thread leaves frames queued for `pause` (the test's threads keep
    # the GIL meanwhile); a sync() or stop() must not wait for it, and nothing is lost.
    reads: list[int] = []
    real = Capture._drain

    def counted(self: Capture, tap: Tap) -> int:
        n = real(self, tap)
        reads.append(n)
        return n

    monkeypatch.setattr(Capture, "_drain", counted)
    tap = _tap(pairs, "a:eth0")
    cap = Capture([tap], pause=30.0).start()
    try:
        pairs[0][0].send(b"first")
        deadline = time.monotonic() + 5
        while not cap.frames(tap) and time.monotonic() < deadline:
            time.sleep(0.001)
        for i in range(5):  # queued while the thread pauses: not read one by one
            pairs[0][0].send(b"%d" % i)
        time.sleep(0.05)
        assert [f.data for f in cap.frames(tap)] == [b"first"]
        started = time.monotonic()
        cap.sync()
        assert time.monotonic() - started < 5  # not the 30 s pause
        assert [f.data for f in cap.frames(tap)] == [b"first", b"0", b"1", b"2", b"3", b"4"]
        assert 5 in reads  # the five together
        pairs[0][0].send(b"last")
        started = time.monotonic()
    finally:
        cap.stop()
    assert time.monotonic() - started < 5
    assert [f.data for f in cap.frames(tap)][-1] == b"last"


def test_write_gives_one_pcap_per_tap_that_reads_back(
    pairs: list[tuple[socket.socket, socket.socket]], tmp_path: Path
) -> None:
    taps = [_tap(pairs, "a:eth0"), _tap(pairs, "r:eth1")]
    cap = Capture(taps).start()
    pairs[0][0].send(b"\x01" * 60)
    pairs[1][0].send(b"\x02" * 70)
    pairs[1][0].send(b"\x03" * 80)
    cap.stop()
    written = cap.write(tmp_path / "out", prefix="line3-")
    assert [(p.name, t.label) for p, t in written] == [
        ("line3-a-eth0.pcap", "a:eth0"),
        ("line3-r-eth1.pcap", "r:eth1"),
    ]
    header, records = read_pcap((tmp_path / "out" / "line3-r-eth1.pcap").read_bytes())
    assert (header.linktype, header.nanosecond) == (LINKTYPE_ETHERNET, True)
    assert [r.data for r in records] == [b"\x02" * 70, b"\x03" * 80]
    assert [r.time_ns(header) for r in records] == [f.ts_ns for f in cap.frames(taps[1])]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "line3-a-eth0.pcap",
        "line3-r-eth1.pcap",
    ]  # no temporary file left


def test_a_write_while_running_holds_every_frame_queued_before_it(
    pairs: list[tuple[socket.socket, socket.socket]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A failing test's report is written while the capture runs: a reader thread slow to
    get a core (a loaded CI machine) must not leave queued frames out of it."""
    real = Capture._drain

    def slow(self: Capture, tap: Tap) -> int:
        time.sleep(0.2)
        return real(self, tap)

    monkeypatch.setattr(Capture, "_drain", slow)
    tap = _tap(pairs, "a:eth0")
    cap = Capture([tap]).start()
    try:
        pairs[0][0].send(b"queued just before the report")
        cap.write(tmp_path)
        records = read_pcap((tmp_path / "a-eth0.pcap").read_bytes())[1]
        assert [r.data for r in records] == [b"queued just before the report"]
    finally:
        cap.stop()


class _BrokenSocket(socket.socket):
    """Readable (its peer sent something) but every read fails like a removed interface."""

    def recvmsg_into(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENETDOWN, "Network is down")


def test_a_broken_tap_stops_alone_and_says_why(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    good = _tap(pairs, "a:eth0")
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    broken_sock = _BrokenSocket(fileno=b.detach())
    pairs.append((a, broken_sock))
    broken = Tap("b:eth0", broken_sock)
    cap = Capture([good, broken]).start()
    a.send(b"wakes the selector")
    pairs[0][0].send(b"still read")
    cap.stop()
    assert cap.error is None
    assert broken.error == "interface removed"
    assert broken.summary() == "0 frames, stopped early: interface removed"
    assert [f.data for f in cap.frames(good)] == [b"still read"]


def test_summary_counts_ring_and_kernel_drops() -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        tap = Tap("a:eth0", sock, limit=1)
        tap.ring.extend([_frame(1), _frame(2)])
        tap.kernel_drops = 7
        assert tap.summary() == (
            "1 frames, 1 older ones dropped (ring limit), "
            "7 dropped by the kernel (socket buffer full)"
        )


def test_stop_all_closes_every_capture_once(
    pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    caps = [Capture([_tap(pairs, f"n{i}:eth0")], name=f"c{i}").start() for i in range(3)]
    stop_all(caps)
    stop_all(caps)
    assert not any(c.running for c in caps)
    assert all(t.sock.fileno() == -1 for c in caps for t in c.taps)
    assert _capture_threads() == []


def test_safe_dirname_matches_failure_log_names() -> None:
    assert safe_dirname("tests/integration/test_x.py::test_y[a-b-udp]") == (
        "tests_integration_test_x.py_test_y[a-b-udp]"
    )
    assert safe_dirname("::") == "test"


# -- ItemCaptures: one test's captures ---------------------------------------------------
class _TapNode(str):
    """A node that is its name (the fake tap opener logs it); it opens no real socket."""

    def socket(self, family: int, type: int, proto: int) -> socket.socket:
        raise OSError("the fake tap opener stands in for this")


class _Net:
    def __init__(self, name: str) -> None:
        self.topology = pair(name)  # endpoints a:eth0 and b:eth0

    def __getitem__(self, name: str) -> _TapNode:
        return _TapNode(name)


@pytest.fixture
def fake_taps(
    monkeypatch: pytest.MonkeyPatch, pairs: list[tuple[socket.socket, socket.socket]]
) -> dict[str, socket.socket]:
    """``open_tap_socket`` returns socketpair ends; the map is ``node:ifname`` -> sender."""
    senders: dict[str, socket.socket] = {}

    def fake_open(node: str, ifname: str) -> socket.socket:
        tap = _tap(pairs, f"{node}:{ifname}")
        senders[f"{node}:{ifname}:{len(senders)}"] = pairs[-1][0]
        return tap.sock

    monkeypatch.setattr(capture, "open_tap_socket", fake_open)
    return senders


def test_item_captures_name_files_by_topology_and_replace_older_ones(
    fake_taps: dict[str, socket.socket], tmp_path: Path
) -> None:
    directory = tmp_path / "test_x"
    directory.mkdir()
    (directory / "stale-a-eth0.pcap").write_bytes(b"from an earlier run")
    (directory / "notes.txt").write_text("not ours")
    item = ItemCaptures(directory)
    item.add(_Net("pair"))
    item.add(_Net("pair"))
    item.add(_Net("line3"))
    next(iter(fake_taps.values())).send(b"x" * 42)
    item.stop()
    item.write()
    assert sorted(p.name for p in directory.iterdir()) == [
        "line3-a-eth0.pcap",
        "line3-b-eth0.pcap",
        "notes.txt",
        "pair-a-eth0.pcap",
        "pair-b-eth0.pcap",
        "pair2-a-eth0.pcap",
        "pair2-b-eth0.pcap",
    ]
    lines = item.section().splitlines()
    assert lines[0] == "one pcap per link endpoint (read with `tshark -r FILE`):"
    assert lines[1] == f"{directory / 'pair-a-eth0.pcap'} (1 frames)"
    assert lines[2] == f"{directory / 'pair-b-eth0.pcap'} (0 frames)"
    assert len(lines) == 7


def test_item_captures_turn_errors_into_notes(
    monkeypatch: pytest.MonkeyPatch, fake_taps: dict[str, socket.socket], tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the capture folder should go")
    item = ItemCaptures(blocker / "test_x")
    item.add(_Net("pair"))

    def refuse(node: str, ifname: str) -> socket.socket:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(capture, "open_tap_socket", refuse)
    item.add(_Net("line3"))
    item.stop()
    assert item.write() == []
    text = item.section()
    assert "topology 'line3' not captured: [Errno 1] Operation not permitted" in text
    assert "could not write the pcaps: [Errno 20] Not a directory" in text
    assert _capture_threads() == []


def test_start_capture_closes_what_it_opened_when_a_tap_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[socket.socket] = []

    def open_then_fail(node: str, ifname: str) -> socket.socket:
        if opened:
            raise OSError(errno.ENODEV, "No such device")
        opened.append(socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM))
        return opened[-1]

    monkeypatch.setattr(capture, "open_tap_socket", open_then_fail)
    with pytest.raises(OSError, match="No such device"):
        capture.start_capture(_Net("pair"))
    assert opened[0].fileno() == -1
    assert _capture_threads() == []


class _BuggySocket(socket.socket):
    def recvmsg_into(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug in the reader")


def test_a_thread_that_dies_says_so_in_the_section(
    pairs: list[tuple[socket.socket, socket.socket]], tmp_path: Path
) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    buggy = _BuggySocket(fileno=b.detach())
    pairs.append((a, buggy))
    cap = Capture([Tap("a:eth0", buggy)]).start()
    a.send(b"makes it readable")
    item = ItemCaptures(tmp_path)
    item.captures.append(("pair-", cap))
    item.stop()
    item.write()
    assert cap.error == "RuntimeError: a bug in the reader"
    assert item.section().splitlines()[-1] == (
        "topology 'pair': capture thread failed: RuntimeError: a bug in the reader"
    )
    assert buggy.fileno() == -1
