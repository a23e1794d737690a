"""rawstack_harness.clients without root: which way a command runs, and how a client's
outcome is read (fake nodes; the real ones are in tests/integration/test_forked_clients.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

import pytest
from rawstack_harness import clients
from rawstack_harness.clients import ClientFailed

UDP_OK = json.dumps({"received": 1, "mismatched": 0, "rtt_ms": {"avg": 0.25}})


class Dst:
    name = "b"

    def addr(self, version: int = 4, ifname: str | None = None) -> str:
        return "10.0.0.2"

    def mac(self, ifname: str = "eth0") -> str:
        return "02:00:00:00:00:02"


class Execing:
    """A node with no warm host (FreeBSD's, say): commands go through ``run``."""

    name = "a"

    def __init__(self, done: subprocess.CompletedProcess[str] | Exception) -> None:
        self.done = done
        self.argvs: list[list[str]] = []

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert kwargs["capture_output"]
        assert kwargs["text"]
        self.argvs.append(list(argv))
        if isinstance(self.done, Exception):
            raise self.done
        return self.done


class Forking(Execing):
    """A node that forks ``rawstack ARGS`` (the Linux backend's ``run_rawstack``)."""

    def __init__(self, done: subprocess.CompletedProcess[str] | Exception) -> None:
        super().__init__(done)
        self.forked: list[list[str]] = []

    def run_rawstack(
        self, args: Sequence[str], *, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        self.forked.append(list(args))
        if isinstance(self.done, Exception):
            raise self.done
        return self.done


def _done(code: int, out: str = "", err: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.CompletedProcess(["rawstack"], code, out, err)


READY = {"udp": {"event": "ready", "peer": "udp", "addr": "0.0.0.0:9000"}}


def test_a_node_that_forks_gets_the_arguments_and_no_interpreter() -> None:
    node = Forking(_done(0, UDP_OK))
    assert clients.run_client("udp", node, Dst(), ready=READY) == 0.25  # type: ignore[arg-type]
    assert node.forked == [
        ["udp", "send", "10.0.0.2", "9000", "-c", "1", "--timeout", "2", "--json"]
    ]
    assert node.argvs == []


def test_any_other_node_runs_python_m_rawstack() -> None:
    node = Execing(_done(0, UDP_OK))
    assert clients.run_client("udp", node, Dst(), ready=READY) == 0.25  # type: ignore[arg-type]
    (argv,) = node.argvs
    assert argv[:3] == [sys.executable, "-m", "rawstack"]
    assert argv[3:5] == ["udp", "send"]


@pytest.mark.parametrize("cls", [Forking, Execing])
def test_a_failed_exchange_names_the_command_status_and_stderr(cls: type[Execing]) -> None:
    node = cls(_done(1, "", "rawstack: 1 of 1 probes lost\n"))
    with pytest.raises(ClientFailed) as info:
        clients.run_client("udp", node, Dst(), ready=READY)  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith("'rawstack udp send 10.0.0.2 9000 -c 1")
    assert "in node a: exit status 1: rawstack: 1 of 1 probes lost" in text


@pytest.mark.parametrize("cls", [Forking, Execing])
def test_a_client_that_never_ends_is_a_client_failure(cls: type[Execing]) -> None:
    node = cls(subprocess.TimeoutExpired(["rawstack"], 30.0))
    with pytest.raises(ClientFailed, match=r"no result in 30s"):
        clients.run_client("udp", node, Dst(), ready=READY)  # type: ignore[arg-type]


def test_a_wrong_reply_is_a_client_failure() -> None:
    node = Forking(_done(0, json.dumps({"received": 0, "rtt_ms": {}})))
    with pytest.raises(ClientFailed, match=r"0 of 1 echoes back"):
        clients.run_client("udp", node, Dst(), ready=READY)  # type: ignore[arg-type]


def test_rawstack_forks_where_it_can() -> None:
    forking, execing = Forking(_done(2, "", "usage")), Execing(_done(2, "", "usage"))
    assert clients.rawstack(forking, "udp", "send").returncode == 2  # type: ignore[arg-type]
    assert clients.rawstack(execing, "udp", "send").returncode == 2  # type: ignore[arg-type]
    assert forking.forked == [["udp", "send"]]
    assert forking.argvs == []
    assert execing.argvs == [clients.rawstack_argv("udp", "send")]
