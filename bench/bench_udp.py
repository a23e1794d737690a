"""UDP echo: ``rawstack udp serve`` vs a socat echo, measured by the same client.

The client is this process, with a socket opened in node a: one datagram out, wait for the
same bytes back, then the next (one in flight), bounded by count and time. socat runs as
``socat UDP4-LISTEN:PORT PIPE`` without ``fork``: it answers the first sender it hears from
(this client, which keeps one socket) in one process, like our server. ``UDP-RECVFROM,fork``
would fork a process per datagram and measure fork(), not echoing.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass

from rawstack_harness.backends.linux.nodes import LinuxNode
from rawstack_harness.clients import rawstack_argv

from bench.context import Context
from bench.netns import B_ADDR, BenchError, harness_pair, start_ready
from bench.report import Row, Section, not_measured
from bench.stats import Summary

TITLE = "UDP echo round trips"
GROUP = "Peers"
METRICS = (
    "rawstack udp serve: round trips/s",
    "rawstack udp serve: RTT p50",
    "rawstack udp serve: RTT p99",
)
PORT = 9000
SOCAT = ["socat", "-b", "65536", f"UDP4-LISTEN:{PORT},bind={B_ADDR}", "PIPE"]
REPLY_TIMEOUT = 0.5
PAYLOAD = 32


@dataclass(frozen=True)
class EchoRun:
    """One client run: RTTs in seconds, elapsed wall time, probes lost."""

    rtts: list[float]
    elapsed: float
    lost: int

    @property
    def rate(self) -> float:
        return len(self.rtts) / self.elapsed


def _exchange(sock: socket.socket, seq: int, timeout: float) -> float | None:
    """Send probe ``seq``; return its RTT, or None when no reply came in ``timeout``."""
    probe = struct.pack("!Q", seq).ljust(PAYLOAD, b"x")
    start = time.perf_counter()
    sock.send(probe)
    deadline = start + timeout
    while True:
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        if not select.select([sock], [], [], left)[0]:
            continue
        if sock.recv(65536) == probe:  # a late reply to an earlier probe is skipped
            return time.perf_counter() - start


def echo_client(node: LinuxNode, count: int, budget: float) -> EchoRun:
    """Warm up until the server answers, then ``count`` round trips or ``budget`` seconds."""
    with node.socket(socket.AF_INET, socket.SOCK_DGRAM, 0) as sock:
        sock.connect((B_ADDR, PORT))
        warm_until = time.monotonic() + 10
        seq = 0
        while True:  # the first answer also makes socat pick this socket as its peer
            try:
                if _exchange(sock, seq, 0.2) is not None:
                    break
            except ConnectionRefusedError:
                # Not bound yet, and socat says nothing when it is: back off and retry.
                time.sleep(0.01)
            seq += 1
            if time.monotonic() > warm_until:
                raise BenchError("the echo server never answered")
        rtts: list[float] = []
        lost = 0
        start = time.perf_counter()
        stop_at = start + budget
        for seq in range(1 << 32, (1 << 32) + count):
            rtt = _exchange(sock, seq, REPLY_TIMEOUT)
            if rtt is None:
                lost += 1
            else:
                rtts.append(rtt)
            if time.perf_counter() > stop_at:
                break
        elapsed = time.perf_counter() - start
    if not rtts:
        raise BenchError("no echo came back")
    return EchoRun(rtts, elapsed, lost)


def run(ctx: Context) -> Section:
    count = ctx.opts.round_trips * 10
    budget = 2.0 if ctx.opts.quick else 10.0
    runs: dict[str, EchoRun] = {}
    failures: dict[str, str] = {}
    with harness_pair(ctx.run, "udp") as net:
        client, server = net["a"], net["b"]
        for name in ("rawstack", "socat"):
            try:
                if name == "rawstack":
                    start_ready(
                        server,
                        rawstack_argv("udp", "serve", "--port", str(PORT)),
                        ["udp"],
                        ctx.path("udp-rawstack.log"),
                    )
                else:
                    with open(ctx.path("udp-socat.log"), "ab") as err:
                        server.popen(SOCAT, stdout=err, stderr=err)
                runs[name] = echo_client(client, count, budget)
            except (BenchError, OSError) as exc:
                failures[name] = str(exc)
            finally:
                server.stop_processes()
    return Section(TITLE, GROUP, _rows(runs, failures), _notes(runs, count, budget))


def _rows(runs: dict[str, EchoRun], failures: dict[str, str]) -> list[Row]:
    ours, socat = runs.get("rawstack"), runs.get("socat")
    if ours is None:
        why = failures.get("rawstack", "no result")
        return [not_measured(m, why) for m in METRICS]
    o = Summary.of(ours.rtts).scaled(1e6)
    if socat is None:
        base = [f"socat not measured: {failures.get('socat', 'no result')}"] * 3
    else:
        s = Summary.of(socat.rtts).scaled(1e6)
        base = [
            f"socat {socat.rate:,.0f}/s: ours = {ours.rate / socat.rate:.2f}x",
            f"socat {s.p50:.0f} us",
            f"socat {s.p99:.0f} us",
        ]
    return [
        Row(METRICS[0], ours.rate, "/s", base[0]),
        Row(METRICS[1], o.p50, "us", base[1]),
        Row(METRICS[2], o.p99, "us", base[2]),
    ]


def _notes(runs: dict[str, EchoRun], count: int, budget: float) -> list[str]:
    notes = [
        f"Client: this process in node a, {PAYLOAD}-byte datagrams tagged with a sequence number, "
        f"one in flight, up to {count} round trips or {budget:g} s per server; a reply not back "
        f"in {REPLY_TIMEOUT} s counts as lost.",
        f"Baseline: `{' '.join(SOCAT)}` in node b (one process, no fork).",
        "No goal was set for UDP in the issue; the figures are for comparison.",
    ]
    for name, r in runs.items():
        notes.append(f"{name}: {len(r.rtts)} round trips in {r.elapsed:.2f} s, {r.lost} lost.")
    return notes
