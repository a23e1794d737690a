"""rawstack_harness.supervise without namespaces: ready lines, start_peers' failure paths.

Nodes are fakes whose ``popen`` runs a small local stand-in for serve-all.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from _fakes import StandIn
from rawstack_harness import supervise
from rawstack_harness.backends import ReadyEvent
from rawstack_harness.backends.base import ProbeNode
from rawstack_harness.backends.linux import LinuxBackend

PY = sys.executable


def _ready(peer: str) -> str:
    return json.dumps({"event": "ready", "peer": peer, "addr": "0.0.0.0:1"})


def _spawn(code: str, *args: str, stderr: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    return subprocess.Popen([PY, "-c", code, *args], stdout=subprocess.PIPE, stderr=stderr)


PRINT_THEN_SLEEP = (
    "import sys, time; sys.stdout.write(sys.argv[1]); sys.stdout.flush(); time.sleep(30)"
)
WARN_THEN_EXIT = "import sys; print('warming up', file=sys.stderr); sys.exit(int(sys.argv[1]))"


def _finish(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    proc.kill()
    out, err = proc.communicate(timeout=10)
    return out, err


def test_read_ready_returns_the_events_and_leaves_the_rest_unread() -> None:
    lines = "\n".join([_ready("http"), _ready("udp"), "after"])
    proc = _spawn("import sys; print(sys.argv[1])", lines)
    events = supervise.read_ready(proc, 2, 10)
    assert [e["peer"] for e in events] == ["http", "udp"]
    out, _ = proc.communicate(timeout=10)
    assert out == b"after\n"


def test_exit_before_ready_names_status_and_stderr_tail() -> None:
    proc = _spawn(WARN_THEN_EXIT, "3")
    with pytest.raises(supervise.ReadyFailed) as info:
        supervise.read_ready(proc, 1, 10, name="my server")
    assert str(info.value) == "my server exited with status 3; stderr tail:\nwarming up"
    assert info.value.returncode == 3
    assert isinstance(info.value, supervise.PeerDied)


def test_killed_before_ready_names_the_signal_and_reads_a_log_file(tmp_path: Path) -> None:
    log = tmp_path / "x.err"
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    proc = _spawn("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", stderr=None)
    with pytest.raises(supervise.ReadyFailed) as info:
        supervise.read_ready(proc, 1, 10, err_path=log)
    message = str(info.value)
    assert "was killed by signal 9 (SIGKILL); stderr tail:\nline 10\n" in message
    assert message.endswith("line 29")
    assert "line 9\n" not in message
    assert message.startswith(f"{PY} -c import os")  # no name: the argv says who


def test_timeout_keeps_the_whole_lines_read() -> None:
    proc = _spawn(PRINT_THEN_SLEEP, _ready("chao") + "\n" + '{"event": "re')
    try:
        with pytest.raises(supervise.ReadyTimeout, match=r"1 of 3 lines in 0\.5s") as info:
            supervise.read_ready(proc, 3, 0.5)
        assert [e["peer"] for e in info.value.ready] == ["chao"]
        assert info.value.returncode is None
    finally:
        _finish(proc)


def test_a_line_that_is_not_ready_fails() -> None:
    proc = _spawn(PRINT_THEN_SLEEP, _ready("udp") + '\n{"event": "error"}\n')
    try:
        with pytest.raises(supervise.ReadyFailed, match="not a ready line") as info:
            supervise.read_ready(proc, 2, 10)
        assert [e["peer"] for e in info.value.ready] == ["udp"]
    finally:
        _finish(proc)


def test_read_lines_from_stderr_and_copy() -> None:
    proc = subprocess.Popen(
        [PY, "-c", "import sys, time; sys.stderr.write('a\\nb\\n'); sys.stderr.flush(); "
         "time.sleep(30)"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    copy = io.BytesIO()
    try:
        assert supervise.read_lines(proc, 2, 10, stream=proc.stderr, copy=copy) == [b"a", b"b"]
        assert copy.getvalue() == b"a\nb\n"
    finally:
        _finish(proc)


class FakeNode(StandIn):
    """A node whose serve-all is a local stand-in; stopping kills what it started."""


class AlwaysAnswers(LinuxBackend):
    def probe_peers(
        self,
        peers: Sequence[str],
        *,
        src: ProbeNode,
        src_ifname: str,
        dst: ProbeNode,
        dst_ifname: str,
        ready: Mapping[str, ReadyEvent],
        on_failure: Callable[[str, BaseException], None],
    ) -> dict[str, float]:
        return dict.fromkeys(peers, 0.001)


ALL_READY = [PY, "-c", PRINT_THEN_SLEEP, "".join(_ready(p) + "\n" for p in supervise.ALL_PEERS)]
SLEEPER = [PY, "-c", "import time; time.sleep(30)"]


def _start(nodes: list[FakeNode], tmp_path: Path, timeout: float) -> None:
    a, b = nodes
    supervise.start_peers(
        [(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")],
        log_dir=tmp_path,
        timeout=timeout,
        backend=AlwaysAnswers(),
    )


def _no_ready_threads() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("ready-")]


def test_one_side_failing_stops_both_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "fake-b.err").write_text("earlier run\n")
    nodes = [FakeNode("a", ALL_READY), FakeNode("b", [PY, "-c", WARN_THEN_EXIT, "4"])]
    with pytest.raises(supervise.PeerDied) as info:
        _start(nodes, tmp_path, timeout=20)
    assert str(info.value) == (
        "serve-all on node b (eth0) exited with status 4; stderr tail:\nearlier run\nwarming up"
    )
    assert all(p.returncode is not None for n in nodes for p in n.procs)
    assert nodes[0].procs[0].returncode < 0  # a was killed, not left serving
    assert _no_ready_threads()


def test_ready_timeout_stops_every_process(tmp_path: Path) -> None:
    nodes = [FakeNode("a", ALL_READY), FakeNode("b", SLEEPER)]
    with pytest.raises(supervise.PeerDied, match=r"node b .*no ready line from http, udp, chao"):
        _start(nodes, tmp_path, timeout=1.0)
    assert all(p.returncode is not None for n in nodes for p in n.procs)
    assert _no_ready_threads()


def test_both_ready_and_probed(tmp_path: Path) -> None:
    nodes = [FakeNode("a", ALL_READY), FakeNode("b", ALL_READY)]
    a, b = nodes
    procs = supervise.start_peers(
        [(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")],
        log_dir=tmp_path,
        backend=AlwaysAnswers(),
    )
    try:
        assert [set(p.ready) for p in procs] == [set(supervise.ALL_PEERS)] * 2
        assert [set(p.rtts) for p in procs] == [set(supervise.ALL_PEERS)] * 2
        assert (tmp_path / "fake-a.out").read_bytes().count(b"\n") == 4
    finally:
        for p in procs:
            p.stop()


# -- the nursery: one failure cancels the siblings, nothing outlives the block ---------------
@pytest.mark.parametrize("here", [False, True], ids=["thread", "run_here"])
def test_nursery_raises_the_first_failure_after_cancelling_the_others(here: bool) -> None:
    # A task blocked in run_here holds the calling thread: the failure elsewhere must cancel
    # at once, not when the block ends (which would wait for the blocked task: a hang).
    cancelled = threading.Event()
    calls: list[str] = []

    def blocked() -> None:
        assert cancelled.wait(30), "never cancelled"
        calls.append("unblocked")

    def fails() -> None:
        time.sleep(0.05)
        raise ValueError("boom")

    def cancel() -> None:
        calls.append("cancel")
        cancelled.set()

    def run() -> None:
        with supervise.Nursery(cancel) as nursery:
            nursery.start_soon(fails, "ready-fails")
            if here:
                nursery.run_here(blocked)
            else:
                nursery.start_soon(blocked, "ready-blocked")

    started = time.monotonic()
    with pytest.raises(ValueError, match="boom"):
        run()
    assert time.monotonic() - started < 10
    assert calls == ["cancel", "unblocked"]
    assert _no_ready_threads()


def test_a_task_run_here_that_fails_cancels_the_others() -> None:
    cancelled = threading.Event()

    def blocked() -> None:
        assert cancelled.wait(30), "never cancelled"

    def fails_here() -> None:
        raise KeyError("here")

    def run() -> None:
        with supervise.Nursery(cancelled.set) as nursery:
            nursery.start_soon(blocked, "ready-blocked")
            nursery.run_here(fails_here)

    with pytest.raises(KeyError, match="here"):
        run()
    assert cancelled.is_set()
    assert _no_ready_threads()


def test_nursery_waits_for_every_task_and_cancels_nothing() -> None:
    done: list[int] = []

    def task(n: int) -> Callable[[], None]:
        def body() -> None:
            time.sleep(0.05 * n)  # still running when the block starts waiting
            done.append(n)

        return body

    with supervise.Nursery(lambda: done.append(-1)) as nursery:
        for n in range(3):
            nursery.start_soon(task(n), f"ready-{n}")
    assert sorted(done) == [0, 1, 2]


def test_nursery_deadline_cancels_and_raises_the_timeout_error() -> None:
    cancelled = threading.Event()

    def slow() -> None:
        cancelled.wait(30)

    def run() -> None:
        with supervise.Nursery(
            cancelled.set,
            deadline=time.monotonic() + 0.2,
            grace=0.1,
            on_timeout=lambda: supervise.PeerDied("too slow"),
        ) as nursery:
            nursery.start_soon(slow, "ready-slow")

    with pytest.raises(supervise.PeerDied, match="too slow"):
        run()
    assert cancelled.is_set()
    assert _no_ready_threads()


def test_peer_stop_stops_its_own_process_only(tmp_path: Path) -> None:
    node = FakeNode("a", ALL_READY)
    own = node.popen(SLEEPER)  # the test's own process in the same node
    pp = supervise.PeerProcess(node, "eth0", supervise.ALL_PEERS, tmp_path, AlwaysAnswers())
    pp.start()
    try:
        assert pp.stop() is not None
        assert pp.proc is not None
        assert pp.proc.returncode is not None
        assert own.poll() is None
        assert not pp.died()  # stopped on purpose is not a death
    finally:
        node.stop_process(own)


def test_read_lines_reads_a_pipe_numbered_past_1024() -> None:
    # select() cannot wait on descriptor 1024 or above; a large topology's run holds that many.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"the hard descriptor limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    r, w = os.pipe()
    high = os.dup2(r, 1500)
    os.close(r)
    proc = subprocess.Popen([PY, "-c", "pass"], stdout=subprocess.DEVNULL)
    proc.wait()
    try:
        with open(high, "rb", buffering=0) as pipe:
            os.write(w, b"one\ntwo\n")
            assert supervise.read_lines(proc, 2, 5, stream=pipe) == [b"one", b"two"]
    finally:
        os.close(w)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
