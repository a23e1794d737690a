"""Node names that resolve inside every node: one hosts file per node, as iproute2 reads it.

Theory of operation: ``ip netns exec NAME`` bind-mounts ``/etc/netns/NAME/hosts`` (if it
exists) on ``/etc/hosts`` in a mount namespace of the command's own. The harness writes that
file for each node's namespace (``/etc/netns/<prefix>-<node>/hosts``: unique to the run),
listing every node's addresses under the node's name, and ``node.run``/``node.popen`` do the
same bind mount in their child (:func:`~.nsutil.child_preexec`), so ``ping b`` from ``a``
works there, in ``ip netns exec`` on a kept topology, and nowhere else: the machine's own
``/etc/hosts`` is never touched. A network writes its nodes' files when first asked for
one (the first process started in a node, ``describe``, keeping it), not when it is built:
most tests never resolve a name. The files and directories are in the run's manifest
(recorded before they exist), so the reaper removes them after a crash; ``/etc/netns``
itself only if this run created it and it is empty.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Any

from rawstack_harness.topology.spec import Topology

ETC_NETNS = "/etc/netns"
MKDIR_ATTEMPTS = 3  # makedirs of a node's folder, for another run removing /etc/netns meanwhile
_LOCAL = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


def hosts_text(topology: Topology) -> str:
    """``/etc/hosts`` lines: every address of every node, under the node's name."""
    lines = [_LOCAL]
    for node in topology.nodes:
        for ep in topology.endpoints(node.name):
            lines += [f"{iface.ip}\t{node.name}\n" for iface in ep.interfaces()]
    return "".join(lines)


def sweep(prefix: str = "rsh") -> None:
    """Remove empty ``/etc/netns/<prefix>...`` folders whose namespace is gone.

    A reaper that predates the ``dir`` manifest kind removes a dead run's hosts files but
    not their folders; an empty folder named like ours with no namespace of that name is
    such a leftover (a folder with anything in it is never touched).
    """
    try:
        names = os.listdir(ETC_NETNS)
    except OSError:
        return
    for name in names:
        if name.startswith(prefix) and not os.path.exists(os.path.join("/run/netns", name)):
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(ETC_NETNS, name))


CREATED_MARK = ".etc-netns-created"  # in the state root: a run made /etc/netns


def write(
    manifest: Any, topology: Topology, netns: Iterable[str], root: str | None = None
) -> dict[str, str]:
    """Write each namespace's hosts file; return netns -> its path.

    A run that creates ``/etc/netns`` records it in its manifest (it removes the folder
    once empty) and, with ``root``, marks it in the state root too: when runs overlap, the
    folder may still hold another run's files when its creator ends, and the last run out
    (:func:`~.runs.global_cleanup`) removes it then.
    """
    sweep()
    text = hosts_text(topology)
    _claim_etc_netns(manifest, root)
    paths = {name: os.path.join(ETC_NETNS, name, "hosts") for name in netns}
    manifest.write(  # all before any exists: one write, not one per node
        [
            {"op": "add", "kind": kind, "key": key}
            for path in paths.values()
            for kind, key in (("dir", os.path.dirname(path)), ("file", path))
        ]
    )
    for path in paths.values():
        for attempt in range(MKDIR_ATTEMPTS):
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                break
            except FileNotFoundError:
                # Another run removed /etc/netns, empty, between makedirs's look at it and
                # its mkdir of our folder (a run removes the one it made once it is empty):
                # it is ours to make, and to remove, now.
                if attempt == MKDIR_ATTEMPTS - 1:
                    raise
                _claim_etc_netns(manifest, root)
        with open(path, "w", encoding="ascii") as fh:
            fh.write(text)
    return paths


def _claim_etc_netns(manifest: Any, root: str | None) -> None:
    """If ``/etc/netns`` is missing, record that this run makes it (see :func:`write`)."""
    if not os.path.isdir(ETC_NETNS):
        manifest.add("dir", ETC_NETNS)  # ours to remove, once empty
        if root is not None:
            with open(os.path.join(root, CREATED_MARK), "w", encoding="ascii"):
                pass


def remove(manifest: Any, paths: Iterable[str]) -> None:
    """Remove the hosts files and their folders (and ``/etc/netns`` if this run made it
    and it is left empty)."""
    entries = []
    for path in paths:
        folder = os.path.dirname(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):
            os.rmdir(folder)
        entries += [
            {"op": "del", "kind": "file", "key": path},
            {"op": "del", "kind": "dir", "key": folder},
        ]
    if any(e["kind"] == "dir" and e["key"] == ETC_NETNS for e in manifest.live()):
        try:
            os.rmdir(ETC_NETNS)  # only if empty: another network's files keep it (and
        except OSError:  # the entry, so the last one out, or the reaper, removes it)
            pass
        else:
            entries.append({"op": "del", "kind": "dir", "key": ETC_NETNS})
    manifest.write(entries)


def forget(manifest: Any, paths: Iterable[str]) -> None:
    """Drop the manifest entries without removing anything (a keeper took them over)."""
    entries = []
    for path in paths:
        entries += [
            {"op": "del", "kind": "file", "key": path},
            {"op": "del", "kind": "dir", "key": os.path.dirname(path)},
        ]
    manifest.write(entries)
