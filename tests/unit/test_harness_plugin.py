"""The pytest plugin seen from outside: options, markers, usage errors and skip reasons."""

from __future__ import annotations

import pytest
import rawstack_harness.plugin


def test_options_in_the_netns_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "network namespaces (rawstack harness):",
            "*--netns-keep-failed*",
            "*--netns-peers=LIST*",
            "*--netns-run-dir=DIR*",
        ]
    )


def test_marker_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.netns: builds network namespaces*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--netns-peers=http,gopher"],
            "*bad --netns-peers 'http,gopher': gopher not in http,udp,chao,icmp*",
        ),
        (["--netns-peers=,"], "*bad --netns-peers ',': empty list not in*"),
        (["--netns-run-dir=relative/dir"], "*--netns-run-dir: 'relative/dir' is not an absolute*"),
    ],
)
def test_bad_option_values_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest(*args)
    result.stderr.fnmatch_lines([message])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_peers_are_normalised_to_canonical_order() -> None:
    assert rawstack_harness.plugin.parse_peers(" icmp,http ") == ("http", "icmp")


def test_fixtures_and_marker_skip_with_the_missing_requirement(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        rawstack_harness.plugin,
        "_skip_reason",
        lambda: "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN ...)",
    )
    pytester.makepyfile(
        """
        import pytest

        def test_pair(netns_pair):
            raise AssertionError("must not run")

        @pytest.mark.netns
        def test_marked():
            raise AssertionError("must not run")

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*netns: needs root (CAP_NET_ADMIN*"] * 2)


def test_fixtures_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")
    result.stdout.fnmatch_lines_random(
        [
            "netns_topology*",
            "*Factory: build any spec*",
            "netns_pair*",
            "netns_line3*",
        ]
    )
