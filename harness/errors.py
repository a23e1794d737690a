"""The harness's one error tree, rooted in :class:`rawstack.errors.RawstackError`.

Every failure the harness reports is a :class:`HarnessError`, so ``netns-harness`` turns any
of them into one line on stderr and the exit status the error carries (the statuses of
:mod:`rawstack.errors`: 1 failed, 2 usage, 77 missing privilege). The classes that callers
also know by a builtin base keep it as a second base (``SpecError`` is a ``ValueError``,
``Unsupported`` a ``NotImplementedError``), so code written against those still works.

Errors that belong to one room are defined there but hang from this tree:
``rawstack_harness.supervise.PeerDied``, ``rawstack_harness.clients.ClientFailed`` and the Linux
backend's ``NetlinkError``.
"""

from __future__ import annotations

from rawstack.errors import EXIT_FAILED, EXIT_NOPERM, EXIT_USAGE, RawstackError


class HarnessError(RawstackError):
    """The harness could not build, run or clean up (exit 1)."""

    exit_code = EXIT_FAILED


class NotPrivileged(HarnessError):
    """Missing root / CAP_NET_ADMIN or a kernel feature (exit 77)."""

    exit_code = EXIT_NOPERM


class MissingFeature(NotPrivileged):
    """The kernel lacks every mechanism for something a spec asks (the message names it)."""


class Unsupported(HarnessError, NotImplementedError):
    """This backend cannot do what was asked, e.g. ``socket()`` in a FreeBSD jail (exit 2)."""

    exit_code = EXIT_USAGE


class UnsupportedPlatform(Unsupported):
    """No topology backend exists for this OS (exit 2: the command cannot be used here)."""


class SpecError(HarnessError, ValueError):
    """A topology spec is invalid; ``path`` names the offending field (exit 2)."""

    exit_code = EXIT_USAGE

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ProbeFailed(HarnessError):
    """A supervision probe got no (or a wrong) answer before its deadline."""
