"""The peer host's pieces that need no namespace: the ready tee and the message framing."""

from __future__ import annotations

import io
import os
import socket

from rawstack_harness.backends.linux.peerhost import ReadyTee, recv_msg, send_msg


def _drain(fd: int) -> bytes:
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
    return data


def test_tee_copies_the_first_lines_then_closes_the_pipe() -> None:
    r, w = os.pipe()
    log = io.StringIO()
    tee = ReadyTee(log, w, 2)  # type: ignore[arg-type]
    tee.write('{"event": "ready", "peer": "http"}\n')
    tee.write('{"event": "ready", "peer": "udp"}\nmore')  # the second line ends mid-write
    tee.write(" after\n")
    os.set_blocking(r, False)
    copied = _drain(r)  # EOF (b"") ends the loop: the write end is closed
    assert copied == b'{"event": "ready", "peer": "http"}\n{"event": "ready", "peer": "udp"}\nmore'
    assert log.getvalue().endswith("more after\n")
    os.close(r)


def test_tee_survives_a_reader_that_went_away() -> None:
    r, w = os.pipe()
    os.close(r)
    log = io.StringIO()
    tee = ReadyTee(log, w, 1)  # type: ignore[arg-type]
    assert tee.write("line\n") == 5  # EPIPE on the copy; the log still has it
    assert log.getvalue() == "line\n"


def test_messages_carry_descriptors_and_eof_is_none() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    r, w = os.pipe()
    send_msg(a, {"op": "spawn", "id": 1}, [w])
    msg, fds = recv_msg(b)
    assert msg == {"op": "spawn", "id": 1}
    assert len(fds) == 1
    os.write(fds[0], b"through the passed fd")
    assert os.read(r, 100) == b"through the passed fd"
    for fd in (r, w, *fds):
        os.close(fd)
    a.close()
    assert recv_msg(b) == (None, [])
    b.close()
