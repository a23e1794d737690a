"""Where the kernel refuses a user namespace, one line names the setting that did."""

from __future__ import annotations

import errno
import os

import pytest
from rawstack_harness.backends.linux import userns
from rawstack_harness.backends.linux.userns import Settings, explain_refusal

UNSHARE = userns.UNSHARE


def settings(
    *,
    clone: str | None = None,
    apparmor: str | None = None,
    max_ns: str | None = "63000",
    seccomp: int = 0,
    threads: int = 1,
    has_userns: bool = True,
    privileged: bool = False,
) -> Settings:
    return Settings(
        sysctls={
            userns.SYSCTL_CLONE: clone,
            userns.SYSCTL_APPARMOR: apparmor,
            userns.SYSCTL_MAX: max_ns,
        },
        seccomp=seccomp,
        threads=threads,
        has_userns=has_userns,
        privileged=privileged,
    )


CASES = [
    # (errno, settings, step, the words the line must hold)
    (errno.EPERM, settings(clone="0"), UNSHARE, "kernel.unprivileged_userns_clone=0"),
    (
        errno.EPERM,
        settings(apparmor="1"),
        "mount tmpfs on /run",
        "kernel.apparmor_restrict_unprivileged_userns=1",
    ),
    (errno.ENOSPC, settings(max_ns="0"), UNSHARE, "user.max_user_namespaces=0 allows none"),
    (errno.ENOSPC, settings(max_ns="5"), UNSHARE, "user.max_user_namespaces=5 is used up"),
    (errno.EPERM, settings(seccomp=2), UNSHARE, "a seccomp filter blocks it"),
    (errno.EINVAL, settings(threads=3), UNSHARE, "this one runs 3 threads"),
    (errno.EPERM, settings(has_userns=False), UNSHARE, "CONFIG_USER_NS is off"),
]


@pytest.mark.parametrize(("err", "found", "step", "words"), CASES)
def test_the_refusing_setting_is_named(err: int, found: Settings, step: str, words: str) -> None:
    line = explain_refusal(step, err, found)
    assert words in line
    assert "\n" not in line
    assert line.startswith("rootless mode: the kernel refuses a user namespace")


def test_the_debian_sysctl_wins_over_a_seccomp_filter() -> None:
    """Both refuse with EPERM; the sysctl is checked first (it refuses before seccomp could
    matter to the user, and a filter alone does not say it is the culprit)."""
    line = explain_refusal(UNSHARE, errno.EPERM, settings(clone="0", seccomp=2))
    assert "unprivileged_userns_clone=0" in line


def test_root_is_not_told_about_unprivileged_only_sysctls() -> None:
    """unprivileged_userns_clone and the AppArmor restriction exempt CAP_SYS_ADMIN."""
    line = explain_refusal(UNSHARE, errno.EPERM, settings(clone="0", privileged=True))
    assert "unprivileged_userns_clone" not in line
    assert f"{UNSHARE}: {os.strerror(errno.EPERM)} (a chroot or a security module" in line


def test_an_unexplained_eperm_names_the_other_refusers() -> None:
    """Nothing in the settings explains it (as in a chroot): say what else refuses."""
    line = explain_refusal(UNSHARE, errno.EPERM, settings())
    assert line.endswith("(a chroot or a security module refuses it)")


def test_an_unknown_refusal_says_what_failed() -> None:
    line = explain_refusal("writing /proc/self/uid_map", errno.EACCES, settings())
    assert line.endswith(f"writing /proc/self/uid_map: {os.strerror(errno.EACCES)}")


def test_a_stale_mark_is_not_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    """An exported mark that is not this process's user namespace does not count."""
    monkeypatch.setenv(userns.ENV_MARK, str(userns.userns_inode() + 1))
    assert not userns.inside_run()
    monkeypatch.setenv(userns.ENV_MARK, str(userns.userns_inode()))
    assert userns.inside_run()


def test_read_settings_reads_this_machine() -> None:
    found = userns.read_settings()
    assert found.threads >= 1
    assert set(found.sysctls) == set(userns.SETTINGS)
    assert found.has_userns == os.path.exists("/proc/self/ns/user")


def test_a_refusal_becomes_the_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """begin() keeps the kernel's line; missing_requirement() reports it (fixtures skip with
    it, netns-harness exits 77 with it) instead of the generic 'needs root'."""
    from rawstack_harness.backends.linux import env, rootless

    line = "rootless mode: the kernel refuses a user namespace: user.max_user_namespaces=0"

    def refuse() -> None:
        raise userns.Refused(line)

    monkeypatch.setattr(userns, "enter", refuse)
    monkeypatch.setattr(env, "has_admin_caps", lambda: False)
    monkeypatch.setattr(rootless, "inside_run", lambda: False)
    monkeypatch.setattr(rootless, "_STATE", rootless._State())
    monkeypatch.setenv(rootless.ENV_MODE, "auto")
    env.missing_requirement.cache_clear()
    try:
        assert rootless.begin("auto") == "rootless"
        assert rootless.refusal() == line
        assert env.missing_requirement() == line
    finally:
        env.missing_requirement.cache_clear()


@pytest.mark.parametrize(
    ("mode", "admin", "inside", "resolved"),
    [
        ("auto", True, False, "root"),
        ("auto", False, False, "rootless"),
        ("auto", True, True, "rootless"),  # a worker of a rootless run has caps: still inside
        ("root", False, False, "root"),
        ("rootless", True, False, "rootless"),
    ],
)
def test_mode_resolution(
    monkeypatch: pytest.MonkeyPatch, mode: str, admin: bool, inside: bool, resolved: str
) -> None:
    from rawstack_harness.backends.linux import env, rootless

    monkeypatch.setattr(env, "has_admin_caps", lambda: admin)
    monkeypatch.setattr(rootless, "inside_run", lambda: inside)
    assert rootless.resolve(mode) == resolved
