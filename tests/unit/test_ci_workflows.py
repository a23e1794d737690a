"""The GitHub workflows: mirrored byte for byte, and no logic that lives only in YAML.

Every command a workflow runs (a ``run:`` step, or the ``run``/``prepare`` input of a VM
action) must be a tox env, a script under ci/, or one of the project's own console scripts
from .venv, chained with ``&&``; at least one of them a tox env or a ci/ script. Anything
else would be CI behaviour nobody can rerun locally.
"""

from __future__ import annotations

import configparser
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    tomllib = pytest.importorskip("tomli", reason="tomli is needed to read pyproject.toml")

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "ci" / "workflows"
MIRROR = ROOT / ".github" / "workflows"
# A major tag (v5), never a branch, a full version or a commit: updates within the major
# version arrive, breaking ones do not.
MAJOR_PIN = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@v\d+$")
VM_COMMAND_INPUTS = ("run", "prepare")


def _workflow_files() -> list[Path]:
    return sorted(SOURCE.glob("*.yml")) + sorted(SOURCE.glob("*.yaml"))


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path}: not a mapping"
    return data


def _steps(workflow: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def _commands(step: dict[str, Any]) -> Iterator[str]:
    """Every shell command line a step runs: its run:, or a VM action's run/prepare inputs."""
    if "run" in step:
        yield step["run"]
    inputs = step.get("with") or {}
    for key in VM_COMMAND_INPUTS:
        if "uses" in step and key in inputs:
            yield inputs[key]


def _tox_envs() -> set[str]:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini", encoding="utf-8")
    envs = {s.split(":", 1)[1] for s in ini.sections() if s.startswith("testenv:")}
    env_list = ini.get("tox", "env_list", fallback="")
    for version in re.findall(r"py3\{([\d,]+)\}", env_list):
        envs.update(f"py3{minor}" for minor in version.split(","))
    return envs


def _console_scripts() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    return set(project.get("scripts", {}))


def _classify(part: str, tox_envs: set[str], scripts: set[str]) -> str:
    """'tox', 'ci' or 'project' for an allowed command; raise AssertionError otherwise."""
    argv = shlex.split(part)
    while argv and argv[0] in ("sudo", "-E"):
        argv = argv[1:]
    assert argv, f"empty command in {part!r}"
    if argv[0] in ("sh", "bash") or argv[0].endswith("/python"):
        assert len(argv) > 1, f"{part!r}: an interpreter with no script"
        script = argv[1]
        assert script.startswith("ci/"), f"{part!r} runs {script}, which is not under ci/"
        assert (ROOT / script).is_file(), f"{part!r}: {script} does not exist"
        if script == "ci/tox.sh":
            _check_tox_envs(part, argv[2:], tox_envs)
            return "tox"
        return "ci"
    if Path(argv[0]).name == "tox":
        _check_tox_envs(part, argv[1:], tox_envs)
        return "tox"
    if argv[0].startswith(".venv/bin/") and Path(argv[0]).name in scripts:
        return "project"
    raise AssertionError(f"{part!r} is neither tox, a ci/ script nor a project console script")


def _check_tox_envs(part: str, args: list[str], tox_envs: set[str]) -> None:
    assert "-e" in args, f"{part!r}: name the tox env with -e"
    for env in args[args.index("-e") + 1].split(","):
        if "${{" not in env:
            assert env in tox_envs, f"{part!r}: tox.ini has no env {env!r}"


def _matrix_envs(workflow: dict[str, Any]) -> Iterator[str]:
    for job in workflow["jobs"].values():
        for row in job.get("strategy", {}).get("matrix", {}).get("include", []):
            if "env" in row:
                yield row["env"]


def test_there_are_workflows() -> None:
    assert _workflow_files(), f"no workflow in {SOURCE}"


def test_github_workflows_mirror_ci_workflows_byte_for_byte() -> None:
    source = {p.name: p.read_bytes() for p in _workflow_files()}
    mirror = {p.name: p.read_bytes() for p in sorted(MIRROR.glob("*.y*ml"))}
    assert sorted(mirror) == sorted(source), "the two folders hold different workflow files"
    differing = [name for name in source if source[name] != mirror[name]]
    assert not differing, f"edit ci/workflows/ and copy to .github/workflows/: {differing}"


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_every_command_calls_tox_or_a_ci_script(path: Path) -> None:
    tox_envs, scripts = _tox_envs(), _console_scripts()
    seen = 0
    for job_id, step in _steps(_load(path)):
        for command in _commands(step):
            seen += 1
            parts = [p.strip() for p in command.replace("\n", " ").split("&&")]
            kinds = [_classify(p, tox_envs, scripts) for p in parts]
            assert {"tox", "ci"} & set(kinds), f"{job_id}: {command!r} calls no tox env or ci/"
    assert seen, f"{path.name} runs no command at all"


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_matrix_tox_envs_exist(path: Path) -> None:
    missing = set(_matrix_envs(_load(path))) - _tox_envs()
    assert not missing, f"matrix names tox envs that tox.ini lacks: {sorted(missing)}"


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_actions_are_pinned_by_major_tag(path: Path) -> None:
    loose = [s["uses"] for _, s in _steps(_load(path)) if "uses" in s]
    loose = [u for u in loose if not MAJOR_PIN.match(u)]
    assert not loose, f"pin these by major tag (owner/repo@vN): {loose}"


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_every_job_uploads_artifacts_when_it_fails(path: Path) -> None:
    for job_id, job in _load(path)["jobs"].items():
        uploads = [
            s
            for s in job.get("steps", [])
            if str(s.get("uses", "")).startswith("actions/upload-artifact@")
        ]
        assert uploads, f"{job_id}: no upload-artifact step"
        for step in uploads:
            assert step.get("if") == "failure()", f"{job_id}: upload only if: failure()"
            assert step["with"]["path"].startswith(".ci-artifacts"), job_id


def _vm_steps(job: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    for i, step in enumerate(job.get("steps", [])):
        if re.match(r"^vmactions/[\w.-]+-vm@", str(step.get("uses", ""))):
            yield i, step


@pytest.mark.parametrize("path", _workflow_files(), ids=lambda p: p.name)
def test_a_failed_vm_suite_still_brings_its_artifacts_out(path: Path) -> None:
    """vmactions/*-vm rethrows a failing `run` before its copy-back, so a job either shares
    the tree live (sync: sshfs or nfs) or records the status and fails in a later host step
    (ci/exit-status.sh), before its upload step; `usesh` is deprecated and ignored."""
    seen = 0
    for job_id, job in _load(path)["jobs"].items():
        steps = job.get("steps", [])
        for i, step in _vm_steps(job):
            seen += 1
            inputs = step.get("with") or {}
            assert "usesh" not in inputs, f"{job_id}: usesh is deprecated and ignored: drop it"
            if inputs.get("sync") in ("sshfs", "nfs"):
                continue
            found = re.search(r"--status-file\s+(\S+)", inputs.get("run", ""))
            assert found, f"{job_id}: a failing run would upload nothing: use --status-file"
            check = f"sh ci/exit-status.sh {found.group(1)}"
            later = [j for j, s in enumerate(steps) if j > i and s.get("run") == check]
            assert later, f"{job_id}: no later step runs {check!r}"
            upload = [
                j
                for j, s in enumerate(steps)
                if str(s.get("uses", "")).startswith("actions/upload-artifact@")
            ]
            assert upload, f"{job_id}: no upload-artifact step"
            assert later[0] < upload[0], f"{job_id}: check the status before the upload"
    assert seen or path.name != "ci.yml", "the FreeBSD job's VM step is gone"


def test_tox_lint_runs_actionlint_on_every_workflow() -> None:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini", encoding="utf-8")
    commands = ini.get("testenv:lint", "commands")
    for path in _workflow_files():
        assert f"ci/workflows/{path.name}" in commands
        assert f".github/workflows/{path.name}" in commands


def test_classify_rejects_logic_that_lives_only_in_yaml() -> None:
    envs, scripts = {"lint"}, {"netns-harness"}
    for bad in ("pip install tox", "pytest tests/unit", "sh scripts/x.sh", "tox -e nope"):
        with pytest.raises(AssertionError):
            _classify(bad, envs, scripts)
    assert _classify("sudo -E sh ci/tox.sh -e lint", envs, scripts) == "tox"
    assert _classify(".venv/bin/netns-harness demo", envs, scripts) == "project"
    assert _classify(".venv/bin/python ci/shard.py --shard-count 2", envs, scripts) == "ci"
