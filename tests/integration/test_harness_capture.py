"""``--netns-capture`` over real namespaces: the pcaps hold the exchange, tshark agrees.

Each test runs an inner pytest (in this process, so leftover threads and sockets would show
here) and then reads what it left: tshark is the independent reader for the exchange test,
rawstack's own codecs for the failure test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from _loopback import wait_for

from rawstack.codec import ECHO_REPLY, ECHO_REQUEST, ETH_P_IP, PROTO_ICMP, Ethernet, IPv4
from rawstack.codec import decode_icmp as icmp_decode
from rawstack.codec.pcap import LINKTYPE_ETHERNET, read_pcap

pytestmark = pytest.mark.netns

EXCHANGE = """
import json, os, sys

def test_exchange(netns_pair):
    a, b = netns_pair["a"], netns_pair["b"]
    http_port = str(netns_pair.peers["b"].port("http"))
    udp_port = str(netns_pair.peers["b"].port("udp"))
    rs = [sys.executable, "-m", "rawstack"]
    commands = [
        rs + ["chao", "send", "--iface", "eth0", "--to", b.mac("eth0"), "-c", "1",
              "--timeout", "2", "--json", "capture-marker-chao"],
        rs + ["ping", "10.0.0.2", "-c", "1", "-W", "2", "--ttl", "33", "--json"],
        rs + ["http", "get", f"http://10.0.0.2:{http_port}/?capture-marker", "--timeout", "2",
              "--json"],
        rs + ["udp", "send", "10.0.0.2", udp_port, "capture-marker-udp", "-c", "1",
              "--timeout", "2", "--json"],
    ]
    for argv in commands:
        done = a.run(argv, capture_output=True, text=True)
        assert done.returncode == 0, (argv, done.stderr)
    with open(os.environ["RSH_CAPTURE_OUT"], "w") as fh:
        json.dump({"http": http_port, "udp": udp_port, "mac_a": a.mac("eth0"),
                   "mac_b": b.mac("eth0")}, fh)
"""

FAILING = """
import os
from rawstack_harness import clients
from rawstack_harness.topology import pair

def test_breaks(netns_topology):
    net = netns_topology(pair())
    with open(os.environ["RSH_CAPTURE_OUT"], "w") as fh:
        fh.write(" ".join([net["a"].path, net["b"].path]))
    clients.run_client("icmp", net["a"], net["b"])  # the kernel in b answers
    assert False, "on purpose"

def test_passes(netns_topology):
    net = netns_topology(pair())
    clients.run_client("icmp", net["a"], net["b"])
"""

FIELDS = ("eth.src", "eth.type", "ip.ttl", "icmp.type", "icmp.ident", "icmp.seq", "data.data",
          "udp.srcport", "udp.dstport", "tcp.flags.syn", "tcp.dstport",
          "http.request.uri")  # fmt: skip


def _socket_fds() -> int:
    return sum(1 for fd in os.listdir("/proc/self/fd") if _is_socket(fd))


def _is_socket(fd: str) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    except OSError:
        return False


def _capture_threads() -> list[str]:
    """Threads of a capture (the process's one reader, kept for the next, is not)."""
    names = [t.name for t in threading.enumerate() if t.name.startswith("netns-capture")]
    return [name for name in names if name != "netns-capture-reader"]


def _tshark(path: Path) -> list[dict[str, str]]:
    argv = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=/t"]
    argv += ["-E", "occurrence=f"] + [a for f in FIELDS for a in ("-e", f)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return [dict(zip(FIELDS, line.split("\t"))) for line in done.stdout.splitlines()]


def test_always_pcaps_hold_the_exchange_as_tshark_reads_it(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (apt-get install tshark)")
    out, caps = tmp_path / "exchange.json", tmp_path / "caps"
    monkeypatch.setenv("RSH_CAPTURE_OUT", str(out))
    pytester.makepyfile(test_inner=EXCHANGE)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--netns-capture=always", f"--netns-capture-dir={caps}",
        f"--netns-run-dir={tmp_path / 'runs'}",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    info = json.loads(out.read_text())
    folder = caps / "test_inner.py_test_exchange"
    assert sorted(p.name for p in folder.iterdir()) == ["pair-a-eth0.pcap", "pair-b-eth0.pcap"]
    for name in ("pair-a-eth0.pcap", "pair-b-eth0.pcap"):  # both ends saw every frame
        rows = _tshark(folder / name)
        chao = [r for r in rows if r["eth.type"] == "0x88b5"]
        assert any(
            r["eth.src"] == info["mac_a"] and b"capture-marker-chao".hex() in r["data.data"]
            for r in chao
        ), chao
        assert any(r["eth.src"] == info["mac_b"] for r in chao), "no CHAO reply"
        (request,) = [r for r in rows if r["icmp.type"] == "8" and r["ip.ttl"] == "33"]
        assert any(
            r["icmp.type"] == "0"
            and (r["icmp.ident"], r["icmp.seq"]) == (request["icmp.ident"], request["icmp.seq"])
            for r in rows
        ), "no echo reply to the marked request"
        assert any(
            r["tcp.dstport"] == info["http"] and r["tcp.flags.syn"] in ("1", "True") for r in rows
        ), "no SYN to the HTTP port"
        assert any(r["http.request.uri"] == "/?capture-marker" for r in rows)
        udp = [r for r in rows if b"capture-marker-udp".hex() in r["data.data"]]
        assert {r["udp.dstport"] == info["udp"] for r in udp} == {True, False}, udp
    assert _capture_threads() == []


def test_a_failed_test_gets_its_pcaps_and_leaves_nothing_behind(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, caps = tmp_path / "paths", tmp_path / "caps"
    monkeypatch.setenv("RSH_CAPTURE_OUT", str(out))
    pytester.makepyfile(test_inner=FAILING)
    sockets_before = _socket_fds()
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--netns-capture-dir={caps}",
        f"--netns-run-dir={tmp_path / 'runs'}",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    folder = caps / "test_inner.py_test_breaks"
    result.stdout.fnmatch_lines(
        [
            "*- netns captures -*",
            "one pcap per link endpoint (read with `tshark -r FILE`):",
            f"{folder}/pair-a-eth0.pcap (* frames)",
            f"{folder}/pair-b-eth0.pcap (* frames)",
        ]
    )
    assert [p.name for p in caps.iterdir()] == ["test_inner.py_test_breaks"]  # not the pass
    header, records = read_pcap((folder / "pair-b-eth0.pcap").read_bytes())
    assert header.linktype == LINKTYPE_ETHERNET
    echoes = []
    for record in records:
        frame = Ethernet.decode(record.data)
        if frame.ethertype == ETH_P_IP:
            ip = IPv4.decode(frame.payload)
            if ip.proto == PROTO_ICMP:
                echoes.append((ip.src, ip.dst, icmp_decode(ip.payload).type))
    assert ("10.0.0.1", "10.0.0.2", ECHO_REQUEST) in echoes
    assert ("10.0.0.2", "10.0.0.1", ECHO_REPLY) in echoes
    # Nothing left: threads, sockets (they would pin the namespaces), namespaces.
    assert _capture_threads() == []
    # Packet sockets close in the background (close_soon: each waits an RCU grace period).
    assert wait_for(lambda: _socket_fds() <= sockets_before, 5)
    for path in out.read_text().split():
        assert not os.path.exists(path)
