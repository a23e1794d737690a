"""The node code both backends share (backends/common.py), without root or namespaces.

A :class:`LocalNode` "enters" the node by running the command here, so what is checked is
the shared logic itself: spec addresses, the text/bytes ``run``, process groups, and that
``stop_process`` stops one process and ``stop_processes`` all of them.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from rawstack_harness.backends.base import NodeProcess
from rawstack_harness.backends.common import ProcessNode, SpecNode, locked_run_dir
from rawstack_harness.topology import Topology, line3

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


class LocalNode(SpecNode, ProcessNode):
    def __init__(self, name: str, topology: Topology) -> None:
        self.name = name
        self.topo = topology
        self.procs: list[NodeProcess] = []
        self.events: list[str] = []

    def _topology(self) -> Topology:
        return self.topo

    def _enter(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        return list(argv), None

    def _started(self, proc: NodeProcess) -> None:
        self.events.append(f"started {proc.pid}")

    def _stopped(self, proc: NodeProcess) -> None:
        self.events.append(f"stopped {proc.pid}")


@pytest.fixture
def node() -> Iterator[LocalNode]:
    n = LocalNode("r", line3())
    yield n
    n.stop_processes(timeout=5)


def test_spec_addresses(node: LocalNode) -> None:
    assert node.ifnames() == ["eth0", "eth1"]
    assert [e.ifname for e in node.endpoints()] == ["eth0", "eth1"]
    assert node.addresses("eth1", 4) == ["10.0.2.1"]
    assert node.addr(4, "eth1") == "10.0.2.1"
    assert node.addr(6) == node.addresses(version=6)[0]
    with pytest.raises(LookupError, match="node r has no IPv4 address"):
        node.addr(4, "eth7")


def test_run_gives_text_or_bytes(node: LocalNode) -> None:
    text = node.run([sys.executable, "-c", "print('hi')"], capture_output=True, text=True)
    assert (text.returncode, text.stdout) == (0, "hi\n")
    raw = node.run([sys.executable, "-c", "import sys; sys.exit(3)"], capture_output=True)
    assert (raw.returncode, raw.stdout) == (3, b"")


def test_popen_leads_its_own_group_and_is_recorded(node: LocalNode) -> None:
    proc = node.popen(SLEEPER)
    assert os.getpgid(proc.pid) == proc.pid
    assert node.procs == [proc]
    assert node.events == [f"started {proc.pid}"]


def test_stop_process_stops_that_one_only(node: LocalNode) -> None:
    one, two = node.popen(SLEEPER), node.popen(SLEEPER)
    assert node.stop_process(one, timeout=5) == -signal.SIGTERM
    assert two.poll() is None
    assert node.procs == [two]
    assert node.events[-1] == f"stopped {one.pid}"


def test_stop_processes_stops_them_all(node: LocalNode) -> None:
    procs = [node.popen(SLEEPER) for _ in range(3)]
    node.stop_processes(timeout=5)
    assert [p.returncode for p in procs] == [-signal.SIGTERM] * 3
    assert node.procs == []


def test_a_process_ignoring_sigterm_is_killed(node: LocalNode) -> None:
    stubborn = node.popen(
        [sys.executable, "-c",
         "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"],
        stdout=-1,
    )  # fmt: skip
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == b"ready\n"  # the handler is in place
    assert node.stop_process(stubborn, timeout=0.2) == -signal.SIGKILL
    stubborn.stdout.close()


def test_locked_run_dir_is_created_locked(tmp_path: Path) -> None:
    import fcntl

    path, fd = locked_run_dir(str(tmp_path))
    try:
        assert path.parent == tmp_path
        assert not path.name.startswith(".")
        other = os.open(path / "lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(other)
        assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no .new-* left
    finally:
        os.close(fd)
