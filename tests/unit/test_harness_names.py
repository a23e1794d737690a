"""names.write: the hosts files, and /etc/netns removed by another run at the wrong moment.

``ETC_NETNS`` points into ``tmp_path``, so no root is needed and the machine's /etc is not
touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rawstack_harness.backends.linux import names
from rawstack_harness.backends.linux.runs import Manifest
from rawstack_harness.topology import pair


@pytest.fixture
def etc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "etc-netns"
    monkeypatch.setattr(names, "ETC_NETNS", str(path))
    return path


def _dirs(manifest: Manifest) -> set[str]:
    return {e["key"] for e in manifest.live() if e["kind"] == "dir"}


def test_each_node_gets_its_hosts_file_and_the_run_claims_the_folder_it_made(
    etc: Path, tmp_path: Path
) -> None:
    manifest = Manifest(tmp_path / "manifest.jsonl")
    paths = names.write(manifest, pair(), ["rsh1-a", "rsh1-b"], root=str(tmp_path))
    assert sorted(paths) == ["rsh1-a", "rsh1-b"]
    assert "10.0.0.2\tb\n" in Path(paths["rsh1-a"]).read_text()
    assert str(etc) in _dirs(manifest)
    assert (tmp_path / names.CREATED_MARK).exists()
    names.remove(manifest, paths.values())
    assert not etc.exists()


def test_etc_netns_removed_by_another_run_mid_write_is_made_again_and_claimed(
    etc: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc.mkdir()  # another run's: it made it and holds nothing there any more
    manifest = Manifest(tmp_path / "manifest.jsonl")
    real_mkdir = os.mkdir
    raced: list[str] = []

    def mkdir(path: str | os.PathLike[str], mode: int = 0o777) -> None:
        if not raced and os.path.dirname(os.fspath(path)) == str(etc):
            raced.append(os.fspath(path))
            etc.rmdir()  # the other run's teardown, after makedirs saw the folder
        real_mkdir(path, mode)

    monkeypatch.setattr(os, "mkdir", mkdir)
    paths = names.write(manifest, pair(), ["rsh1-a"], root=str(tmp_path))
    assert raced
    assert Path(paths["rsh1-a"]).exists()
    assert str(etc) in _dirs(manifest)  # made again by this run: removed by it too
    names.remove(manifest, paths.values())
    assert not etc.exists()
