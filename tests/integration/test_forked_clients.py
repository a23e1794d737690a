"""rawstack's commands in a Linux node are forked by the run's warm peer host
(``clients.rawstack``, ``run_client``, ``LinuxNode.run_rawstack``): the same status and output
as ``python -m rawstack`` exec'ed in the node, in the caller's working directory and
``RAWSTACK_*`` environment, killed at their timeout; exec'ed when the run says so
(``--netns-peer-start=exec``).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from _loopback import exited, wait_for
from rawstack_harness import clients
from rawstack_harness.backends.linux.forked import ForkedProcess

pytestmark = pytest.mark.netns


@pytest.fixture
def spawned(netns_run: Any, monkeypatch: pytest.MonkeyPatch) -> list[ForkedProcess]:
    """What the run's peer host is asked to fork from here on, in order (forking, whatever
    ``--netns-peer-start`` the run was opened with)."""
    monkeypatch.setattr(netns_run, "fork", True)
    host = netns_run.peer_host()
    procs: list[ForkedProcess] = []
    real = host.spawn

    def spy(*args: Any, **kwargs: Any) -> ForkedProcess:
        procs.append(real(*args, **kwargs))
        return procs[-1]

    monkeypatch.setattr(host, "spawn", spy)
    return procs


def _execed(node: Any, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = node.run(
        clients.rawstack_argv(*args), capture_output=True, text=True
    )
    return done


CRAFT = ["craft", "icmp-echo", "--src", "10.0.0.1", "--dst", "10.0.0.2"]


@pytest.mark.parametrize(
    "args",
    [
        CRAFT,
        ["udp", "send", "--bogus"],  # a usage error: status 2
        ["udp", "send", "10.0.0.2", "9", "-c", "1", "--timeout", "0.2"],  # lost: status 1
        ["chao", "send", "--iface", "nosuch0", "-c", "1"],
    ],
    ids=["craft", "usage", "lost", "no-iface"],
)
def test_a_forked_command_says_what_the_execed_one_says(
    net: Any, spawned: list[ForkedProcess], args: list[str]
) -> None:
    a = net["a"]
    done = clients.rawstack(a, *args)
    assert [p.args for p in spawned] == [["rawstack", *args]]
    assert done.args == ["rawstack", *args]
    execed = _execed(a, args)
    assert (done.returncode, done.stdout, done.stderr) == (
        execed.returncode,
        execed.stdout,
        execed.stderr,
    )
    assert a.procs == []  # nothing of it left for the teardown


def test_a_forked_ping_gets_the_kernels_reply(net: Any, spawned: list[ForkedProcess]) -> None:
    done = clients.rawstack(net["a"], "ping", "-c", "1", "-W", "2", "10.0.0.2")
    assert done.returncode == 0, done.stderr
    assert "1 packets transmitted, 1 received, 0% packet loss" in done.stdout
    assert len(spawned) == 1


def test_run_client_forks_every_protocol(netns_pair: Any, spawned: list[ForkedProcess]) -> None:
    a, b = netns_pair["a"], netns_pair["b"]
    for proto in clients.PROTOCOLS:
        assert clients.run_client(proto, a, b, ready=netns_pair.peers["b"].ready) > 0
    assert [cast("list[str]", p.args)[1] for p in spawned] == ["http", "udp", "chao", "ping"]


def test_a_relative_output_file_lands_in_the_callers_directory(
    netns_pair: Any, spawned: list[ForkedProcess], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"http://10.0.0.2:{netns_pair.peers['b'].port('http')}/"
    done = clients.rawstack(netns_pair["a"], "http", "get", url, "-o", "page")
    assert done.returncode == 0, done.stderr
    assert len(spawned) == 1
    execed = _execed(netns_pair["a"], ["http", "get", url])
    assert (tmp_path / "page").read_text() == execed.stdout != ""


def test_the_callers_rawstack_variables_reach_the_command(
    net: Any, spawned: list[ForkedProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = net["a"]
    native = clients.rawstack(a, *CRAFT).stdout
    monkeypatch.setenv("RAWSTACK_OS", "macos")  # ip_len in host byte order
    shaped = clients.rawstack(a, *CRAFT)
    assert shaped.returncode == 0
    assert shaped.stdout == _execed(a, CRAFT).stdout != native
    assert len(spawned) == 2


def test_a_command_past_its_timeout_is_killed(net: Any, spawned: list[ForkedProcess]) -> None:
    t0 = time.monotonic()
    args = ["udp", "send", "10.0.0.2", "9", "-c", "1", "--timeout", "30"]
    with pytest.raises(subprocess.TimeoutExpired) as info:
        net["a"].run_rawstack(args, timeout=0.5)
    assert time.monotonic() - t0 < 10
    assert info.value.cmd == ["rawstack", *args]
    (proc,) = spawned
    assert wait_for(lambda: exited(proc._pid), 10)
    assert net["a"].procs == []


def test_a_command_whose_caller_is_interrupted_is_killed(
    net: Any, spawned: list[ForkedProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: ForkedProcess, timeout: float | None = None) -> int:
        raise KeyboardInterrupt  # Ctrl-C while the test waits for the command

    monkeypatch.setattr(ForkedProcess, "wait_done", interrupted)
    args = ["udp", "send", "10.0.0.2", "9", "-c", "1", "--timeout", "30"]
    with pytest.raises(KeyboardInterrupt):
        net["a"].run_rawstack(args, timeout=60)
    (proc,) = spawned
    assert wait_for(lambda: exited(proc.pid), 10)
    assert net["a"].procs == []


def test_a_run_opened_not_to_fork_execs(
    net: Any, netns_run: Any, spawned: list[ForkedProcess], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(netns_run, "fork", False)
    done = clients.rawstack(net["a"], "udp", "send", "--bogus")
    assert done.returncode == 2
    assert "error: the following arguments are required" in done.stderr
    assert done.args == clients.rawstack_argv("udp", "send", "--bogus")
    assert spawned == []


def test_clients_from_several_threads_at_once_each_get_their_reply(
    netns_pair: Any, spawned: list[ForkedProcess]
) -> None:
    a, b, ready = netns_pair["a"], netns_pair["b"], netns_pair.peers["b"].ready
    errors: list[BaseException] = []

    def exchanges(first: int) -> None:
        for k in range(6):  # more at once than the host keeps spares: it forks the rest
            try:
                clients.run_client(clients.PROTOCOLS[(first + k) % 4], a, b, ready=ready)
            except BaseException as exc:  # reported below, by the test
                errors.append(exc)

    threads = [threading.Thread(target=exchanges, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(spawned) == 36
    assert not [p for p in a.procs if p in spawned]
