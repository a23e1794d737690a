"""What this machine lacks to build topologies, as one human reason (or None)."""

from __future__ import annotations

import functools
import os
import socket

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21  # mount(2) for the /run/netns bind mounts


def _has_cap(bit: int) -> bool:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except OSError:
        pass
    return False


def has_admin_caps() -> bool:
    """CAP_NET_ADMIN and CAP_SYS_ADMIN: what root mode needs (root has them)."""
    return _has_cap(CAP_NET_ADMIN) and _has_cap(CAP_SYS_ADMIN)


def _probe_kernel() -> str | None:
    """Create a throwaway namespace with a veth pair in a helper thread."""
    from rawstack_harness.backends.linux import nsutil

    def inside() -> str | None:
        try:
            nsutil.unshare_net()
        except OSError as exc:
            return f"cannot create a network namespace (unshare CLONE_NEWNET: {exc.strerror})"
        try:
            from pyroute2 import IPRoute
        except ImportError:
            return "pyroute2 is not installed"
        nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
        ipr = IPRoute(use_socket=nl)
        try:
            ipr.link("add", ifname="rshprobe0", kind="veth", peer={"ifname": "rshprobe1"})
        except Exception as exc:
            return f"the kernel cannot create veth pairs (CONFIG_VETH missing?): {exc}"
        finally:
            ipr.close()
            nl.close()
        return None

    return nsutil.in_new_netns(inside)


@functools.cache
def missing_requirement() -> str | None:
    """None when topologies can be built here, else what is missing (cached)."""
    if not os.path.exists("/proc/self/ns/net"):
        return "network namespaces are not available (no /proc/self/ns/net; Linux only)"
    from rawstack_harness.backends.linux import rootless

    refused = rootless.refusal()
    if refused is not None:
        return refused
    if not has_admin_caps():
        if rootless.resolve() == rootless.ROOTLESS:
            return None  # the run (or the keeper `up` starts) enters its own namespaces
        return (
            "needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create namespaces and mounts), "
            "or rootless mode (--netns-mode=auto|rootless)"
        )
    if not os.access("/run", os.W_OK):
        return "/run is not writable (needed for /run/netns and /run/rawstack-harness)"
    if os.path.isdir("/run/netns") and not os.access("/run/netns", os.W_OK):
        return "/run/netns is not writable"
    return _probe_kernel()
