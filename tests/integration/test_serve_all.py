"""``rawstack serve-all``: four servers, one process, one ready line each, clean stops."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator

import pytest
from _netns_pair import PYTHON, NetnsPair, netns_pair, stop, wait_ready


@pytest.fixture
def pair() -> Iterator[NetnsPair]:
    """A fresh namespace pair per test, kernel echo off on b."""
    with netns_pair() as p:
        p.b.sysctl("net.ipv4.icmp_echo_ignore_all", "1")
        yield p


def serve_all(pair: NetnsPair, *extra: str) -> list[str]:
    return [PYTHON, "-m", "rawstack", "serve-all", "--iface", pair.iface_b, *extra]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_four_ready_lines_then_clean_exit(pair: NetnsPair, sig: signal.Signals) -> None:
    proc = pair.b.popen(serve_all(pair, "--http-port", "8081", "--udp-port", "8082"))
    ready = {r["peer"]: r for r in wait_ready(proc, count=4)}
    assert set(ready) == {"http", "udp", "chao", "icmp"}
    assert ready["http"]["addr"] == "0.0.0.0:8081"
    assert ready["udp"]["addr"] == "0.0.0.0:8082"
    assert ready["chao"]["mac"] == pair.mac_b
    assert ready["icmp"]["iface"] == pair.iface_b

    chao = pair.a.rawstack("chao", "send", "--iface", pair.iface_a, "--to", pair.mac_b, "--json")
    assert chao.returncode == 0, chao.stderr
    assert json.loads(chao.stdout)["received"] == 1
    ping = pair.a.rawstack("ping", pair.addr_b, "-c", "2", "-i", "0.1", "--json")
    assert ping.returncode == 0, ping.stderr
    result = json.loads(ping.stdout)
    assert (result["received"], result["duplicates"]) == (2, 0)

    proc.send_signal(sig)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out == ""  # nothing after the ready lines
    assert "Traceback" not in err
    assert sorted(line.split()[0] for line in err.splitlines() if " stopped " in line) == [
        "[chao]", "[http]", "[icmp]", "[udp]",
    ]  # fmt: skip


def test_peers_subset(pair: NetnsPair) -> None:
    proc = pair.b.popen(serve_all(pair, "--peers", "icmp,chao"))
    ready = wait_ready(proc, count=2)
    assert [r["peer"] for r in ready] == ["chao", "icmp"]
    code, _, _ = stop(proc)
    assert code == 0


def test_one_failing_peer_closes_the_others(pair: NetnsPair) -> None:
    first = pair.b.popen(serve_all(pair, "--http-port", "8083", "--udp-port", "8084"))
    wait_ready(first, count=4)
    # Same ports again: HTTP cannot bind, so nothing may be announced and nothing kept.
    second = pair.b.run(serve_all(pair, "--http-port", "8083", "--udp-port", "8085"), check=False)
    assert second.returncode == 2
    assert second.stdout == ""
    assert second.stderr.strip().splitlines() == [
        "rawstack: error: tcp listen on 0.0.0.0:8083: address already in use"
    ]
    # The UDP port the failed run never reached, and chao/icmp it never opened: all free.
    third = pair.b.popen(
        [PYTHON, "-m", "rawstack", "serve-all", "--iface", pair.iface_b, "--http-port", "8086",
         "--udp-port", "8085", "--peers", "udp"],
    )  # fmt: skip
    wait_ready(third)
    assert stop(third)[0] == 0
    assert first.poll() is None
    assert stop(first)[0] == 0


def test_unknown_interface_is_exit_2(pair: NetnsPair) -> None:
    out = pair.b.rawstack("serve-all", "--iface", "rsd-none", "--http-port", "8087")
    assert out.returncode == 2
    assert out.stdout == ""
    assert out.stderr.strip() == "rawstack: error: no such interface: rsd-none"
    bad = pair.b.rawstack("serve-all", "--iface", pair.iface_b, "--peers", "chao,gopher")
    assert bad.returncode == 2
    assert "bad --peers" in bad.stderr
