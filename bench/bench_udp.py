"""UDP echo: ``rawstack udp serve`` vs a socat echo, measured by the same client.

The client is this process, with a socket opened in node a: one datagram out, wait for the
same bytes back, then the next (one in flight), bounded by count and time. socat runs as
``socat UDP4-LISTEN:PORT PIPE`` without ``fork``: it answers the first sender it hears from
(this client, which keeps one socket) in one process, like our server. ``UDP-RECVFROM,fork``
would fork a process per datagram and measure fork(), not echoing.

Placement decides a one-in-flight echo more than the server does, so each server is measured
twice, pinned (``sched_setaffinity``): client and server on *one CPU*, where a round trip is
the two processes' own work (system calls, copies, the server's code) handed back and forth;
and on *two CPUs*, where each hop also waits for the other CPU to wake (an inter-processor
interrupt and an idle-state exit, ~40 us each way here), the same for any server. Unpinned,
the scheduler mixes the two from round to round. The goal is judged on one CPU: that is where
the server's own cost shows.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import time
from collections.abc import Iterator
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
    "rawstack udp serve: round trips/s, one CPU",
    "rawstack udp serve: round trips/s, two CPUs",
    "rawstack udp serve: RTT p50, two CPUs",
    "rawstack udp serve: RTT p99, two CPUs",
)
MODES = ("one CPU", "two CPUs")
PORT = 9000
SOCAT = ["socat", "-b", "65536", f"UDP4-LISTEN:{PORT},bind={B_ADDR}", "PIPE"]
REPLY_TIMEOUT = 0.5
PAYLOAD = 32
ROUNDS = 6  # per server, alternating (quick: 2); the verdict is the median paired ratio
GOAL = 1.0  # issue 14: at least socat's round trips per second


@dataclass(frozen=True)
class EchoRun:
    """One client run: RTTs in seconds, elapsed wall time, probes lost."""

    rtts: list[float]
    elapsed: float
    lost: int

    @property
    def rate(self) -> float:
        return len(self.rtts) / self.elapsed

    def merged(self, other: EchoRun) -> EchoRun:
        """Both runs as one (their round trips over their summed time)."""
        return EchoRun(self.rtts + other.rtts, self.elapsed + other.elapsed, self.lost + other.lost)


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


@contextlib.contextmanager
def pinned(server_pid: int, mode: str) -> Iterator[None]:
    """This thread (the client) and the server on one CPU, or on two, for the block."""
    mine = os.sched_getaffinity(0)
    cpus = sorted(mine)
    client_cpu, server_cpu = cpus[0], cpus[0] if mode == "one CPU" else cpus[1]
    os.sched_setaffinity(server_pid, {server_cpu})
    os.sched_setaffinity(0, {client_cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


def run(ctx: Context) -> Section:
    rounds = 2 if ctx.opts.quick else ROUNDS
    count = ctx.opts.round_trips * 10
    budget = 2.0 if ctx.opts.quick else 12.0
    modes = MODES if len(os.sched_getaffinity(0)) >= 2 else MODES[:1]
    runs: dict[tuple[str, str], list[EchoRun]] = {
        (m, n): [] for m in MODES for n in ("rawstack", "socat")
    }
    failures: dict[str, str] = {}
    with harness_pair(ctx.run, "udp") as net:
        client, server = net["a"], net["b"]
        # Alternating rounds, a share of the round trips each: a load change on this shared
        # machine then falls on both servers alike, and each rawstack round is compared
        # with the socat round right after it.
        for mode in modes:
            for name in ("rawstack", "socat") * rounds:
                if name in failures:
                    continue
                try:
                    if name == "rawstack":
                        proc, _ = start_ready(
                            server,
                            rawstack_argv("udp", "serve", "--bind", B_ADDR, "--port", str(PORT)),
                            ["udp"],
                            ctx.path("udp-rawstack.log"),
                        )
                    else:
                        with open(ctx.path("udp-socat.log"), "ab") as err:
                            proc = server.popen(SOCAT, stdout=err, stderr=err)
                    with pinned(proc.pid, mode):
                        done = echo_client(client, count // rounds, budget / rounds)
                    runs[mode, name].append(done)
                except (BenchError, OSError) as exc:
                    failures[name] = str(exc)
                finally:
                    server.stop_processes()
    return Section(TITLE, GROUP, _rows(runs, failures, modes), _notes(runs, rounds, count, budget))


def paired_ratio(ours: list[EchoRun], theirs: list[EchoRun]) -> float:
    """Median over rounds of our rate / theirs in the round after ours (same load)."""
    ratios = sorted(o.rate / t.rate for o, t in zip(ours, theirs))
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


def _pooled(rounds: list[EchoRun]) -> EchoRun | None:
    if not rounds:
        return None
    pooled = rounds[0]
    for more in rounds[1:]:
        pooled = pooled.merged(more)
    return pooled


def _rows(
    runs: dict[tuple[str, str], list[EchoRun]], failures: dict[str, str], modes: tuple[str, ...]
) -> list[Row]:
    if "rawstack" in failures or not runs[MODES[0], "rawstack"]:
        why = failures.get("rawstack", "no result")
        return [not_measured(m, why) for m in METRICS]
    goal = f">= {GOAL:.1f}x socat"
    rows: list[Row] = []
    for i, mode in enumerate(MODES):
        ours, socat = _pooled(runs[mode, "rawstack"]), _pooled(runs[mode, "socat"])
        if mode not in modes or ours is None:
            rows.append(not_measured(METRICS[i], "one usable CPU"))
            continue
        wanted = goal if i == 0 else "-"
        if socat is None or "socat" in failures:
            why = f"socat not measured: {failures.get('socat', 'no result')}"
            rows.append(Row(METRICS[i], ours.rate, "/s", why, wanted))
            continue
        ratio = paired_ratio(runs[mode, "rawstack"], runs[mode, "socat"])
        paired = len(runs[mode, "socat"])
        base = f"socat {socat.rate:,.0f}/s: ours = {ratio:.2f}x (median of {paired} paired rounds)"
        if i == 0:
            rows.append(Row(METRICS[i], ours.rate, "/s", base, goal, passed=ratio >= GOAL))
        else:
            rows.append(Row(METRICS[i], ours.rate, "/s", base))
    ours2, socat2 = _pooled(runs[MODES[1], "rawstack"]), _pooled(runs[MODES[1], "socat"])
    if ours2 is None:
        rows += [not_measured(m, "one usable CPU") for m in METRICS[2:]]
        return rows
    o = Summary.of(ours2.rtts).scaled(1e6)
    s = Summary.of(socat2.rtts).scaled(1e6) if socat2 is not None else None
    rows.append(Row(METRICS[2], o.p50, "us", f"socat {s.p50:.0f} us" if s else "-"))
    rows.append(Row(METRICS[3], o.p99, "us", f"socat {s.p99:.0f} us" if s else "-"))
    return rows


def _notes(
    runs: dict[tuple[str, str], list[EchoRun]], rounds: int, count: int, budget: float
) -> list[str]:
    notes = [
        f"Client: this process in node a, {PAYLOAD}-byte datagrams tagged with a sequence number, "
        f"one in flight, up to {count} round trips or {budget:g} s per server and placement; a "
        f"reply not back in {REPLY_TIMEOUT} s counts as lost; {rounds} alternating rounds per "
        "server (rawstack, socat, rawstack, ...) in each placement. A ratio is the median of "
        "the per-round ratios (each rawstack round against the socat round after it); the "
        "rates shown pool all rounds.",
        "Placement: client and server pinned to one CPU, or to two (see bench/bench_udp.py). "
        "On one CPU a round trip is the two processes' own work; on two, each hop also waits "
        "for the other CPU to wake, which no server changes.",
        f"Baseline: `{' '.join(SOCAT)}` in node b (one process, no fork); ours is "
        f"`rawstack udp serve --bind {B_ADDR} --port {PORT}`, bound like socat.",
        "Served alone, `rawstack udp serve` leaves the selector and blocks in `recvfrom_into` "
        "(one preallocated buffer), so an echo costs two system calls; socat's PIPE loop "
        "copies each datagram into a pipe and back out, with select() calls and "
        "non-blocking polls in between (over ten system calls an echo under strace).",
    ]
    for (mode, name), rs in runs.items():
        r = _pooled(rs)
        if r is not None:
            per = ", ".join(f"{x.rate:,.0f}" for x in rs)
            notes.append(
                f"{name}, {mode}: {len(r.rtts)} round trips in {r.elapsed:.2f} s, {r.lost} lost; "
                f"per round /s: {per}."
            )
    return notes
