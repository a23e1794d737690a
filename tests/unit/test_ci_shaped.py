"""ci/shaped.py: which modules FreeBSD/macOS lack, the tox lists, and the shape itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "ci"))
import shaped  # noqa: E402  (ci/ is not a package)

REQUIRES = [
    'pyroute2>=0.7; sys_platform == "linux"',
    "PyYAML>=5.4",
    'pytest>=7; extra == "test"',
    'only-here; platform_system == "Linux" and extra == "test"',
    'mypy>=1.8; extra == "dev"',
    'winthing; sys_platform == "win32"',
]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="markers evaluated on Linux")
@pytest.mark.parametrize("target", sorted(shaped.TARGETS))
def test_absent_are_the_requirements_installed_here_but_not_there(target: str) -> None:
    absent = shaped.absent_distributions(shaped.TARGETS[target], REQUIRES)
    assert absent == ["pyroute2", "only-here"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pyproject's markers, on Linux")
def test_pyroute2_is_absent_from_the_installed_package_on_freebsd() -> None:
    assert "pyroute2" in shaped.absent_distributions(shaped.TARGETS["freebsd"])


def test_test_lists_come_from_tox_ini(tmp_path: Path) -> None:
    ini = tmp_path / "tox.ini"
    ini.write_text(
        "[testenv:bsd]\ncommands =\n    python ci/shard.py --junitxml=x \\\n"
        "        {posargs:tests/unit tests/bsd}\n[testenv:none]\ncommands = pytest\n"
    )
    assert shaped.tox_test_list("bsd", ini) == ["tests/unit", "tests/bsd"]
    with pytest.raises(ValueError, match="no \\{posargs"):
        shaped.tox_test_list("none", ini)
    assert "tests/bsd" in shaped.tox_test_list("bsd")
    assert "tests/integration/test_kernel_quirks.py" in shaped.tox_test_list("darwin")


def test_a_shaped_child_is_freebsd_without_pyroute2_and_scapy_still_loads() -> None:
    env = shaped.shaped_environ(shaped.TARGETS["freebsd"], ["pyroute2"])
    probe = (
        "import sys, sysconfig\n"
        "try:\n    import pyroute2.netlink\nexcept ModuleNotFoundError as e:\n    gone = e.name\n"
        "from scapy.layers.inet import IP\n"  # loads seeing linux: it binds this libc
        "print(sys.platform, gone, IP().version, bool(sysconfig.get_config_var('SOABI')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["freebsd14", "pyroute2", "4", "True"]


def test_shape_problems_names_what_did_not_take() -> None:
    nowhere = shaped.Target("nowhere", "bsd", "plan9", "Plan9")  # unlike any real platform
    env = shaped.shaped_environ(nowhere, [])
    env.pop("PYTHONPATH")  # no sitecustomize: nothing is shaped
    problems = shaped.shape_problems(nowhere, ["pytest"], env)
    assert len(problems) == 2
    assert re.fullmatch(r"sys\.platform is '\w+', not 'plan9'", problems[0])
    assert problems[1] == "pytest is importable"


def test_shaped_child_reports_json() -> None:
    env = shaped.shaped_environ(shaped.TARGETS["darwin"], ["pyroute2"])
    done = subprocess.run(
        [sys.executable, "-c", shaped._PROBE, "pyroute2", "yaml"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == {
        "platform": "darwin",
        "absent": {"pyroute2": True, "yaml": False},
    }
