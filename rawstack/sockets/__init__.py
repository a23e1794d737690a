"""The one thin socket layer: every socket rawstack opens is created and configured here.

Modules, by kind of socket:

- ``inet``: plain TCP listeners/connections and UDP sockets (HTTP and UDP peers).
- ``raw6``: raw IPv6 sockets (RFC 3542 ancillary data, ICMP6_FILTER per kernel, IPV6_CHECKSUM,
  hand-built headers through IPPROTO_RAW where the kernel takes them) and ICMPv6 ping sockets.
- ``raw``: raw IPv4 sockets (IPPROTO_RAW with IP_HDRINCL per the quirk model, raw ICMP
  receivers with ICMP_FILTER on Linux, unprivileged SOCK_DGRAM ICMP sockets, raw TCP).
- ``packet``: Linux AF_PACKET sockets bound to an interface and an EtherType.
- ``bpf``: /dev/bpf on the BSDs (CHAO where there is no AF_PACKET).

Errors from the kernel are translated once, here, by :func:`translated`: EPERM/EACCES
become :class:`~rawstack.errors.PrivilegeError`, EADDRINUSE and ENODEV become
:class:`~rawstack.errors.UsageError`.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from rawstack.errors import PrivilegeError, RawstackError, UsageError


@contextmanager
def translated(what: str, capability: str = "CAP_NET_RAW") -> Iterator[None]:
    """Turn the kernel's refusals into the one-line errors the CLI prints."""
    try:
        yield
    except PermissionError as exc:
        raise PrivilegeError(what, capability) from exc
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"{what}: address already in use") from exc
        if exc.errno in (errno.ENODEV, errno.ENXIO):
            raise UsageError(f"{what}: no such interface") from exc
        if exc.errno == errno.EADDRNOTAVAIL:
            raise UsageError(f"{what}: address not available on this host") from exc
        raise RawstackError(f"{what}: {exc.strerror or exc}") from exc
