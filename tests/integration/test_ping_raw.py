"""``rawstack ping`` across a veth pair: against the kernel's responder, iputils' numbers,
the unprivileged socket, silence, and missing privilege for every raw command."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator

import pytest
from _netns_pair import PYTHON, NetnsPair, netns_pair

from rawstack.engines.ping import rtt_summary_us

REPLY_LINE = re.compile(
    r"^64 bytes from (?P<src>[\d.]+): icmp_seq=(?P<seq>\d+) ttl=(?P<ttl>\d+) "
    r"time=(?P<ms>\d+(?:\.\d+)?) ms$"  # fewer decimals from 1 ms on, as iputils prints
)


@pytest.fixture
def pair() -> Iterator[NetnsPair]:
    """A fresh namespace pair per test."""
    with netns_pair() as p:
        yield p


def test_our_ping_against_the_kernel(pair: NetnsPair) -> None:
    out = pair.a.rawstack("ping", pair.addr_b, "-c", "3", "-i", "0.1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"PING {pair.addr_b} ({pair.addr_b}) 56(84) bytes of data."
    replies = [m for m in map(REPLY_LINE.match, lines[1:4]) if m]
    assert [int(m["seq"]) for m in replies] == [1, 2, 3]
    assert {(m["src"], m["ttl"]) for m in replies} == {(pair.addr_b, "64")}
    assert lines[4:6] == ["", f"--- {pair.addr_b} ping statistics ---"]
    assert re.fullmatch(r"3 packets transmitted, 3 received, 0% packet loss, time \d+ms", lines[6])
    assert re.fullmatch(r"rtt min/avg/max/mdev = (\d+\.\d{3}/){3}\d+\.\d{3} ms", lines[7])


def test_summary_arithmetic_matches_iputils(pair: NetnsPair) -> None:
    """Feed iputils' own per-reply times to our statistics; its rtt line must come out."""
    if shutil.which("ping") is None:
        pytest.skip("needs iputils ping")
    out = pair.a.run(["ping", "-n", "-c", "6", "-i", "0.05", pair.addr_b]).stdout
    times = [m["ms"] for m in map(REPLY_LINE.match, out.splitlines()) if m]
    if len(times) != 6 or not all(re.fullmatch(r"0\.\d{3}", t) for t in times):
        pytest.skip(f"a reply took >= 1 ms, so iputils printed it rounded: {out}")
    rtts = [int(t.replace(".", "")) for t in times]  # 3 decimals of ms = exact microseconds
    expected = re.search(r"rtt min/avg/max/mdev = (\S+) ms", out)
    assert expected is not None, out
    ours = "/".join(f"{v // 1000}.{v % 1000:03d}" for v in rtt_summary_us(rtts))
    assert ours == expected.group(1)


def test_silent_host_exits_1_with_full_loss(pair: NetnsPair) -> None:
    out = pair.a.rawstack("ping", pair.absent, "-c", "2", "-i", "0.2", "-W", "0.5", "--json")
    assert out.returncode == 1
    result = json.loads(out.stdout)
    assert (result["transmitted"], result["received"], result["loss_percent"]) == (2, 0, 100.0)
    assert "100% packet loss" in result["summary"][1]
    assert not any(line.startswith("rtt") for line in result["summary"])


def test_unprivileged_socket(pair: NetnsPair) -> None:
    pair.a.sysctl("net.ipv4.ping_group_range", "0 2147483647")
    out = pair.a.rawstack("ping", pair.addr_b, "-c", "2", "-i", "0.1", "--unprivileged", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["received"] == 2
    assert {r["from"] for r in result["replies"]} == {pair.addr_b}
    assert {r["ttl"] for r in result["replies"]} == {64}

    pair.a.sysctl("net.ipv4.ping_group_range", "1 0")  # nobody, root included
    denied = pair.a.rawstack("ping", pair.addr_b, "-c", "1", "--unprivileged")
    assert denied.returncode == 77
    assert len(denied.stderr.strip().splitlines()) == 1
    assert "net.ipv4.ping_group_range" in denied.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["ping", "10.77.0.2", "-c", "1"],
        ["syn-probe", "10.77.0.2", "80"],
        ["icmp", "respond"],
        ["chao", "serve", "--iface", "rsd-a"],
        ["chao", "send", "--iface", "rsd-a"],
        ["serve-all", "--iface", "rsd-a", "--http-port", "18080", "--udp-port", "18080"],
    ],
)
def test_missing_cap_net_raw_is_exit_77_one_line(pair: NetnsPair, argv: list[str]) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop privileges")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    out = pair.a.run([*nobody, PYTHON, "-m", "rawstack", *argv], check=False)
    assert out.returncode == 77, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert "CAP_NET_RAW" in lines[0]
    assert "sudo" in lines[0]
    assert out.stdout == ""
