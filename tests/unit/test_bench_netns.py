"""bench.netns.start_ready on plain local processes: ready lines, early exit, silence."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from rawstack_harness.backends.linux.nodes import LinuxNode

from bench.netns import BenchError, start_ready


class LocalNode:
    """Just the ``popen`` start_ready uses, in this namespace; kills what it started."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc: subprocess.Popen[bytes] = subprocess.Popen(argv, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture
def node() -> Iterator[LocalNode]:
    local = LocalNode()
    yield local
    local.stop()


def script(body: str) -> list[str]:
    # argv[3:] is what start_ready names in its messages, like `rawstack udp serve`.
    return [sys.executable, "-c", body, "fake", "serve"]


READY = "import json; print(json.dumps({'event': 'ready', 'peer': %r, 'addr': %r}), flush=True)"


def test_returns_each_peers_ready_line(node: LocalNode, tmp_path: Path) -> None:
    body = (
        f"{READY % ('udp', '0.0.0.0:9')}\n{READY % ('chao', 'eth0')}\nimport time; time.sleep(60)"
    )
    proc, ready = start_ready(
        cast(LinuxNode, node), script(body), ["udp", "chao"], tmp_path / "log"
    )
    assert proc.poll() is None
    assert set(ready) == {"udp", "chao"}
    assert ready["udp"]["addr"] == "0.0.0.0:9"


def test_early_exit_names_the_stderr_tail(node: LocalNode, tmp_path: Path) -> None:
    body = "import sys; sys.stderr.write('one\\ntwo\\nbind: address in use\\n'); sys.exit(2)"
    with pytest.raises(BenchError, match=r"^fake serve exited: .*bind: address in use$"):
        start_ready(cast(LinuxNode, node), script(body), ["udp"], tmp_path / "log")


def test_silence_times_out(node: LocalNode, tmp_path: Path) -> None:
    body = "import time; time.sleep(60)"
    with pytest.raises(BenchError, match="printed no ready line in 0 s"):
        start_ready(cast(LinuxNode, node), script(body), ["udp"], tmp_path / "log", timeout=0.3)


def test_wrong_peer_is_reported(node: LocalNode, tmp_path: Path) -> None:
    body = f"{READY % ('http', '0.0.0.0:80')}\nimport time; time.sleep(60)"
    with pytest.raises(BenchError, match="no ready line from udp"):
        start_ready(cast(LinuxNode, node), script(body), ["udp"], tmp_path / "log")
