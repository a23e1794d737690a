"""Module- and session-scoped topologies: shared by tests, each failure with its own span."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.netns

INNER = """
import os, signal, socket
import pytest
from rawstack.peers.registry import ALL_PEERS
from rawstack_harness.topology import pair

@pytest.fixture(scope="module")
def net(netns_topology_module):
    return netns_topology_module(pair(peers=ALL_PEERS))

def echo(net, marker):
    port = net.peers["b"].port("udp")
    with net["a"].socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for _ in range(5):
            s.sendto(marker, ("10.0.0.2", port))
            assert s.recv(100) == marker

def test_one(net):
    echo(net, b"marker-one")
    with open(os.environ["RSH_TEST_OUT"], "w") as fh:
        fh.write(net["a"].path)

def test_two_fails(net):
    assert net["a"].path == open(os.environ["RSH_TEST_OUT"]).read()  # the same network
    echo(net, b"marker-two")
    assert False, "on purpose"

@pytest.fixture
def killer(net):
    yield
    peer = net.peers["b"]
    os.kill(peer.proc.pid, signal.SIGKILL)
    peer.proc.wait()

def test_kill_after(net, killer):
    echo(net, b"marker-kill")

def test_three(net):
    pass
"""


def test_module_topology_is_shared_and_failures_get_their_own_span(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "path"
    caps = tmp_path / "caps"
    monkeypatch.setenv("RSH_TEST_OUT", str(out))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--netns-capture-dir={caps}")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "*netns peer log: node b (shared pair, this test)*",
            "*netns captures (shared topologies, this test's time span)*",
        ]
    )
    # The next test using the topology reports the peer that died between tests.
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_three*",
            "*died between tests, in shared topology 'pair': serve-all on node b*SIGKILL*",
        ]
    )
    assert "test_kill_after" not in text.split("short test summary")[1]  # it passed
    pcaps = list((caps / "test_inner.py_test_two_fails").glob("pair-*.pcap"))
    assert pcaps
    data = b"".join(p.read_bytes() for p in pcaps)
    assert b"marker-two" in data
    assert b"marker-one" not in data  # frames of test_one are outside test_two's span
    assert not Path(out.read_text()).exists()  # removed at the end of the module
