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


def ping(net: Any, count: int, interval: float, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", "2", *extra, B4]
    done: subprocess.CompletedProcess[str] = net["a"].run(
        argv, capture_output=True, text=True, timeout=120
    )
    return done


def rtts(net: Any, count: int, interval: float) -> list[float]:
    out = ping(net, count, interval).stdout
    return [float(m.group(2)) for m in _TIME_RE.finditer(out)]


def received(out: str) -> int:
    m = re.search(r"(\d+) received", out)
    assert m, out
    return int(m.group(1))


def interval(n: int, p: float) -> tuple[float, float]:
    sd = math.sqrt(n * p * (1 - p))
    return n * p - Z * sd, n * p + Z * sd


def test_delay_adds_twice_the_one_way_delay_to_the_rtt(impaired: Factory) -> None:
    net, _ = impaired({})
    base = statistics.median(rtts(net, 50, 0.01))
    net, link = impaired({"delay": "20ms"})
    assert link.describe()
    got = statistics.median(rtts(net, 50, 0.02))
    grow = got - base
    assert abs(grow - 40) <= max(1.0, 0.1 * 40), (base, got)


def test_jitter_spreads_the_rtt(impaired: Factory) -> None:
    net, _ = impaired({"delay": "20ms", "jitter": "5ms"})
    times = rtts(net, 300, 0.005)
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
    got = received(ping(net, n, 0.002, "-q").stdout)
    assert lo <= got <= hi, (got, lo, hi, link.describe())


def test_loss_one_direction(impaired: Factory) -> None:
    net, link = impaired({"a": {"loss": "10%"}})
    n = 2000
    lo, hi = interval(n, 0.9)
    got = received(ping(net, n, 0.002, "-q").stdout)
    assert lo <= got <= hi, (got, lo, hi, link.describe())


@pytest.mark.parametrize("mechanism", ["kernel", "relay"])
def test_duplicate_shows_dup_lines_at_that_rate(impaired: Factory, mechanism: str) -> None:
    feats = probe() if mechanism == "kernel" else relay_only(probe())
    net, link = impaired({"a": {"duplicate": "5%"}}, feats)
    n = 2000
    lo, hi = interval(n, 0.05)
    out = ping(net, n, 0.002).stdout
    dups = out.count("(DUP!)")
    assert lo <= dups <= hi, (dups, lo, hi, link.describe())
    assert received(out) == n  # a duplicate is extra, never instead


RECEIVER = """
import socket, sys, time
srv = socket.create_server(("0.0.0.0", 5001))
print("ready", flush=True)
conn, _ = srv.accept()
n, start = 0, 0.0
while True:
    data = conn.recv(1 << 16)
    if not data:
        break
    if not n:
        start = time.monotonic()
    n += len(data)
print(n, time.monotonic() - start, flush=True)
"""
SENDER = f"""
import socket
s = socket.create_connection(("{B4}", 5001))
s.sendall(b"x" * 5_000_000)
s.close()
"""


def test_rate_limits_a_tcp_transfer(impaired: Factory) -> None:
    net, link = impaired({"rate": "10mbit"})
    recv = net["b"].popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None
    assert recv.stdout.readline().strip() == "ready"
    assert net["a"].run([sys.executable, "-c", SENDER]).returncode == 0
    n, seconds = recv.stdout.readline().split()
    recv.wait(timeout=10)
    mbit = int(n) * 8 / float(seconds) / 1e6
    # Payload rate: TCP/IP/Ethernet headers take ~4.4% of 10 Mbit/s frames.
    assert 9.0 <= mbit <= 11.0, (mbit, link.describe())


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
    base = statistics.median(rtts(net, 20, 0.01))
    link.set(parse_link_impair("impair", {"delay": "15ms"}))
    assert abs(statistics.median(rtts(net, 20, 0.02)) - base - 30) <= 3
    link.set(parse_link_impair("impair", {}))
    assert statistics.median(rtts(net, 20, 0.01)) - base <= 3
    link.set_up("b", False)
    assert received(ping(net, 3, 0.1, "-q").stdout) == 0
    link.set_up("b", True)
    assert received(ping(net, 3, 0.1, "-q").stdout) == 3


def test_a_link_built_without_a_relay_says_how_to_get_one(impaired: Factory) -> None:
    feats = replace(probe(), netem=False)
    if not feats.clsact_bpf:
        pytest.skip("this kernel has no clsact BPF: loss needs the relay here")
    _, link = impaired({"loss": "1%"}, feats)
    assert not link.has_relay
    with pytest.raises(Exception, match="declare a delay"):
        link.set(parse_link_impair("impair", {"delay": "5ms"}))
