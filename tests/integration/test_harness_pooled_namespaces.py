"""Namespaces made ahead (nspool.py): a build names the ones its run's pool made while the last
test ran, they work as any node's, and closing the run lets go of the rest."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from _loopback import wait_for
from rawstack_harness.backends.linux.nodes import build
from rawstack_harness.backends.linux.nspool import FIRST, Fresh
from rawstack_harness.backends.linux.runs import LinuxRun
from rawstack_harness.topology import pair

pytestmark = pytest.mark.netns


def _netns_held() -> set[str]:
    """The network namespaces this process holds descriptors of (``net:[inode]``)."""
    held = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("net:["):
            held.add(link)
    return held


def test_a_build_names_the_namespaces_its_pool_made_and_they_work(
    netns_run: Any, netns_topology: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    netns_topology(pair())  # this run's pool now holds (at least) a pair's, or soon will
    pool = netns_run.namespace_pool()
    assert wait_for(lambda: pool.held() >= FIRST, 5), pool.failure
    taken: list[int] = []
    take = pool.take

    def recorded(n: int) -> list[Fresh]:
        fresh: list[Fresh] = take(n)
        taken.extend(os.fstat(f.fd).st_ino for f in fresh)
        return fresh

    monkeypatch.setattr(pool, "take", recorded)
    net = netns_topology(pair())
    a, b = net["a"], net["b"]
    assert sorted(taken) == sorted(os.stat(n.path).st_ino for n in (a, b))
    # Named where `ip netns` looks, with the node defaults, and joined by their veth.
    shown = subprocess.run(
        ["ip", "netns", "exec", a.netns, "ip", "-o", "link", "show", "eth0"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert a.sysctl("net.ipv6.conf.eth0.accept_dad") == "0"
    for src, dst, family in ((a, b, "-4"), (b, a, "-6")):
        out = src.run(["ping", family, "-c1", "-W2", dst.addr(int(family[1]))],
                      capture_output=True, text=True)  # fmt: skip
        assert out.returncode == 0, out.stdout + out.stderr


def test_closing_the_run_lets_go_of_the_namespaces_it_held() -> None:
    before = _netns_held()
    run = LinuxRun(label="nspool-test")
    try:
        build(pair("pool"), run).destroy()
        pool = run.namespace_pool()
        assert pool is not None
        assert wait_for(lambda: pool.held() >= FIRST, 5), pool.failure
        assert len(_netns_held() - before) >= FIRST  # anonymous: only our descriptors hold them
    finally:
        run.close()
    assert _netns_held() - before == set()
    assert pool.take(FIRST) == []


def test_a_run_opened_without_a_pool_makes_each_namespace_on_the_spot() -> None:
    run = LinuxRun(label="nspool-test", pool=False)
    try:
        assert run.namespace_pool() is None
        build(pair("nopool"), run).destroy()  # and builds as before
    finally:
        run.close()
