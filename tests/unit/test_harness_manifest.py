"""The run manifest's live view: what it returns, and that it does not reread the log.

Linux only (the backend's module imports Linux-only pieces at the top).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip("the manifest is the Linux backend's", allow_module_level=True)

from rawstack_harness.backends.linux.runs import Manifest


def test_live_is_what_was_added_and_not_removed_in_creation_order(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "manifest.jsonl")
    m.add("netns", "/run/netns/a")
    m.add("file", "/etc/netns/a/hosts")
    m.add("proc", "pid:1", pid=1)
    assert [e["key"] for e in m.live()] == ["/run/netns/a", "/etc/netns/a/hosts", "pid:1"]
    m.remove("file", "/etc/netns/a/hosts")
    m.add("netns", "/run/netns/a", dev_ino=[1, 2])  # a second add updates in place
    assert [(e["key"], e.get("dev_ino")) for e in m.live()] == [
        ("/run/netns/a", [1, 2]),
        ("pid:1", None),
    ]
    # A reader in another process (the reaper) sees the same from the file alone.
    assert Manifest(m.path).live() == m.live()


def test_live_reads_the_log_once_and_then_follows_its_own_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"op": "add", "kind": "netns", "key": "x"}\n{"op": "add", "kind"', "utf-8")
    m = Manifest(path)
    reads: list[Path] = []
    real = Path.read_text

    def counting(self: Path, *args: object, **kwargs: object) -> str:
        reads.append(self)
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", counting)
    assert [e["key"] for e in m.live()] == ["x"]  # the torn last line is skipped
    for n in range(50):
        m.add("dir", f"d{n}")
        m.remove("dir", f"d{n}")
        assert [e["key"] for e in m.live()] == ["x"]
    assert reads == [path]
