"""``--netns-capture`` seen from pytest, without root: options, header, and which tests keep pcaps.

The flow tests swap the backend for one that "builds" nothing and the tap opener for
socketpairs that already hold one frame, so the plugin's own decisions (start, stop, write
on failure or always, report section) run exactly as they do over real namespaces.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rawstack_harness.plugin
from rawstack_harness import capture
from rawstack_harness.backends import Backend, Capabilities
from rawstack_harness.backends.freebsd import BACKEND as FREEBSD
from rawstack_harness.backends.linux import BACKEND as LINUX
from rawstack_harness.backends.linux import LinuxBackend
from rawstack_harness.topology import Topology

from rawstack.codec.pcap import read_pcap


def test_options_listed_in_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--netns-capture=WHEN*", "*--netns-capture-dir=DIR*"])


def test_bad_mode_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--netns-capture=sometimes")
    result.stderr.fnmatch_lines(
        ["*--netns-capture: 'sometimes' is not one of never, failed, always*"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def _header(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, backend: Backend,
            *args: str) -> list[str]:  # fmt: skip
    monkeypatch.setattr(rawstack_harness.plugin, "_backend", lambda: backend)
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*args)
    return [line for line in result.outlines if line.startswith("netns:")]


def test_header_names_mode_and_default_dir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RAWSTACK_CI_ARTIFACTS", raising=False)
    lines = _header(pytester, monkeypatch, LINUX)
    expected = pytester.path / ".ci-artifacts" / "captures"
    assert lines[1] == f"netns: pcap per link endpoint (failed) in {expected}"


def test_header_follows_ci_artifacts_and_the_dir_option(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAWSTACK_CI_ARTIFACTS", "/tmp/artifacts")
    lines = _header(pytester, monkeypatch, LINUX, "--netns-capture=always")
    assert lines[1] == "netns: pcap per link endpoint (always) in /tmp/artifacts/captures"
    lines = _header(pytester, monkeypatch, LINUX, "--netns-capture-dir=caps")
    assert lines[1] == f"netns: pcap per link endpoint (failed) in {pytester.path / 'caps'}"


def test_header_without_capture(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(_header(pytester, monkeypatch, LINUX, "--netns-capture=never")) == 1


def test_header_on_freebsd_says_capture_is_skipped(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _header(pytester, monkeypatch, FREEBSD)
    assert lines[1] == (
        "netns: --netns-capture=failed ignored: the freebsd backend cannot open sockets "
        "inside a node (node.socket() is unsupported), so links are not captured"
    )


# -- the flow, over a backend that builds nothing -------------------------------------------
class _FakeNet:
    def __init__(self, topology: Topology, log: list[str]) -> None:
        self.topology = topology
        self.peers: dict[str, Any] = {}
        self.log = log

    def __getitem__(self, name: str) -> str:
        return name

    def destroy(self) -> None:
        self.log.append(f"destroy {self.topology.name}")

    def mechanisms(self) -> list[str]:
        return []


class _FakeRun:
    def close(self) -> None:
        pass


class _FakeBackend(LinuxBackend):
    name = "fake"

    def __init__(self, node_sockets: bool, log: list[str]) -> None:
        self.capabilities = Capabilities(node_sockets=node_sockets)
        self.log = log

    @property
    def default_root(self) -> str:
        return "/nonexistent/never-used"

    def open_run(self, root: str, label: str, *, fork: bool = True) -> Any:
        return _FakeRun()

    def build(self, topology: Topology, run: Any) -> Any:
        return _FakeNet(topology, self.log)


@pytest.fixture
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_FakeBackend, list[str]]]:
    """Linux-like fake backend; each tap socket holds one frame naming its endpoint."""
    log: list[str] = []
    backend = _FakeBackend(True, log)
    senders: list[socket.socket] = []
    taps: list[socket.socket] = []

    def fake_open(node: str, ifname: str) -> socket.socket:
        sender, end = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        end.setblocking(False)
        sender.send(f"frame on {node}:{ifname}".encode())
        senders.append(sender)
        taps.append(end)
        log.append(f"tap {node}:{ifname}")
        return end

    monkeypatch.setattr(rawstack_harness.plugin, "_skip_reason", lambda: None)
    monkeypatch.setattr(rawstack_harness.plugin, "_backend", lambda: backend)
    monkeypatch.setattr(capture, "open_tap_socket", fake_open)
    yield backend, log
    # Closed by the plugin before the topology went: nothing for us to close.
    assert [t.fileno() for t in taps] == [-1] * len(taps)
    for s in senders:
        s.close()


INNER = """
from rawstack_harness.topology import pair

def test_fails(netns_topology):
    netns_topology(pair())
    assert False, "on purpose"

def test_passes(netns_topology):
    netns_topology(pair())
"""


def _frames(path: Path) -> list[bytes]:
    return [r.data for r in read_pcap(path.read_bytes())[1]]


def test_failed_test_keeps_pcaps_and_reports_them(
    pytester: pytest.Pytester, fake_backend: tuple[_FakeBackend, list[str]], tmp_path: Path
) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(f"--netns-capture-dir={tmp_path}")
    result.assert_outcomes(passed=1, failed=1)
    folder = tmp_path / "test_inner.py_test_fails"
    result.stdout.fnmatch_lines(
        [
            "*- netns captures -*",
            "one pcap per link endpoint (read with `tshark -r FILE`):",
            f"{folder}/pair-a-eth0.pcap (1 frames)",
            f"{folder}/pair-b-eth0.pcap (1 frames)",
        ]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_inner.py_test_fails"]
    assert _frames(folder / "pair-a-eth0.pcap") == [b"frame on a:eth0"]
    assert _frames(folder / "pair-b-eth0.pcap") == [b"frame on b:eth0"]
    # Each test's taps were closed before its topology was destroyed.
    _, log = fake_backend
    assert log == ["tap a:eth0", "tap b:eth0", "destroy pair"] * 2


def test_always_keeps_passing_tests_pcaps_too(
    pytester: pytest.Pytester, fake_backend: tuple[_FakeBackend, list[str]], tmp_path: Path
) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(f"--netns-capture-dir={tmp_path}", "--netns-capture=always")
    result.assert_outcomes(passed=1, failed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "test_inner.py_test_fails",
        "test_inner.py_test_passes",
    ]
    assert _frames(tmp_path / "test_inner.py_test_passes" / "pair-b-eth0.pcap") == [
        b"frame on b:eth0"
    ]


def test_never_opens_no_tap(
    pytester: pytest.Pytester, fake_backend: tuple[_FakeBackend, list[str]], tmp_path: Path
) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(f"--netns-capture-dir={tmp_path}", "--netns-capture=never")
    result.assert_outcomes(passed=1, failed=1)
    assert "netns captures" not in result.stdout.str()
    assert list(tmp_path.iterdir()) == []
    _, log = fake_backend
    assert log == ["destroy pair"] * 2


def test_without_node_sockets_a_failure_says_why_there_is_no_pcap(
    pytester: pytest.Pytester, fake_backend: tuple[_FakeBackend, list[str]], tmp_path: Path
) -> None:
    backend, log = fake_backend
    backend.capabilities = Capabilities(node_sockets=False)
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest(f"--netns-capture-dir={tmp_path}")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["*- netns captures -*", "not captured: node.socket() is unsupported on the fake backend"]
    )
    assert list(tmp_path.iterdir()) == []
    assert log == ["destroy pair"] * 2


def test_a_rerun_replaces_the_old_pcaps(
    pytester: pytest.Pytester, fake_backend: tuple[_FakeBackend, list[str]], tmp_path: Path
) -> None:
    folder = tmp_path / "test_inner.py_test_fails"
    folder.mkdir()
    (folder / "line3-r-eth1.pcap").write_bytes(b"an earlier run's")
    pytester.makepyfile(test_inner=INNER)
    pytester.runpytest(f"--netns-capture-dir={tmp_path}").assert_outcomes(passed=1, failed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["pair-a-eth0.pcap", "pair-b-eth0.pcap"]
