"""host_quirks: detection, environment and explicit overrides, all injected."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from rawstack.quirks import ENV_OS, ENV_OSREL, host_quirks, quirks_for, read_osreldate


def no_osreldate() -> int:
    raise AssertionError("kern.osreldate must not be read here")


def system(name: str) -> Any:
    return lambda: name


@pytest.mark.parametrize(
    ("system_name", "expected"),
    [
        ("Linux", "Linux"),
        ("Darwin", "macOS"),
        ("iOS", "iOS"),
        ("OpenBSD", "OpenBSD"),
        ("NetBSD", "NetBSD"),
        ("DragonFly", "DragonFly"),
        ("DragonFlyBSD", "DragonFly"),
    ],
)
def test_detects_platform_system(system_name: str, expected: str) -> None:
    q = host_quirks(environ={}, system=system(system_name), osreldate=no_osreldate)
    assert q.label == expected


@pytest.mark.parametrize(
    ("osrel", "expected"),
    [(903000, "FreeBSD < 10.0"), (1003000, "FreeBSD 10.x"), (1400097, "FreeBSD >= 11.1")],
)
def test_detected_freebsd_reads_osreldate(osrel: int, expected: str) -> None:
    q = host_quirks(environ={}, system=system("FreeBSD"), osreldate=lambda: osrel)
    assert q.label == expected


def test_unknown_host_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown os 'Windows'"):
        host_quirks(environ={}, system=system("Windows"))


def test_environment_overrides_detection() -> None:
    env = {ENV_OS: "freebsd", ENV_OSREL: "1003000"}
    q = host_quirks(environ=env, system=system("Linux"), osreldate=no_osreldate)
    assert q is quirks_for("freebsd", 1003000)


def test_arguments_override_environment() -> None:
    env = {ENV_OS: "freebsd", ENV_OSREL: "1003000"}
    q = host_quirks("freebsd", 1400000, environ=env, osreldate=no_osreldate)
    assert q is quirks_for("freebsd", 1400000)
    assert host_quirks("darwin", environ=env) is quirks_for("darwin")


def test_env_osrel_applies_to_freebsd_only() -> None:
    q = host_quirks(environ={ENV_OSREL: "1400000"}, system=system("Linux"))
    assert q is quirks_for("linux")


def test_env_osrel_overrides_the_host_osreldate() -> None:
    env = {ENV_OSREL: "1003000"}
    q = host_quirks(environ=env, system=system("FreeBSD"), osreldate=no_osreldate)
    assert q is quirks_for("freebsd", 1003000)


def test_freebsd_named_but_not_detected_needs_osrel() -> None:
    with pytest.raises(ValueError, match="needs osrel"):
        host_quirks("freebsd", environ={}, system=system("Linux"), osreldate=no_osreldate)


def test_bad_env_osrel_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=f"{ENV_OSREL} must be an integer"):
        host_quirks(environ={ENV_OS: "freebsd", ENV_OSREL: "14.0"})


def test_explicit_osrel_for_linux_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="freebsd only"):
        host_quirks("linux", 1400000, environ={})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks detection on Linux")
def test_this_linux_host_is_the_linux_row(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_OS, raising=False)
    monkeypatch.delenv(ENV_OSREL, raising=False)
    assert host_quirks() is quirks_for("linux")


def test_read_osreldate_parses_sysctl(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        assert argv == ["sysctl", "-n", "kern.osreldate"]
        return subprocess.CompletedProcess(argv, 0, stdout="1400097\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert read_osreldate() == 1400097


@pytest.mark.parametrize(
    "failure",
    [
        FileNotFoundError(2, "No such file or directory", "sysctl"),
        subprocess.CalledProcessError(255, ["sysctl"], stderr="unknown oid"),
    ],
)
def test_read_osreldate_failure_names_the_override(
    monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        raise failure

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(ValueError, match=ENV_OSREL):
        read_osreldate()


def test_read_osreldate_rejects_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, stdout="kern.osreldate: 1\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(ValueError, match=r"kern\.osreldate"):
        read_osreldate()
