"""rawstack as a user's project gets it: built into an sdist and a wheel, installed in a venv.

A project with its own ``harness`` package (one of the commonest folder names in test trees)
must keep importing it with our plugin installed, and must reach the built-in topologies by
name, with no path into this repository. Building runs offline (``--no-isolation``, with the
build tools of the test extra); the venv borrows this environment's third-party packages
through a path entry, which does not run their ``.pth`` files, so the editable rawstack of
this checkout stays out and only the wheel's code is importable.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NOT_SOURCE = (".git", ".venv", ".tox", "*_cache", ".hypothesis", ".ci-artifacts", "build", "dist",
              "*.egg-info", "__pycache__")  # fmt: skip


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python -m build`` of this checkout: the sdist, and the wheel built from it.

    Built once for the session, xdist workers included: the first worker to take the lock
    in the session's shared temporary folder builds, the others wait for it and read what
    it built (nothing writes there after).
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    out = shared / "rawstack-dist"
    with open(shared / "rawstack-dist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "built").exists():
            shutil.rmtree(out, ignore_errors=True)  # what a failed build left
            _build(out, shared / "rawstack-src")
            (out / "built").touch()
    return out


def _own_env() -> dict[str, str]:
    """This environment without PYTEST_* and PYTHON* (PYTHONPATH above all): a checkout on
    the path has a rawstack.egg-info, and pip then takes the wheel as installed already."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHON"))}


def _build(out: Path, src: Path) -> None:
    # From a copy: building writes rawstack.egg-info into the source tree.
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(REPO, src, symlinks=True, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
        env=_own_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def only(pattern: str, where: Path) -> Path:
    (found,) = where.glob(pattern)
    return found


@pytest.fixture(scope="module")
def venv(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with the wheel installed and this environment's test tools on its path."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    (purelib,) = root.glob("lib/python*/site-packages")
    (purelib / "borrowed.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(root / "bin/python"), "install",
         "--no-deps", "--no-index", "-q", str(only("*.whl", dist))],
        env=_own_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return root


def test_wheel_installs_no_generic_top_level_name(dist: Path) -> None:
    names = zipfile.ZipFile(only("*.whl", dist)).namelist()
    tops = {n.split("/", 1)[0] for n in names if not n.split("/", 1)[0].endswith(".dist-info")}
    assert tops == {"rawstack", "rawstack_harness"}
    assert "rawstack_harness/py.typed" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(only("*.whl", dist)).read(metadata).decode()
    assert "License-Expression: MIT" in text
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_sdist_carries_docs_tests_and_examples(dist: Path) -> None:
    with tarfile.open(only("*.tar.gz", dist)) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    for path in ("LICENSE", "docs/harness.md", "examples/line3.yaml", "tests/conftest.py",
                 "tests/unit/test_codec_ipv4.py", "harness/plugin.py", "tox.ini"):  # fmt: skip
        assert path in names, path
    assert not any(n.startswith("ci/mypy_path") for n in names)


USER_TESTS = """
from harness.util import ANSWER


def test_own_harness_package():
    assert ANSWER == 42


def test_line3_by_name(netns_topology):
    net = netns_topology("line3")
    done = net["a"].run(["ping", "-c1", "-W2", net["b"].addr()], capture_output=True)
    assert done.returncode == 0, done.stdout


def test_pair_with_peers(netns_pair):
    from rawstack_harness import clients

    ready = netns_pair.peers["b"].ready
    assert clients.run_client("udp", netns_pair["a"], netns_pair["b"], ready=ready) > 0
"""


def test_user_project_with_its_own_harness_package(venv: Path, tmp_path: Path) -> None:
    (tmp_path / "harness").mkdir()
    (tmp_path / "harness/__init__.py").write_text("")
    (tmp_path / "harness/util.py").write_text("ANSWER = 42\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests/test_user.py").write_text(USER_TESTS)
    (tmp_path / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    env = _own_env()
    done = subprocess.run(
        [str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-p", "no:xdist", "tests"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    # The plugin in use is the wheel's, not this checkout's.
    show = "import rawstack_harness; print(rawstack_harness.__file__)"
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", show],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout  # fmt: skip
    assert str(venv) in where, where
    if os.geteuid() == 0:
        assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
        assert "3 passed" in summary, summary
    else:
        assert "1 passed, 2 skipped" in summary, done.stdout[-4000:]
