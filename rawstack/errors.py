"""The error tree for everything above the codecs.

Codec decode errors live in :mod:`rawstack.codec` (``DecodeError``) because the codec layer
must not depend on anything. These are the errors of the socket layer, the peers and the
CLI; each carries the exit status the CLI uses so a failure is one line and one code.
"""

from __future__ import annotations

# Exit statuses, documented in README.md and ``rawstack --help``.
EXIT_OK = 0
EXIT_FAILED = 1  # the exchange failed: no reply, loss, a server error
EXIT_USAGE = 2  # bad arguments or input (argparse also uses 2)
EXIT_NOPERM = 77  # sysexits.h EX_NOPERM: missing privilege (CAP_NET_RAW / CAP_NET_ADMIN)


class RawstackError(Exception):
    """Base of every error the CLI turns into one line on stderr."""

    exit_code = EXIT_FAILED


class UsageError(RawstackError):
    """Bad input from the user: an unknown interface, a bad MAC, a port in use, ..."""

    exit_code = EXIT_USAGE


class PrivilegeError(RawstackError):
    """The kernel refused a privileged operation (EPERM/EACCES on a raw socket)."""

    exit_code = EXIT_NOPERM

    def __init__(
        self,
        what: str,
        capability: str = "CAP_NET_RAW",
        hint: str = "run it as root, e.g. with sudo",
    ) -> None:
        self.capability = capability
        super().__init__(f"{what}: permission denied; this needs {capability} ({hint})")


class ExchangeFailed(RawstackError):
    """A client's exchange did not complete (timeout, loss, refused)."""

    exit_code = EXIT_FAILED
