"""``rawstack syn-probe`` across a veth pair: open, closed, filtered, and no half-open
connection left behind."""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from _netns_pair import PYTHON, NetnsPair, netns_pair, wait_ready

PORT = 8090
LISTEN = (
    "import json, socket, time\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    f"s.bind(('0.0.0.0', {PORT})); s.listen(8)\n"
    "print(json.dumps({'event': 'ready', 'peer': 'listener'}), flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def pair() -> Iterator[NetnsPair]:
    """A fresh namespace pair with a TCP listener (never accepting) on b."""
    with netns_pair() as p:
        wait_ready(p.b.popen([PYTHON, "-c", LISTEN]))
        yield p


def test_open_port_reports_handshake_and_leaves_nothing_half_open(pair: NetnsPair) -> None:
    out = pair.a.rawstack("syn-probe", pair.addr_b, str(PORT), "-c", "2")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert re.fullmatch(
            rf"{re.escape(pair.addr_b)}:{PORT} open \(SYN-ACK in \d+\.\d{{3}} ms, MSS 1460\)", line
        ), line
    # Our RST (and the kernel's) removed the server's SYN-RECV entries.
    half_open = pair.b.run(["ss", "-Htn", "state", "syn-recv"]).stdout.strip()
    assert half_open == ""


def test_our_rst_follows_the_syn_ack(pair: NetnsPair) -> None:
    if shutil.which("tcpdump") is None:
        pytest.skip("needs tcpdump to watch the RSTs on the wire")
    dump = pair.b.popen(
        ["tcpdump", "-i", pair.iface_b, "-nn", "-l", "-c", "2",
         f"tcp[tcpflags] & tcp-rst != 0 and src host {pair.addr_a}"],
    )  # fmt: skip
    _wait_stderr(dump, "listening on")
    out = pair.a.rawstack("syn-probe", pair.addr_b, str(PORT), "--json")
    assert json.loads(out.stdout)["state"] == "open"
    text, _ = dump.communicate(timeout=10)
    resets = [line for line in text.splitlines() if "Flags [R]" in line]
    # Two RSTs with the same sequence number: the kernel's and ours (see syn_probe.py).
    assert len(resets) == 2, text
    seqs = {re.search(r"seq (\d+)", line).group(1) for line in resets}  # type: ignore[union-attr]
    assert len(seqs) == 1


def test_closed_port_is_rst(pair: NetnsPair) -> None:
    out = pair.a.rawstack("syn-probe", pair.addr_b, str(PORT + 1), "--json")
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert result["state"] == "closed"
    assert result["probes"][0]["rtt_ms"] > 0
    text = pair.a.rawstack("syn-probe", pair.addr_b, str(PORT + 1))
    assert re.fullmatch(rf"\S+:{PORT + 1} closed \(RST in \d+\.\d{{3}} ms\)\n", text.stdout)


def test_silent_address_is_filtered(pair: NetnsPair) -> None:
    start = time.monotonic()
    out = pair.a.rawstack("syn-probe", pair.absent, str(PORT), "-W", "0.5")
    assert out.returncode == 1
    assert out.stdout == f"{pair.absent}:{PORT} filtered (no answer in 0.5 s)\n"
    assert time.monotonic() - start >= 0.5


@pytest.mark.parametrize("argv", [["10.77.0.2", "0"], ["10.77.0.2", "70000"], ["nohost.", "80"]])
def test_bad_arguments_exit_2(pair: NetnsPair, argv: list[str]) -> None:
    out = pair.a.rawstack("syn-probe", *argv)
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1


def _wait_stderr(proc: subprocess.Popen[str], needle: str, timeout: float = 10) -> None:
    # os.read on the fd: a buffered readline could hold the line select() waits for.
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + timeout
    seen = b""
    while needle.encode() not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise AssertionError(f"{needle!r} not seen: {seen!r}")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise AssertionError(f"exited before {needle!r}: {seen!r}")
        seen += chunk
