"""Backend selection (by sys.platform) and what supervision, the plugin and the CLI take from it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
import rawstack_harness.backends
import rawstack_harness.plugin
from _fakes import StandIn
from rawstack_harness import cli, supervise
from rawstack_harness.backends import (
    KERNEL,
    RAWSTACK,
    Backend,
    ReadyEvent,
    select_backend,
    unavailable_reason,
)
from rawstack_harness.backends.base import ProbeNode
from rawstack_harness.backends.freebsd import BACKEND as FREEBSD
from rawstack_harness.backends.freebsd import FreeBSDBackend
from rawstack_harness.backends.linux import BACKEND as LINUX
from rawstack_harness.errors import UnsupportedPlatform
from rawstack_harness.topology import pair, to_dict


@pytest.mark.parametrize(
    ("platform", "expected"), [("linux", LINUX), ("freebsd14", FREEBSD), ("freebsd13", FREEBSD)]
)
def test_select_by_platform(
    monkeypatch: pytest.MonkeyPatch, platform: str, expected: rawstack_harness.backends.Backend
) -> None:
    assert select_backend(platform) is expected
    monkeypatch.setattr(sys, "platform", platform)
    assert select_backend() is expected


@pytest.mark.parametrize("platform", ["darwin", "openbsd7", "win32"])
def test_no_backend_is_a_usage_error_naming_the_os(platform: str) -> None:
    with pytest.raises(UnsupportedPlatform, match=f"no topology backend for {platform}") as info:
        select_backend(platform)
    assert info.value.exit_code == 2
    assert unavailable_reason(platform) == str(info.value)


@pytest.mark.skipif(sys.platform.startswith("freebsd"), reason="checks the off-FreeBSD refusal")
def test_freebsd_backend_off_freebsd_says_so() -> None:
    reason = FREEBSD.missing_requirement()
    assert reason is not None
    assert "needs FreeBSD" in reason


def test_who_answers_each_peer() -> None:
    peers = ("http", "udp", "chao", "icmp")
    linux, bsd = LINUX.capabilities, FREEBSD.capabilities
    assert set(linux.servers(peers).values()) == {RAWSTACK}
    assert bsd.servers(peers) == {
        "http": RAWSTACK,
        "udp": RAWSTACK,
        "chao": RAWSTACK,
        "icmp": KERNEL,
    }
    assert linux.serve_all_peers() is None
    assert bsd.serve_all_peers() == ("http", "udp", "chao")
    assert (linux.node_sockets, bsd.node_sockets) == (True, False)
    assert "a jail has no setns" in bsd.no_node_sockets
    assert (linux.keep, bsd.keep) == (True, False)


def test_both_backends_satisfy_the_protocol() -> None:
    # mypy checks the assignments; at run time every Protocol member must be there.
    backends: list[Backend] = [LINUX, FREEBSD]
    members = {"name", "description", "capabilities", "default_root", "missing_requirement",
               "open_run", "build", "reap_dead_runs", "describe_runs", "keep", "keep_spec",
               "unkeep", "probe_peers", "enter_hint"}  # fmt: skip
    for backend in backends:
        assert members - set(dir(backend)) == set()


def test_serve_all_argv() -> None:
    base = [sys.executable, "-m", "rawstack", "serve-all", "--iface", "eth0"]
    assert supervise.serve_all_argv("eth0") == base
    assert supervise.serve_all_argv("eth0", ("http", "udp", "chao")) == [
        *base,
        "--peers",
        "http,udp,chao",
    ]


class FakeNode(StandIn):
    """Records sysctl writes and the argv; popen starts a stand-in serve-all locally."""

    def __init__(self, name: str, stand_in: list[str]) -> None:
        super().__init__(name, stand_in)
        self.sysctls: list[tuple[str, str | None]] = []

    def sysctl(self, key: str, value: str | None = None) -> str:
        self.sysctls.append((key, value))
        return value or ""


def _printer(peers: tuple[str, ...]) -> list[str]:
    lines = [json.dumps({"event": "ready", "peer": p, "addr": "0.0.0.0:1"}) for p in peers]
    code = "import sys, time; print(sys.argv[1], flush=True); time.sleep(30)"
    return [sys.executable, "-c", code, "\n".join(lines)]


def test_freebsd_supervision_leaves_kernel_echo_alone_and_awaits_no_icmp_line(
    tmp_path: Path,
) -> None:
    node = FakeNode("a", _printer(("http", "udp", "chao")))
    pp = supervise.PeerProcess(node, "eth0", supervise.ALL_PEERS, tmp_path, FREEBSD)
    assert pp.awaited == ("http", "udp", "chao")
    pp.start()
    try:
        pp.wait_ready_lines(time.monotonic() + 10)
        assert node.sysctls == []
        assert node.argv[-2:] == ["--peers", "http,udp,chao"]
        assert set(pp.ready) == {"http", "udp", "chao"}
    finally:
        pp.stop()


def test_linux_supervision_turns_kernel_echo_off_and_needs_the_icmp_line(tmp_path: Path) -> None:
    node = FakeNode("a", _printer(("http", "udp", "chao")))  # no icmp ready line
    pp = supervise.PeerProcess(node, "eth0", supervise.ALL_PEERS, tmp_path, LINUX)
    pp.start()
    try:
        assert node.sysctls == [
            ("net.ipv4.icmp_echo_ignore_all", "1"),
            ("net.ipv6.icmp.echo_ignore_all", "1"),
        ]
        assert "--peers" not in node.argv
        with pytest.raises(supervise.PeerDied, match="no ready line from icmp"):
            pp.wait_ready_lines(time.monotonic() + 1.5)
    finally:
        pp.stop()


class RecordingFreeBSD(FreeBSDBackend):
    def __init__(self) -> None:
        self.probed: list[str] = []

    def probe_peer(
        self,
        peer: str,
        *,
        src: ProbeNode,
        src_ifname: str,
        dst: ProbeNode,
        dst_ifname: str,
        ready: Mapping[str, ReadyEvent],
    ) -> float:
        self.probed.append(peer)
        return 0.001


def test_kernel_answered_peers_are_probed_through_the_backend(tmp_path: Path) -> None:
    backend = RecordingFreeBSD()
    node = FakeNode("b", [sys.executable, "-c", "pass"])
    pp = supervise.PeerProcess(node, "eth0", ("http", "icmp"), tmp_path, backend)
    pp.probe_from(FakeNode("a", []), "eth0", time.monotonic() + 5)
    assert sorted(backend.probed) == ["http", "icmp"]  # probed at once: in any order
    assert pp.servers == {"http": RAWSTACK, "icmp": KERNEL}


def test_plugin_skip_reason_names_an_unsupported_os(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert rawstack_harness.plugin._skip_reason() == (
        "no topology backend for darwin: the harness builds Linux network namespaces or "
        "FreeBSD VNET jails"
    )


def test_skip_without_node_sockets_on_freebsd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "freebsd14")
    with pytest.raises(pytest.skip.Exception, match=r"node\.socket\(\) is unsupported on FreeBSD"):
        rawstack_harness.plugin.skip_without_node_sockets()


def test_skip_without_node_sockets_passes_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "linux")
    rawstack_harness.plugin.skip_without_node_sockets()


@pytest.mark.parametrize(
    ("backend", "line"),
    [
        (LINUX, "netns: linux backend, network namespaces*; icmp peer: rawstack's responder*"),
        (FREEBSD, "netns: freebsd backend, VNET jails*; icmp peer: the kernel's echo*"),
    ],
)
def test_report_header_names_backend_and_icmp_peer(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    backend: rawstack_harness.backends.Backend,
    line: str,
) -> None:
    monkeypatch.setattr(rawstack_harness.plugin, "_backend", lambda: backend)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest()
    result.stdout.fnmatch_lines([line])


def test_cli_on_an_unsupported_os_is_one_line_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")
    assert cli.main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("netns-harness: error: no topology backend for darwin")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("command", ["up", "down"])
def test_cli_keep_commands_unsupported_on_freebsd(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: str,
) -> None:
    spec = tmp_path / "pair.yaml"
    spec.write_text(json.dumps(to_dict(pair())))
    monkeypatch.setattr(sys, "platform", "freebsd14")
    arg = str(spec) if command == "up" else "kept"
    assert cli.main([command, arg]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"netns-harness: error: netns-harness {command} is not supported on the freebsd "
        "backend yet (kept topologies need a keeper process; only the Linux one exists)\n"
    )


def _rows(plan: list[cli.DemoExchange]) -> list[tuple[str, str, str]]:
    return [(x.label, x.direction, x.server) for x in plan]


IPV6_ROWS = [(f"{p}6", d, RAWSTACK) for d in ("a->b", "b->a") for p in ("icmp", "http", "udp")]


def test_demo_plan_where_the_kernel_is_the_icmp_peer() -> None:
    before, with_peers, routed = cli.demo_plan(FREEBSD.capabilities)
    # No separate "kernel before serve-all" rows: the kernel is the ICMP peer throughout.
    assert before == []
    assert [r for r in _rows(with_peers) if r[0] == "icmp"] == [
        ("icmp", "a->b", KERNEL),
        ("icmp", "b->a", KERNEL),
    ]
    assert {r[2] for r in _rows(with_peers) if r[0] not in ("icmp", "icmp6")} == {RAWSTACK}
    assert {r[2] for r in _rows(with_peers) if r[0] == "icmp6"} == {KERNEL}
    assert _rows(routed) == [
        ("http", "a->r->b", RAWSTACK),
        ("icmp", "a->r->b", KERNEL),
        ("http", "b->r->a", RAWSTACK),
        ("icmp", "b->r->a", KERNEL),
        ("icmp6", "a->r->b", KERNEL),
        ("http6", "a->r->b", RAWSTACK),
        ("udp6", "a->r->b", RAWSTACK),
        ("icmp6", "b->r->a", KERNEL),
        ("http6", "b->r->a", RAWSTACK),
        ("udp6", "b->r->a", RAWSTACK),
    ]


def test_demo_plan_where_rawstack_answers_icmp() -> None:
    before, with_peers, routed = cli.demo_plan(LINUX.capabilities)
    assert _rows(before) == [("icmp", "a->b", KERNEL), ("icmp", "b->a", KERNEL)]
    assert {r[2] for r in _rows(with_peers)} == {RAWSTACK}
    assert sorted(_rows(with_peers)) == sorted(
        [(p, d, RAWSTACK) for p in ("http", "udp", "chao", "icmp") for d in ("a->b", "b->a")]
        + IPV6_ROWS
    )
    assert {r[2] for r in _rows(routed)} == {RAWSTACK}
    assert [r for r in _rows(routed) if r[0].endswith("6")] == [
        (p, d.replace("->", "->r->"), s) for p, d, s in IPV6_ROWS
    ]
    assert {x.version for x in with_peers + routed if x.label.endswith("6")} == {6}
    assert len(before + with_peers + routed) == 26  # the demo's "26/26 exchanges ok"
