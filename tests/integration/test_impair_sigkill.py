"""SIGKILL pytest while a relay carries an impaired link: the relay and its namespaces go."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from _loopback import exited, start_inner_pytest, wait_for

pytestmark = pytest.mark.netns

INNER = """
import os, time
from rawstack_harness.topology.impair import parse_link_impair
from rawstack_harness.backends.linux.impair.links import ImpairedLink, Side
from rawstack_harness.topology.spec import Endpoint

def test_hang(netns_topology):
    net = netns_topology({"name": "imp", "nodes": [{"name": "a"}, {"name": "b"}]})
    link = ImpairedLink(
        Side(net["a"].fd, Endpoint("a", "eth0", ("10.0.0.1/24",))),
        Side(net["b"].fd, Endpoint("b", "eth0", ("10.0.0.2/24",))),
        parse_link_impair("impair", {"delay": "50ms", "loss": "5%"}),
        manifest=net.run.manifest,
    ).build()
    assert link.has_relay
    ping = net["a"].popen(["ping", "-i", "0.01", "10.0.0.2"], stdout=open(os.devnull, "w"))
    with open(os.environ["RSH_TEST_OUT"], "w") as fh:
        fh.write(" ".join([net["a"].path, str(link.relay.pid), str(ping.pid), str(net.run.dir)]))
    time.sleep(300)
"""


@pytest.mark.parametrize("reaper", ["with reaper", "relay alone"])
def test_sigkilled_pytest_mid_impairment_leaves_nothing(tmp_path: Path, reaper: str) -> None:
    proc, out = start_inner_pytest(tmp_path, INNER)
    reaper_pids: list[int] = []
    try:
        assert wait_for(lambda: out.exists() and out.read_text(), 60), "inner test never built"
        ns_a, relay, ping, run_dir = out.read_text().split()
        assert os.path.exists(f"/proc/{relay}")
        if reaper == "relay alone":
            # Stop the run's reaper first: the relay must still follow its owner by itself.
            mine = f"reaper\0{run_dir}\0"
            reaper_pids = [
                int(p) for p in os.listdir("/proc") if p.isdigit() and mine in _cmdline(int(p))
            ]
            assert reaper_pids
            for pid in reaper_pids:
                os.kill(pid, signal.SIGSTOP)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert wait_for(lambda: exited(relay), 10), "relay outlived"
    finally:
        for pid in reaper_pids:
            os.kill(pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()

    paths = [ns_a, run_dir]
    if reaper == "with reaper":
        # With ours stopped, another run's reaper may reap this dead run first; one that
        # predates the manifest's "dir" kind leaves the (empty) names folder behind.
        paths.append(_names_dir(ns_a))

    def gone() -> bool:
        return exited(relay) and exited(ping) and not any(os.path.exists(p) for p in paths)

    assert wait_for(gone, 60), (
        [p for p in paths if os.path.exists(p)],
        [p for p in (relay, ping) if not exited(p)],
    )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    except OSError:
        return ""


def _names_dir(ns_path: str) -> str:
    """The node's /etc/netns folder (its hosts file): the reaper removes it too."""
    return os.path.join("/etc/netns", os.path.basename(ns_path))
