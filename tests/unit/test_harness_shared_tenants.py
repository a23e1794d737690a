"""The shared-peers process's tenants, without namespaces: their output, failures and exits.

The servers are fakes on socketpairs and ``setns`` is a no-op, so what is tested is the
tenant bookkeeping alone: each tenant's callbacks write to its own log, a callback that
raises ends that tenant (status 1, its traceback in its log) and no other, and a signal
ends one tenant as serve-all would end.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from rawstack.peers.base import log

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="/proc/thread-self: Linux")


class FakeServer:
    name = "udp"

    def __init__(self) -> None:
        self.r, self.w = socket.socketpair()
        self.r.setblocking(False)
        self.closed = False

    def start(self, loop: Any) -> dict[str, Any]:
        loop.add_reader(self.r, self.on_read)
        return {"addr": "[::]:1"}

    def on_read(self) -> None:
        data = self.r.recv(16)
        if data == b"raise":
            raise ValueError("boom")
        log("udp", f"got {data.decode()}")

    def close(self) -> None:
        self.closed = True
        self.r.close()
        self.w.close()

    def stats(self) -> dict[str, Any]:
        return {"datagrams": 1}


class NoSetns:
    def setns(self, fd: int, kind: int) -> int:
        return 0


@pytest.fixture
def shared(monkeypatch: pytest.MonkeyPatch) -> Any:
    from rawstack_harness.backends.linux import peerhost, sharedpeers

    from rawstack.cli import serve_all

    made: list[FakeServer] = []

    def servers(args: Any) -> list[FakeServer]:
        made.append(FakeServer())
        return [made[-1]]

    monkeypatch.setattr(serve_all, "servers", servers)
    ready_fds: list[int] = []

    class RecordingTee(peerhost.ReadyTee):
        def __init__(self, out: Any, ready_fd: int, lines: int) -> None:
            ready_fds.append(ready_fd)
            super().__init__(out, ready_fd, lines)

    monkeypatch.setattr(sharedpeers, "ReadyTee", RecordingTee)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server: Any = sharedpeers.SharedServer(theirs, NoSetns())  # type: ignore[arg-type]
    server.made = made  # the test's handles on what it built
    server.host = ours
    server.ready_fds = ready_fds
    yield server
    ours.close()
    theirs.close()
    os.close(server.home)
    server.loop.close()


def _spawn(server: Any, vid: int, tmp_path: Path) -> tuple[Path, int]:
    from rawstack_harness.backends.linux.peerhost import send_msg

    out, err = tmp_path / f"{vid}.out", tmp_path / f"{vid}.err"
    fds = [os.open(os.devnull, os.O_RDONLY)]
    fds += [os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND) for p in (out, err)]
    r, w = os.pipe()
    msg = {"op": "spawn", "id": vid, "args": ["serve-all", "--iface", "x"], "ready_lines": 1}
    send_msg(server.host, msg, [*fds, w])
    for fd in [*fds, w]:
        os.close(fd)
    server._on_request()
    return err, r


def _run(server: Any) -> None:
    server.loop.call_later(0.05, server.loop.stop)
    server.loop.run(until=server.loop.time() + 5)


def _exits(server: Any) -> list[dict[str, Any]]:
    from rawstack_harness.backends.linux.peerhost import recv_msg

    server.host.setblocking(False)
    found: list[dict[str, Any]] = []
    try:
        while True:
            msg, _ = recv_msg(server.host)
            assert msg is not None
            found.append(msg)
    except BlockingIOError:
        return found


def test_each_tenant_logs_to_its_own_files_and_a_raising_callback_ends_it_alone(
    shared: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err1, ready1 = _spawn(shared, 1, tmp_path)
    err2, ready2 = _spawn(shared, 2, tmp_path)
    assert select.select([ready1], [], [], 5)[0], "no ready line on the ready pipe"
    assert os.read(ready1, 100).startswith(b'{"event": "ready", "peer": "udp"')
    assert os.read(ready1, 100) == b""  # closed after its one line
    one, two = shared.made
    one.w.send(b"hello")
    two.w.send(b"there")
    _run(shared)
    assert err1.read_text() == "[udp] got hello\n"
    assert err2.read_text() == "[udp] got there\n"
    assert capsys.readouterr() == ("", "")  # nothing on the process's own streams
    one.w.send(b"raise")
    _run(shared)
    assert _exits(shared) == [{"op": "exit", "vid": 1, "code": 1}]
    assert "ValueError: boom" in err1.read_text()
    assert one.closed
    assert not two.closed
    assert list(shared.tenants) == [2]
    two.w.send(b"still")
    _run(shared)
    assert err2.read_text().endswith("[udp] got still\n")
    for fd in (ready1, ready2):
        os.close(fd)


@pytest.mark.parametrize(
    ("sig", "code", "stats"),
    [
        (signal.SIGTERM, 0, True),
        (signal.SIGINT, 0, True),
        (signal.SIGKILL, -9, False),
        (signal.SIGHUP, -1, False),
    ],
)
def test_a_signal_ends_a_tenant_as_it_would_end_serve_all(
    shared: Any, tmp_path: Path, sig: int, code: int, stats: bool
) -> None:
    from rawstack_harness.backends.linux.peerhost import send_msg

    err, ready = _spawn(shared, 7, tmp_path)
    # The tenant closed its end of the ready pipe after its line; that number is free now
    # and taken here: ending the tenant must not close it again.
    bystander = os.open(os.devnull, os.O_RDONLY)
    (number,) = shared.ready_fds
    os.dup2(bystander, number)
    os.close(bystander)
    bystander = number
    send_msg(shared.host, {"op": "signal", "vid": 7, "sig": int(signal.SIGCONT)})
    shared._on_request()
    assert list(shared.tenants) == [7]  # SIGCONT: no effect
    send_msg(shared.host, {"op": "signal", "vid": 7, "sig": int(sig)})
    shared._on_request()
    assert _exits(shared) == [{"op": "exit", "vid": 7, "code": code}]
    assert ('[udp] stopped {"datagrams": 1}' in err.read_text()) is stats
    assert shared.made[0].closed
    assert shared.tenants == {}
    os.fstat(bystander)  # still open
    os.close(bystander)
    os.close(ready)
