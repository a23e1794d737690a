"""The warm peer host: forked peers serve inside their node, report their status, leave nothing.

Namespaces come from the harness fixtures; the host is this test's own (its children are
recorded in the test run's manifest). Peers are proved to serve by the supervisor's
independent probes, and a forked ``rawstack`` is compared with an exec'ed one in the same
node: same exit status, same error line.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from _loopback import exited, wait_for
from rawstack_harness import probes
from rawstack_harness.backends.base import readable
from rawstack_harness.backends.linux import forked
from rawstack_harness.backends.linux.forked import HOST_DIED, ForkedProcess, PeerHost, PeerHostError
from rawstack_harness.backends.linux.peerhost import recv_msg
from rawstack_harness.supervise import read_lines, read_ready

pytestmark = pytest.mark.netns


@pytest.fixture
def host(netns_run: Any, tmp_path: Path) -> Iterator[PeerHost]:
    """A peer host recording in this run's manifest; closed (children killed) at the end."""
    peer_host = PeerHost(tmp_path / "host.log", netns_run.manifest)
    yield peer_host
    peer_host.close()


def _popen(proc: ForkedProcess) -> subprocess.Popen[bytes]:
    """The supervisor's readers are typed for Popen; a forked process has what they use."""
    return cast("subprocess.Popen[bytes]", proc)


def _serve_all(host: PeerHost, node: Any, logs: Path, *args: str) -> ForkedProcess:
    return host.spawn(
        node.fd,
        ["serve-all", "--iface", "eth0", *args],
        logs / f"{node.name}.out",
        logs / f"{node.name}.err",
        ready_lines=4,
    )


def test_forked_serve_all_serves_in_its_node_and_stops_cleanly(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    a, b = net["a"], net["b"]
    a.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
    proc = _serve_all(host, a, tmp_path)
    ready = {e["peer"]: e for e in read_ready(_popen(proc), 4, 20)}
    assert sorted(ready) == ["chao", "http", "icmp", "udp"]
    # Its namespace is node a's, not the host's.
    assert os.stat(f"/proc/{proc.pid}/ns/net").st_ino == os.fstat(a.fd).st_ino
    assert proc.stdout is not None
    # EOF, not merely nothing to read: the child closed the ready pipe after its lines.
    assert select.select([proc.stdout], [], [], 5)[0], "the ready pipe stayed open"
    assert proc.stdout.read() == b""
    for peer in ("http", "udp", "chao", "icmp"):
        probes.probe_peer(peer, src=b, src_ifname="eth0", dst=a, dst_ifname="eth0", ready=ready)
    proc.terminate()
    assert proc.wait(10) == 0
    out = (tmp_path / "a.out").read_text().splitlines()
    assert [line for line in out if '"event": "ready"' in line] == out
    assert len(out) == 4
    assert "[udp] stopped" in (tmp_path / "a.err").read_text()


@pytest.mark.parametrize(
    "args",
    [
        ["serve-all", "--iface", "nosuch0"],
        ["serve-all", "--bogus"],
        ["udp", "serve", "--bind", "10.9.9.9"],
    ],
    ids=["unknown-iface", "usage", "cannot-bind"],
)
def test_forked_command_fails_as_the_exec_one_does(
    host: PeerHost, net: Any, tmp_path: Path, args: list[str]
) -> None:
    a = net["a"]
    proc = host.spawn(a.fd, args, tmp_path / "out", tmp_path / "err")
    code = proc.wait(20)
    execed = a.run([sys.executable, "-m", "rawstack", *args], capture_output=True)
    assert code == execed.returncode != 0
    forked_err = (tmp_path / "err").read_text().strip().splitlines()
    assert forked_err[-1] == execed.stderr.decode().strip().splitlines()[-1]


def test_signal_death_status_and_manifest(
    host: PeerHost, net: Any, netns_run: Any, tmp_path: Path
) -> None:
    proc = _serve_all(host, net["a"], tmp_path, "--peers", "udp")
    read_lines(_popen(proc), 1, 20)
    pid = proc.pid  # taking the spawn's reply records the child
    entries = {e["key"]: e for e in netns_run.manifest.live() if e["kind"] == "proc"}
    assert f"pid:{pid}" in entries
    assert entries[f"pid:{pid}"]["start"] is not None
    assert f"pid:{host.pid}" in entries
    proc.kill()
    assert proc.wait(10) == -signal.SIGKILL
    assert proc.poll() == -signal.SIGKILL
    proc.kill()  # once it exited, a no-op (the pidfd is gone, no reused pid is hit)
    live = {e["key"] for e in netns_run.manifest.live()}
    assert f"pid:{pid}" not in live


def _offered(host: PeerHost) -> list[int]:
    """The pids of the spares the host has offered so far (reading its messages)."""
    host._pump(lambda: False, 0.0)
    with host._cond:
        return [spare[0] for spare in host._spares]


def test_a_spawn_goes_straight_to_a_spare_the_host_offered(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    host.wait_warm()
    assert wait_for(lambda: len(_offered(host)) == 2, 10)
    offered = _offered(host)
    procs = [_serve_all(host, net[n], tmp_path, "--peers", "udp") for n in ("a", "b")]
    assert [p._pid for p in procs] == offered  # known at once: no reply from the host
    for proc in procs:
        read_lines(_popen(proc), 1, 20)
    # The host heard of both assignments: it offers two new spares and reports the exits.
    assert wait_for(lambda: len(set(_offered(host)) - set(offered)) == 2, 10)
    for proc in procs:
        proc.kill()
        assert proc.wait(10) == -signal.SIGKILL


def test_more_spawns_than_spares_start_all_the_same(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    # Two go to the offered spares, the rest to the host, which forks one for each.
    host.wait_warm()
    assert wait_for(lambda: len(_offered(host)) == 2, 10)

    def spawn(i: int) -> ForkedProcess:
        return host.spawn(net["a"].fd, ["udp", "serve", "--port", str(9100 + i)],
                          tmp_path / f"{i}.out", tmp_path / f"{i}.err", ready_lines=1)  # fmt: skip

    procs = [spawn(i) for i in range(5)]
    # Then spares offered after those: none may be one the host used for a request itself.
    assert wait_for(lambda: len(_offered(host)) == 2, 10)
    procs += [spawn(i) for i in range(5, 7)]
    for proc in procs:
        assert b'"ready"' in read_lines(_popen(proc), 1, 20)[0]
    assert len({proc.pid for proc in procs}) == 7
    for proc in procs:
        proc.terminate()
        assert proc.wait(10) == 0


def test_a_request_the_host_gets_never_takes_a_spare_it_offered(
    host: PeerHost, net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The harness may be assigning an offered spare while a request reaches the host (the
    # offer still in flight): the host must fork for the request, never reuse that spare.
    host.wait_warm()
    assert wait_for(lambda: len(_children(host.pid)) == 2, 10)  # offered, not yet read
    with monkeypatch.context() as m:
        m.setattr(host, "_assign", lambda request, fds, stdout: None)  # as if none came
        first = _serve_all(host, net["a"], tmp_path, "--peers", "udp", "--udp-port", "9001")
    others = [_serve_all(host, net[n], tmp_path, "--peers", "udp") for n in ("a", "b")]
    for proc in (first, *others):
        read_lines(_popen(proc), 1, 20)
    assert len({proc.pid for proc in (first, *others)}) == 3
    for proc in (first, *others):
        proc.kill()


def test_a_spare_that_dies_before_it_is_assigned_is_not_used(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    host.wait_warm()
    assert wait_for(lambda: len(_offered(host)) == 2, 10)
    dead = _offered(host)[0]
    os.kill(dead, signal.SIGKILL)
    assert wait_for(lambda: dead not in _offered(host), 10)  # its exit report drops it
    proc = _serve_all(host, net["a"], tmp_path, "--peers", "udp")
    read_lines(_popen(proc), 1, 20)
    assert proc.pid != dead
    proc.terminate()
    assert proc.wait(10) == 0


def _spares_offered(host: PeerHost) -> None:
    """Wait until the host offered its spares: a child forked for a request that reached the
    host (none offered yet) has no socket to the harness, and is not recycled."""
    host.wait_warm()
    assert wait_for(lambda: len(_offered(host)) == 2, 10)


def _back_in_pool(host: PeerHost, pid: int) -> bool:
    """Whether recycled child ``pid`` has said it is a spare again (not reading it)."""
    with host._cond:
        rec = host._recycled.get(pid)
        return rec is not None and readable(rec.sock, 0)


ALL = ("http", "udp", "chao", "icmp")


def test_a_recycled_peer_leaves_its_node_and_serves_the_next(
    host: PeerHost, net: Any, netns_run: Any, tmp_path: Path
) -> None:
    a, b = net["a"], net["b"]
    _spares_offered(host)
    first = _serve_all(host, a, tmp_path)
    read_ready(_popen(first), 4, 20)
    pid = first.pid
    assert host.recycle(first) == pid
    assert first.poll() == 0  # done with, as serve-all is on SIGTERM
    first.kill()  # a no-op now: the process is not this object's any more
    assert wait_for(lambda: _back_in_pool(host, pid), 10)
    # It stopped serving (its stats are in node a's log), left node a, and holds nothing of
    # it: 0-2 (/dev/null), its socket and the host's namespace (its packet socket's
    # duplicate, on the closer thread, goes a grace period later).
    assert "[chao] stopped" in (tmp_path / "a.err").read_text()
    assert os.readlink(f"/proc/{pid}/ns/net") == os.readlink(f"/proc/{host.pid}/ns/net")
    fds = f"/proc/{pid}/fd"
    assert wait_for(lambda: sorted(os.listdir(fds)) == list("01234"), 5)
    assert {os.readlink(f"{fds}/{n}") for n in "012"} == {os.devnull}
    assert f"pid:{pid}" in {e["key"] for e in netns_run.manifest.live()}  # still recorded
    second = _serve_all(host, b, tmp_path)  # the next spawn takes it
    assert second.pid == pid
    ready = {e["peer"]: e for e in read_ready(_popen(second), 4, 20)}
    assert os.stat(f"/proc/{pid}/ns/net").st_ino == os.fstat(b.fd).st_ino
    for peer in ALL:
        probes.probe_peer(peer, src=a, src_ifname="eth0", dst=b, dst_ifname="eth0", ready=ready)
    second.terminate()
    assert second.wait(10) == 0
    assert f"pid:{pid}" not in {e["key"] for e in netns_run.manifest.live()}


def test_a_peer_recycled_again_and_again_serves_each_node_and_keeps_nothing(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    _spares_offered(host)
    pid = 0
    for round_ in range(4):
        here, there = (net["a"], net["b"]) if round_ % 2 else (net["b"], net["a"])
        proc = _serve_all(host, here, tmp_path)
        ready = {e["peer"]: e for e in read_ready(_popen(proc), 4, 20)}
        pid = pid or proc.pid
        assert proc.pid == pid  # the same process every time
        for peer in ("chao", "udp"):
            probes.probe_peer(peer, src=there, src_ifname="eth0", dst=here, dst_ifname="eth0",
                              ready=ready)  # fmt: skip
        assert host.recycle(proc) == pid
        assert wait_for(lambda: _back_in_pool(host, pid), 10)  # noqa: B023
        fds = f"/proc/{pid}/fd"
        assert wait_for(lambda: sorted(os.listdir(fds)) == list("01234"), 5)  # noqa: B023


def test_a_peer_is_recycled_a_limited_number_of_times(
    host: PeerHost, net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forked, "MAX_USES", 2)
    _spares_offered(host)
    first = _serve_all(host, net["a"], tmp_path, "--peers", "udp")
    read_lines(_popen(first), 1, 20)
    assert host.recycle(first) == first.pid
    assert wait_for(lambda: _back_in_pool(host, first.pid), 10)
    second = _serve_all(host, net["b"], tmp_path, "--peers", "udp")
    read_lines(_popen(second), 1, 20)
    assert second.pid == first.pid
    assert host.recycle(second) == 0  # its second assignment was its last
    second.kill()
    assert second.wait(10) == -signal.SIGKILL


def test_only_a_serving_serve_all_is_recycled(host: PeerHost, net: Any, tmp_path: Path) -> None:
    killed = _serve_all(host, net["a"], tmp_path)
    read_ready(_popen(killed), 4, 20)
    killed.kill()
    assert killed.wait(10) == -signal.SIGKILL
    assert host.recycle(killed) == 0  # a test stopped or killed it: its status stands
    other = host.spawn(net["a"].fd, ["udp", "serve"], tmp_path / "u.out", tmp_path / "u.err",
                       ready_lines=1)  # fmt: skip
    read_lines(_popen(other), 1, 20)
    assert host.recycle(other) == 0  # not serve-all
    assert other.poll() is None
    other.terminate()
    assert other.wait(10) == 0


def test_a_spare_says_its_commands_status_before_it_exits(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    _spares_offered(host)
    proc = host.spawn(net["a"].fd, ["udp", "send", "--bogus"], tmp_path / "o", tmp_path / "e")
    assert proc.channel is not None  # a spare's socket to us
    assert readable(proc.channel, 20)
    msg, fds = recv_msg(proc.channel)
    assert (msg, fds) == ({"op": "done", "code": 2}, [])
    assert "error: the following arguments are required" in (tmp_path / "e").read_text()  # flushed
    assert proc.wait(10) == 2  # and the host's report agrees


def test_a_command_that_ends_by_itself_takes_a_spare_not_a_recycled_serve_all(
    host: PeerHost, net: Any, tmp_path: Path
) -> None:
    _spares_offered(host)
    peer = _serve_all(host, net["a"], tmp_path, "--peers", "udp")
    read_lines(_popen(peer), 1, 20)
    pid = peer.pid
    assert host.recycle(peer) == pid
    assert wait_for(lambda: _back_in_pool(host, pid), 10)
    client = host.spawn(net["b"].fd, ["udp", "send", "--bogus"], tmp_path / "o", tmp_path / "e")
    assert client.wait_done(20) == 2
    assert client.pid != pid
    assert pid in host._recycled  # still warm, for the next serve-all
    again = _serve_all(host, net["b"], tmp_path, "--peers", "udp")
    assert again.pid == pid
    again.kill()
    assert again.wait(10) == -signal.SIGKILL


def test_a_recycled_peer_that_does_not_come_back_in_time_is_killed(
    host: PeerHost, net: Any, netns_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forked, "RECYCLE_TIMEOUT", 0.2)
    _spares_offered(host)
    proc = _serve_all(host, net["a"], tmp_path)
    read_ready(_popen(proc), 4, 20)
    pid = proc.pid
    os.kill(pid, signal.SIGSTOP)  # hung: it cannot act on the recycle signal
    assert host.recycle(proc) == pid
    time.sleep(0.3)
    other = _serve_all(host, net["b"], tmp_path)  # finds it late: kills it, takes a spare
    assert other.pid != pid
    assert wait_for(lambda: exited(pid), 10)

    def struck_off() -> bool:
        host._pump(lambda: False, 0.0)  # its exit report, read as the next spawn would
        return f"pid:{pid}" not in {e["key"] for e in netns_run.manifest.live()}

    assert wait_for(struck_off, 10)
    with host._cond:
        assert pid not in host._recycled
    other.terminate()
    assert other.wait(10) == 0


def test_recycled_peers_are_kept_up_to_a_limit(
    host: PeerHost, net: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(forked, "MAX_RECYCLED", 1)
    _spares_offered(host)
    procs = [_serve_all(host, net[n], tmp_path) for n in ("a", "b")]
    for proc in procs:
        read_ready(_popen(proc), 4, 20)
    assert host.recycle(procs[0]) == procs[0].pid
    assert host.recycle(procs[1]) == 0  # the caller kills it
    assert procs[1].poll() is None
    procs[1].kill()
    assert procs[1].wait(10) == -signal.SIGKILL


def test_the_host_and_its_spares_live_in_a_namespace_of_their_own(host: PeerHost) -> None:
    # Its spares rehearse a peer's start on loopback there, never where the harness runs.
    host.wait_warm()
    mine = os.readlink("/proc/self/ns/net")
    theirs = os.readlink(f"/proc/{host.pid}/ns/net")
    assert theirs != mine
    assert wait_for(lambda: len(_children(host.pid)) == 2, 10)  # the spares, rehearsed
    for spare in _children(host.pid):
        assert os.readlink(f"/proc/{spare}/ns/net") == theirs
        # The rehearsal closed what it opened: the spare holds 0-2, its socket to the host
        # and (to come back to after a recycled assignment) the host's namespace.
        fds = f"/proc/{spare}/fd"
        assert wait_for(lambda: sorted(os.listdir(fds)) == list("01234"), 5)  # noqa: B023
        assert os.readlink(f"{fds}/4") == theirs


@pytest.mark.parametrize("after", [0.0, 0.2])
def test_a_host_closed_soon_after_its_hello_exits_by_itself(host: PeerHost, after: float) -> None:
    # Closed while it forks and readies its spares, the host must kill each by its pid too
    # (killpg alone left some alive), not wait on them until the harness's timeout
    # SIGKILLs it: every such close took 5 s.
    host.wait_warm()
    time.sleep(after)
    with open(f"/proc/{host.pid}/status", encoding="ascii") as fh:
        assert "VmRSS" in fh.read()
    assert host.close() == 0


def test_the_host_learns_which_pages_a_spare_copies_ahead(host: PeerHost) -> None:
    # prefault.py: a scout's copied pages, which every spare then copies at once. Some,
    # but not the whole heap (that would be every spare's ~20 MB, for no gain).
    import platform

    host.wait_warm()
    release = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
    if release < (5, 14):
        assert host.prefault_bytes == 0  # no MADV_POPULATE_WRITE: nothing is claimed
        return
    with open(f"/proc/{host.pid}/status", encoding="ascii") as fh:
        rss_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    assert 256 * 1024 < host.prefault_bytes < rss_kb * 1024 // 2


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as fh:
        return [int(x) for x in fh.read().split()]


def test_children_die_with_the_host(host: PeerHost, net: Any, tmp_path: Path) -> None:
    procs = [_serve_all(host, net[n], tmp_path, "--peers", "udp") for n in ("a", "b")]
    for proc in procs:
        read_lines(_popen(proc), 1, 20)
    pids = [p.pid for p in procs]  # taken before the host dies: its replies are read
    os.kill(host.pid, signal.SIGKILL)
    assert wait_for(lambda: all(exited(pid) for pid in pids), 10)
    assert [p.wait(10) for p in procs] == [HOST_DIED, HOST_DIED]
    with pytest.raises(PeerHostError, match="peer host"):
        _serve_all(host, net["a"], tmp_path)


OWNER = """
import sys, time
from pathlib import Path
from rawstack_harness.backends.linux.nodes import build
from rawstack_harness.backends.linux.runs import LinuxRun
from rawstack_harness.topology import pair

run = LinuxRun(label="peerhost-test")
net = build(pair(), run)
out = Path(sys.argv[1])
shared = sys.argv[2] == "shared"  # a tenant of the shared-peers process, not a child
args = ["serve-all", "--iface", "eth0", "--peers", "udp"] if shared else ["udp", "serve"]
o, e = out.with_suffix(".o"), out.with_suffix(".e")
child = net["a"].spawn_rawstack(args, o, e, 1, shared=shared)
child.stdout.readline()
host = run.peer_host()
out.write_text(" ".join([net["a"].path, str(run.dir), str(host.pid), str(child.pid)]))
time.sleep(300)
"""


@pytest.mark.parametrize("start", ["fork", "shared"])
def test_sigkilled_owner_leaves_no_host_child_or_namespace(tmp_path: Path, start: str) -> None:
    out = tmp_path / "pids"
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(out), start], cwd=tmp_path)
    try:
        assert wait_for(lambda: out.exists() and out.read_text(), 60), "the owner never built"
        ns, run_dir, host_pid, child_pid = out.read_text().split()
        assert os.path.exists(f"/proc/{child_pid}")
        owner.kill()
        owner.wait(30)
    finally:
        if owner.poll() is None:
            owner.kill()

    def gone() -> bool:
        # A zombie has let go of everything; this VM's init reaps orphans a second late.
        paths_gone = not any(os.path.exists(p) for p in (ns, run_dir))
        return paths_gone and exited(host_pid) and exited(child_pid)

    assert wait_for(gone, 15), "the killed owner's host, child or namespace outlived it"


INNER = """
import os

def _ppid(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])

def test_parent(netns_pair, netns_run):
    parents = {_ppid(p.proc.pid) for p in netns_pair.peers.values()}
    expect = os.environ["EXPECT"]
    if expect == "host":
        assert parents == {netns_run.peer_host().pid}
    else:
        assert parents == {os.getpid()}
    assert netns_run.fork is (expect == "host")  # rawstack's clients follow the option too
"""


@pytest.mark.parametrize(("option", "expect"), [([], "host"), (["--netns-peer-start=exec"], "me")])
def test_fixture_peers_are_forked_by_the_host_unless_told_to_exec(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, option: list[str], expect: str
) -> None:
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.setenv("EXPECT", expect)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *option)
    result.assert_outcomes(passed=1)


REUSE = """
import json, os, time

def _record(net):
    with open(os.environ["PIDS"], "a") as fh:
        fh.write(json.dumps(sorted(p.proc.pid for p in net.peers.values())) + "\\n")

def test_warm(netns_pair):
    pass  # the run's first spawns may come before the host offered any spare

def test_pause():
    time.sleep(0.5)  # time for the spares to be offered, and the last peers recycled

def test_first(netns_pair):
    _record(netns_pair)

def test_pause_again():
    time.sleep(0.5)

def test_second(netns_pair):
    _record(netns_pair)
"""


def test_the_next_tests_peers_are_the_last_ones_recycled(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytester.makepyfile(test_reuse=REUSE)
    pids = tmp_path / "pids"
    monkeypatch.setenv("PIDS", str(pids))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)
    first, second = (json.loads(line) for line in pids.read_text().splitlines())
    assert first == second  # the same two processes, recycled, each in a new node
    assert all(exited(pid) for pid in first)  # and gone with the run
