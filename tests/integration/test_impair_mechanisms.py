"""Link impairment measured with iputils ping and TCP/UDP flows across two nodes.

Each test builds nodes ``a`` and ``b`` (no links) with ``netns_topology`` and joins them with
an :class:`ImpairedLink`; the kernel's own mechanism (netem where it exists) is used unless a
test forces the fallbacks. The statistical checks use intervals whose false-failure chance is
below 1e-4 (z = 3.89), so a loaded machine does not fail them by bad luck; neighbour entries
are made permanent first, so a lost ARP or ND frame cannot turn into extra ping losses.
"""

from __future__ import annotations

import math
import re
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from rawstack_harness.backends.linux.impair.links import ImpairedLink, Side
from rawstack_harness.backends.linux.impair.plan import Features
from rawstack_harness.backends.linux.impair.probe import probe
from rawstack_harness.topology.impair import parse_link_impair
from rawstack_harness.topology.spec import Endpoint

pytestmark = pytest.mark.netns

Z = 3.89  # two-sided normal quantile for 1e-4
A4, B4 = "10.0.0.1", "10.0.0.2"
_TIME_RE = re.compile(r"icmp_seq=(\d+) .*time=([\d.]+) ms")

Factory = Callable[..., tuple[Any, ImpairedLink]]


def relay_only(feats: Features) -> Features:
    """The kernel's features without netem and clsact BPF: everything but rate by the relay."""
    return replace(feats, netem=False, clsact_bpf=False)


@pytest.fixture
def impaired(netns_topology: Any) -> Iterator[Factory]:
    """Factory: nodes a, b joined by one impaired link; closed at the end of the test."""
    links: list[ImpairedLink] = []

    def make(impair: object, feats: Features | None = None) -> tuple[Any, ImpairedLink]:
        net = netns_topology({"name": "imp", "nodes": [{"name": "a"}, {"name": "b"}]})
        ea = Endpoint("a", "eth0", (f"{A4}/24", "fd00::1/64"))
        eb = Endpoint("b", "eth0", (f"{B4}/24", "fd00::2/64"))
        link = ImpairedLink(
            Side(net["a"].fd, ea),
            Side(net["b"].fd, eb),
            parse_link_impair("impair", impair),
            feats=feats,
            manifest=net.run.manifest,
        )
        links.append(link)
        link.build()
        for node, peer, addr in (("a", "b", B4), ("b", "a", A4)):
            mac = net[peer].mac("eth0")
            cmd = ["ip", "neigh", "replace", addr, "lladdr", mac, "dev", "eth0", "nud", "permanent"]
            assert net[node].run(cmd).returncode == 0
        return net, link

    yield make
    for link in links:
        link.close()


def ping(
    net: Any, count: int, interval: float, *extra: str, wait: float = 2
) -> subprocess.CompletedProcess[str]:
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", f"{wait:g}", *extra, B4]
    done: subprocess.CompletedProcess[str] = net["a"].run(
        argv, capture_output=True, text=True, timeout=120
    )
    return done


# iputils ping spins on sched_yield() between requests less than a clock tick apart (its
# main_loop, 10 ms at the usual USER_HZ of 100) when no reply is due: at 11 ms it sleeps in
# poll instead, leaving the CPU to the rest of the suite.
PACE = 0.011


def pings(net: Any, count: int, interval: float, *extra: str, procs: int = 40) -> list[str]:
    """``count`` echoes from ``procs`` iputils pings at once (each at ``interval``): stdouts.

    Why several: one ping is paced by its interval (see PACE) and, after a lost reply,
    waits up to 10 ms more before its next send (iputils polls with MIN_INTERVAL_MS while a
    reply is outstanding), which stretched one 2000-echo ping at 2 ms to ~7 s. Each echo is
    still one independent trial of the impairment (each ping has its own ICMP id), so the
    sample, and the bound computed for it, is unchanged.
    """
    if count % procs:
        raise ValueError(f"{count} echoes do not split into {procs} pings")
    argv = ["ping", "-n", "-c", str(count // procs), "-i", str(interval), "-W", "2", *extra, B4]
    running = [net["a"].popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    outs = [proc.communicate(timeout=120)[0] for proc in running]
    assert all(proc.returncode in (0, 1) for proc in running), outs  # 1: some lost
    return outs


def rtts(net: Any, count: int, interval: float, procs: int) -> list[float]:
    outs = pings(net, count, interval, procs=procs)
    return [float(m.group(2)) for out in outs for m in _TIME_RE.finditer(out)]


def received(out: str) -> int:
    m = re.search(r"(\d+) received", out)
    assert m, out
    return int(m.group(1))


def interval(n: int, p: float) -> tuple[float, float]:
    sd = math.sqrt(n * p * (1 - p))
    return n * p - Z * sd, n * p + Z * sd


def test_delay_adds_twice_the_one_way_delay_to_the_rtt(impaired: Factory) -> None:
    net, _ = impaired({})
    base = statistics.median(rtts(net, 50, PACE, procs=5))
    net, link = impaired({"delay": "20ms"})
    assert link.describe()
    got = statistics.median(rtts(net, 50, 0.02, procs=5))
    grow = got - base
    assert abs(grow - 40) <= max(1.0, 0.1 * 40), (base, got)


def test_jitter_spreads_the_rtt(impaired: Factory) -> None:
    net, _ = impaired({"delay": "20ms", "jitter": "5ms"})
    times = rtts(net, 300, PACE, procs=12)
    assert len(times) >= 290
    # Uniform +-5 ms each way: sd 5/sqrt(3) per direction, 4.1 ms for the round trip.
    assert 2.5 <= statistics.stdev(times) <= 10, statistics.stdev(times)


@pytest.mark.parametrize("mechanism", ["kernel", "relay"])
def test_loss_both_directions(impaired: Factory, mechanism: str) -> None:
    feats = probe() if mechanism == "kernel" else relay_only(probe())
    net, link = impaired({"loss": "10%"}, feats)
    if mechanism == "relay":
        assert link.has_relay
    n = 2000
    lo, hi = interval(n, 0.9**2)
    got = sum(received(out) for out in pings(net, n, PACE, "-q"))
    assert lo <= got <= hi, (got, lo, hi, link.describe())


def test_loss_one_direction(impaired: Factory) -> None:
    net, link = impaired({"a": {"loss": "10%"}})
    n = 2000
    lo, hi = interval(n, 0.9)
    got = sum(received(out) for out in pings(net, n, PACE, "-q"))
    assert lo <= got <= hi, (got, lo, hi, link.describe())


@pytest.mark.parametrize("mechanism", ["kernel", "relay"])
def test_duplicate_shows_dup_lines_at_that_rate(impaired: Factory, mechanism: str) -> None:
    feats = probe() if mechanism == "kernel" else relay_only(probe())
    net, link = impaired({"a": {"duplicate": "5%"}}, feats)
    n = 2000
    lo, hi = interval(n, 0.05)
    outs = pings(net, n, PACE)
    dups = sum(out.count("(DUP!)") for out in outs)
    assert lo <= dups <= hi, (dups, lo, hi, link.describe())
    assert sum(received(out) for out in outs) == n  # a duplicate is extra, never instead


# The receiver times the transfer by the kernel's arrival stamps (SO_TIMESTAMP: for TCP, each
# read carries the stamp of the last segment it returned, tcp_recv_timestamp() in
# net/ipv4/tcp.c), not by when it got to run: a receiver the scheduler leaves waiting at the
# start or the end would otherwise change the rate it reports. The bytes of the first read
# arrived before its stamp, so they are not counted.
RECEIVER = """
import socket, struct
SO_TIMESTAMP = 29  # asm-generic/socket.h (SO_TIMESTAMP_OLD); the cmsg is a struct timeval
srv = socket.create_server(("0.0.0.0", 5001))
srv.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)  # inherited by the accepted socket
print("ready", flush=True)
conn, _ = srv.accept()
n, first, last = 0, None, 0.0
while True:
    data, anc, _flags, _addr = conn.recvmsg(1 << 16, 64)
    if not data:
        break
    (stamp,) = [c[2] for c in anc if c[:2] == (socket.SOL_SOCKET, SO_TIMESTAMP)]
    sec, usec = struct.unpack("qq", stamp)
    last = sec + usec / 1e6
    if first is None:
        first = last
    else:
        n += len(data)
print(n, last - first, flush=True)
"""
SENDER = f"""
import socket
s = socket.create_connection(("{B4}", 5001))
s.sendall(b"x" * 5_000_000)
s.close()
"""


def test_rate_limits_a_tcp_transfer(impaired: Factory) -> None:
    net, link = impaired({"rate": "100mbit"})
    recv = net["b"].popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None
    assert recv.stdout.readline().strip() == "ready"
    assert net["a"].run([sys.executable, "-c", SENDER]).returncode == 0
    n, seconds = recv.stdout.readline().split()
    recv.wait(timeout=10)
    mbit = int(n) * 8 / float(seconds) / 1e6
    # Payload rate: TCP/IP/Ethernet headers take ~4.4% of 100 Mbit/s frames.
    assert 90 <= mbit <= 110, (mbit, link.describe())


UDP_RECEIVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5002))
s.settimeout(2)
print("ready", flush=True)
seen, late, top = 0, 0, -1
try:
    while True:
        seq = int(s.recv(64))
        seen += 1
        if seq < top:
            late += 1
        top = max(top, seq)
        if seen == 300:
            s.settimeout(0.2)  # all sent came: any extra copy is due within the 10 ms delay
except socket.timeout:
    pass
print(seen, late, flush=True)
"""
UDP_SENDER = f"""
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(300):
    s.sendto(str(i).encode(), ("{B4}", 5002))
    time.sleep(0.001)
"""


def test_reorder_with_delay_lets_frames_overtake(impaired: Factory) -> None:
    net, link = impaired({"a": {"delay": "10ms", "reorder": "25%"}})
    recv = net["b"].popen([sys.executable, "-c", UDP_RECEIVER], stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None
    assert recv.stdout.readline().strip() == "ready"
    assert net["a"].run([sys.executable, "-c", UDP_SENDER]).returncode == 0
    seen, late = map(int, recv.stdout.readline().split())
    recv.wait(timeout=10)
    assert seen == 300
    # 25% go at once and overtake the ~10 delayed ones sent before them: those delayed ones
    # then arrive after a higher number. Expected ~75 late; far from 0, below all.
    assert 20 <= late <= 250, (late, link.describe())


def test_changing_and_clearing_at_run_time(impaired: Factory) -> None:
    net, link = impaired({"delay": "0ms"})
    base = statistics.median(rtts(net, 20, PACE, procs=4))
    link.set(parse_link_impair("impair", {"delay": "15ms"}))
    assert abs(statistics.median(rtts(net, 20, 0.02, procs=4)) - base - 30) <= 3
    link.set(parse_link_impair("impair", {}))
    assert statistics.median(rtts(net, 20, PACE, procs=4)) - base <= 3
    link.set_up("b", False)
    # A reply across an up link takes well under a millisecond: half a second of waiting
    # after the last echo is ample to see one if the link were still carrying frames.
    assert received(ping(net, 3, 0.05, "-q", wait=0.5).stdout) == 0
    link.set_up("b", True)
    assert received(ping(net, 3, 0.05, "-q").stdout) == 3


def test_a_link_built_without_a_relay_says_how_to_get_one(impaired: Factory) -> None:
    feats = replace(probe(), netem=False)
    if not feats.clsact_bpf:
        pytest.skip("this kernel has no clsact BPF: loss needs the relay here")
    _, link = impaired({"loss": "1%"}, feats)
    assert not link.has_relay
    with pytest.raises(Exception, match="declare a delay"):
        link.set(parse_link_impair("impair", {"delay": "5ms"}))
