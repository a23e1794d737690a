"""Rootless runs for real: a user namespace per run, a pid namespace tied to its owner.

Each test runs a small program in a fresh interpreter (``enter`` needs a single-threaded
process) and looks at it from the host. As root the same code paths run (root may make user
namespaces too); ``sh ci/rootless.sh`` runs this file as a freshly created plain user, where
the tests marked for a plain user run as well.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from _loopback import RAWSTACK, exited, rootless, start_inner_pytest, wait_for

PLAIN_USER = pytest.mark.skipif(
    os.geteuid() == 0, reason="needs a plain user (sh ci/rootless.sh runs this as one)"
)

PRELUDE = """
import json, os, socket, subprocess, sys, threading, time
from rawstack_harness.backends.linux import pidinit, userns
def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\\n"); sys.stdout.flush()
"""


def _py(body: str) -> list[str]:
    return [sys.executable, "-c", PRELUDE + textwrap.dedent(body)]


def _run(body: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_py(body), capture_output=True, text=True, timeout=timeout, check=False)


def _lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def _in_userns(ino: int) -> list[int]:
    """Host pids whose user namespace is ``ino``."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}/ns/user").st_ino == ino:
                    pids.append(int(name))
            except OSError:
                continue
    return pids


def _alive_in_userns(ino: int) -> list[int]:
    """:func:`_in_userns`, less the processes that have exited (see ``exited``)."""
    return [pid for pid in _in_userns(ino) if not exited(pid)]


def _kill_run(ino: int) -> None:
    """SIGKILL what is left of a run a failed test started (never our own namespace's)."""
    if ino != os.stat("/proc/self/ns/user").st_ino:
        for pid in _in_userns(ino):
            os.kill(pid, signal.SIGKILL)


def _nspid(pid: int) -> list[int]:
    """``pid`` in each pid namespace it is in, outermost first (the host's /proc)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("NSpid:"):
                return [int(p) for p in line.split()[1:]]
    return []


def _host_pid(userns_ino: int, inner: int) -> int:
    """The host pid of the run's process whose pid in the run is ``inner``."""
    (found,) = [p for p in _in_userns(userns_ino) if _nspid(p)[-1] == inner and len(_nspid(p)) > 1]
    return found


def _mounts() -> list[str]:
    """Host mount points and sources, less the root harness's own (other runs on this host
    come and go meanwhile); the rootless run's names do not start with ``rsh``."""
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    mounts = (" ".join(line.split()[4:]) for line in lines)
    return sorted(m for m in mounts if not m.startswith("/run/netns/rsh"))


def _host_netns() -> list[str] | None:
    if not os.path.isdir("/run/netns"):
        return None
    return sorted(n for n in os.listdir("/run/netns") if not n.startswith("rsh"))


def _user_procs() -> set[int]:
    uid = os.getuid()
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid and not exited(name):
                    found.add(int(name))
            except OSError:
                continue
    return found


@functools.cache
def _refused() -> str | None:
    """The kernel's refusal line, or None when a rootless run can start here."""
    done = _run(
        """
        try:
            userns.enter(); pidinit.begin()
        except userns.Refused as exc:
            say(refused=str(exc))
        """
    )
    if done.returncode == 77:  # init could not mount /proc: the line is on stderr
        return done.stderr.strip()
    found = _lines(done.stdout)
    return str(found[0]["refused"]) if found else None


@pytest.fixture(autouse=True)
def _rootless_possible() -> None:
    """Skip, naming the setting, where this kernel refuses a rootless run."""
    reason = _refused()
    if reason:
        pytest.skip(reason)


def test_the_run_is_root_of_its_own_namespaces() -> None:
    """uid 0 inside (mapped to the real uid), pid 2 under an init, veth, raw and packet
    sockets, a private /run, and its own network namespace."""
    real = os.getuid()
    done = _run(
        """
        host_net = os.stat("/proc/self/ns/net").st_ino
        userns.enter()
        pidinit.begin()
        threading.Thread(target=lambda: None).start()  # threads work again in the run
        uid_map = open("/proc/self/uid_map").read().split()
        ps = subprocess.run(["ps", "-e", "-o", "pid=,comm="], capture_output=True, text=True)
        subprocess.run(["ip", "netns", "add", "rootlessx"], check=True)
        subprocess.run(["ip", "link", "add", "name", "v0", "type", "veth", "peer", "name", "v1",
                        "netns", "rootlessx"], check=True)
        links = subprocess.run(["ip", "netns", "exec", "rootlessx", "ip", "-o", "link"],
                               capture_output=True, text=True).stdout
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        pkt = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
        raw.close(); pkt.close()
        say(uid=os.getuid(), pid=os.getpid(), uid_map=uid_map, ps=ps.stdout.split(),
            v1="v1@" in links, run=os.listdir("/run"),
            own_net=os.stat("/proc/self/ns/net").st_ino != host_net)
        """
    )
    assert done.returncode == 0, done.stderr
    (got,) = _lines(done.stdout)
    assert got["uid"] == 0
    assert got["pid"] == 2
    assert got["uid_map"] == ["0", str(real), "1"]
    assert got["ps"][:2] == ["1", "rsh-init"]
    assert got["v1"] is True
    assert "netns" in got["run"]
    assert got["own_net"] is True
    assert not os.path.exists("/run/netns/rootlessx")  # the host's /run never saw it


def test_exit_status_and_signals_reach_the_run() -> None:
    """The process the user started exits with the run's status and forwards SIGTERM."""
    done = _run("userns.enter(); pidinit.begin(); sys.exit(3)")
    assert done.returncode == 3, done.stderr
    proc = subprocess.Popen(
        _py(
            """
            import signal
            userns.enter(); pidinit.begin()
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))
            say(ready=True)
            time.sleep(60)
            """
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline()) == {"ready": True}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 42
    finally:
        proc.kill()  # the outer process: its death ends the run whatever happened
        proc.wait()


@pytest.mark.parametrize("victim", ["outer", "run"])
def test_sigkill_leaves_no_process_and_no_mount(victim: str) -> None:
    """SIGKILL of the process the user started, or of the run itself, ends every process
    of the run (setsid and double-forked ones too) and every mount; the host is as before."""
    procs_before, mounts_before = _user_procs(), _mounts()
    netns_before = _host_netns()
    proc = subprocess.Popen(
        _py(
            """
            userns.enter(); pidinit.begin()
            subprocess.run(["ip", "netns", "add", "rootlesskill"], check=True)
            subprocess.Popen(["ip", "netns", "exec", "rootlesskill", "sleep", "300"],
                             start_new_session=True)
            subprocess.Popen(["sh", "-c", "setsid sleep 301 & sleep 302 &"])
            say(userns=os.stat("/proc/self/ns/user").st_ino)
            time.sleep(300)
            """
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    ino = -1
    try:
        assert proc.stdout is not None
        ino = int(json.loads(proc.stdout.readline())["userns"])
        # outer, init, run, three sleeps (and their shells), once the shells have forked
        assert wait_for(lambda: len(_in_userns(ino)) >= 6, 10), _in_userns(ino)
        target = proc.pid if victim == "outer" else _host_pid(ino, 2)
        os.kill(target, signal.SIGKILL)
        proc.wait(timeout=20)
        assert wait_for(lambda: not _alive_in_userns(ino), 10), _alive_in_userns(ino)
    finally:
        _kill_run(ino)
        proc.kill()
        proc.wait()
    if os.geteuid() != 0:  # root's processes are the whole machine's: the userns check holds
        assert wait_for(lambda: _user_procs() <= procs_before, 10), _user_procs() - procs_before
    assert _mounts() == mounts_before
    assert _host_netns() == netns_before


def test_join_reaches_a_live_run_and_dies_with_it() -> None:
    """join() from outside sees the run's /run/netns; what it starts dies with the run."""
    owner = subprocess.Popen(
        _py(
            """
            userns.enter(); pidinit.begin()
            subprocess.run(["ip", "netns", "add", "rootlessjoin"], check=True)
            say(outer=int(os.environ[pidinit.ENV_OUTER]))
            time.sleep(300)
            """
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    joiner: subprocess.Popen[str] | None = None
    got: dict[str, Any] = {}
    try:
        assert owner.stdout is not None
        outer = json.loads(owner.stdout.readline())["outer"]
        assert outer == owner.pid
        joiner = subprocess.Popen(
            _py(
                f"""
                userns.join({outer})
                ls = sorted(os.listdir("/run/netns"))
                child = subprocess.Popen(["sleep", "300"], stdout=subprocess.DEVNULL)
                say(netns=ls, child=child.pid)
                child.wait()
                say(child_status=child.returncode)
                """
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert joiner.stdout is not None
        got = json.loads(joiner.stdout.readline())
        assert got["netns"] == ["rootlessjoin"]
        assert len(_nspid(got["child"])) == 2  # the child lives in the run's pid namespace
        owner.kill()
        owner.wait()
        # The run's init died with its owner: the joined child was killed with the namespace.
        assert json.loads(joiner.stdout.readline()) == {"child_status": -signal.SIGKILL}
        joiner.wait(timeout=20)
    finally:
        owner.kill()
        owner.wait()
        if joiner is not None and joiner.poll() is None:  # only when the test failed
            if "child" in got:
                os.kill(got["child"], signal.SIGKILL)
            joiner.kill()
            joiner.wait()


def test_threads_are_refused_with_a_reason() -> None:
    done = _run(
        """
        ev = threading.Event()
        threading.Thread(target=ev.wait, daemon=True).start()
        try:
            userns.enter()
        except userns.Refused as exc:
            say(error=str(exc), code=exc.exit_code)
        """
    )
    (got,) = _lines(done.stdout)
    assert got["code"] == 77
    assert "single-threaded" in got["error"]
    assert "2 threads" in got["error"]


def test_user_max_user_namespaces_zero_is_named() -> None:
    """A user namespace's own limit set to 0 (writable by its root) refuses the next one."""
    done = _run(
        """
        userns.enter()
        with open("/proc/sys/user/max_user_namespaces", "w") as fh:
            fh.write("0")
        try:
            userns.enter()
        except userns.Refused as exc:
            say(error=str(exc))
        """
    )
    (got,) = _lines(done.stdout)
    assert "user.max_user_namespaces=0 allows none" in str(got["error"]), got


SECCOMP = {  # machine -> (AUDIT_ARCH_*, __NR_unshare)
    "x86_64": (0xC000003E, 272),
    "aarch64": (0xC00000B7, 97),
}


@pytest.mark.skipif(platform.machine() not in SECCOMP, reason="no seccomp table for this CPU")
def test_seccomp_filter_is_named() -> None:
    """A real seccomp filter returning EPERM for unshare(2), as container profiles do."""
    arch, nr = SECCOMP[platform.machine()]
    done = _run(
        f"""
        import ctypes, errno
        from rawstack.codec import bpf
        LD, JEQ, RET = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET
        prog = [
            bpf.Insn(LD, k=4), bpf.Insn(JEQ, 0, 3, {arch}),    # seccomp_data.arch
            bpf.Insn(LD, k=0), bpf.Insn(JEQ, 0, 1, {nr}),      # seccomp_data.nr == unshare
            bpf.Insn(RET, k=0x00050000 | errno.EPERM),         # SECCOMP_RET_ERRNO
            bpf.Insn(RET, k=0x7FFF0000),                       # SECCOMP_RET_ALLOW
        ]
        code = ctypes.create_string_buffer(bpf.encode_program(prog))
        class Fprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
        fprog = Fprog(len(prog), ctypes.addressof(code))
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
        assert libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
        try:
            userns.enter()
        except userns.Refused as exc:
            say(error=str(exc))
        """
    )
    (got,) = _lines(done.stdout)
    assert "a seccomp filter blocks it" in str(got["error"]), got


@PLAIN_USER
def test_capabilities_hold_only_inside_the_run() -> None:
    """A plain user's raw socket is refused on the host (rawstack exits 77) and allowed in
    the run, whose capabilities are those of its user namespace only."""
    rawstack = [*RAWSTACK, "ping", "-c", "1", "-W", "1", "127.0.0.1"]
    outside = subprocess.run(rawstack, capture_output=True, text=True, timeout=30, check=False)
    assert outside.returncode == 77, outside.stderr
    done = _run(
        f"""
        userns.enter(); pidinit.begin()
        inside = subprocess.run({rawstack!r}, capture_output=True, text=True)
        try:
            with open("/proc/sys/kernel/hostname", "w") as fh:  # the host's UTS: not ours
                fh.write("x")
            host_write = "allowed"
        except OSError as exc:
            host_write = exc.strerror
        say(code=inside.returncode, err=inside.stderr, host_write=host_write)
        """
    )
    (got,) = _lines(done.stdout)
    assert got["code"] == 0, got["err"]
    assert got["host_write"] == "Permission denied"


CLI = [sys.executable, "-m", "rawstack_harness.cli", "--netns-mode=rootless"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def test_up_exec_down_rootless() -> None:
    """`up` in rootless mode keeps a topology in the keeper's own namespaces; `exec` reaches
    its nodes (and its commands are the keeper's run's); `down` leaves nothing."""
    name = f"rl{os.getpid()}"
    up = _cli("up", "pair", "--name", name)
    try:
        assert up.returncode == 0, up.stderr
        assert f"netns-harness exec {name} NODE -- COMMAND" in up.stdout
        (kept,) = [r for r in json.loads(_cli("status", "--json").stdout)["runs"]
                   if r["name"] == name]  # fmt: skip
        outer = int(kept["pid"])
        ino = os.stat(f"/proc/{outer}/ns/user").st_ino
        assert ino != os.stat("/proc/self/ns/user").st_ino
        ran = _cli("exec", name, "a", "--", "ping", "-c1", "-W2", "10.0.0.2")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        inside = _cli("exec", name, "b", "--", "sh", "-c", "cat /proc/self/uid_map; exit 5")
        assert inside.returncode == 5
        assert inside.stdout.split()[:2] == ["0", str(os.getuid())]
        assert _cli("exec", name, "c", "--", "true").stderr.endswith("(nodes: a, b)\n")
        down = _cli("down", name)
        assert down.returncode == 0, down.stderr
        assert wait_for(lambda: not _alive_in_userns(ino), 10), _alive_in_userns(ino)
    finally:
        _cli("down", name)
    gone = _cli("exec", name, "a", "--", "true")
    assert gone.returncode == 2
    assert "no kept topology named" in gone.stderr


def test_killed_rootless_keeper_leaves_nothing() -> None:
    """SIGKILL of a rootless keeper ends its whole run; its listing goes at the next look."""
    name = f"rlk{os.getpid()}"
    assert _cli("up", "pair", "--name", name).returncode == 0
    (kept,) = [r for r in json.loads(_cli("status", "--json").stdout)["runs"]
               if r["name"] == name]  # fmt: skip
    outer = int(kept["pid"])
    ino = os.stat(f"/proc/{outer}/ns/user").st_ino
    os.kill(outer, signal.SIGKILL)
    assert wait_for(lambda: not _alive_in_userns(ino), 10), _alive_in_userns(ino)
    status = json.loads(_cli("status", "--json").stdout)
    assert name not in [r["name"] for r in status["runs"]]
    assert _cli("down", name).returncode == 2


INNER = """
import os, time
from rawstack_harness.topology import pair

def test_hang(netns_topology):
    net = netns_topology(pair())
    net["a"].popen(["sleep", "300"])
    with open(os.environ["RSH_TEST_OUT"], "w") as fh:
        fh.write(str(os.stat("/proc/self/ns/user").st_ino))
    time.sleep(300)
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
def test_sigkill_of_a_rootless_pytest_leaves_nothing(tmp_path: Path, workers: list[str]) -> None:
    """A rootless pytest (and with xdist, its workers) SIGKILLed mid-test: no process of the
    run is left, no mount, and the host's /run/netns is as before."""
    if rootless():  # an inner pytest would share this run's namespaces, not start its own
        pytest.skip("needs to start outside a rootless run (ci/rootless.sh runs it so)")
    procs_before, mounts_before, netns_before = _user_procs(), _mounts(), _host_netns()
    proc, out = start_inner_pytest(tmp_path, INNER, "--netns-mode=rootless", *workers)
    ino = -1
    try:
        assert wait_for(lambda: out.exists() and out.read_text(), 60), "the inner test never ran"
        ino = int(out.read_text())
        assert len(_in_userns(ino)) >= 4  # outer, init, pytest, the node's sleep (+ workers)
        proc.kill()
        proc.wait(timeout=20)
        assert wait_for(lambda: not _alive_in_userns(ino), 10), _alive_in_userns(ino)
    finally:
        _kill_run(ino)
        proc.kill()
        proc.wait()
    if os.geteuid() != 0:
        assert wait_for(lambda: _user_procs() <= procs_before, 10), _user_procs() - procs_before
    assert _mounts() == mounts_before
    assert _host_netns() == netns_before
