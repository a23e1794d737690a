"""Link events on a kept topology (``netns-harness link|impair|member NAME ...``).

Theory of operation: a kept topology is owned by its keeper process; the CLI does not ask
it anything. It reads the keeper's description (``keeper.json``: the spec and every
namespace's path), opens the namespaces, and acts on the interfaces itself, through the same
:class:`~rawstack_harness.backends.linux.fabric.Fabric` a test uses: interfaces down and up,
tc pieces replaced. A relayed link's new delay line goes to its relay's control socket in the
keeper's run directory. Only a topology built by the keeper (``netns-harness up``) has live
relays; one kept after a failed test lost them with its test run (see docs/harness.md).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rawstack_harness.backends.linux import keeper
from rawstack_harness.backends.linux.fabric import Fabric
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology import from_dict
from rawstack_harness.topology.impair import LinkImpairment, parse_link_impair

from rawstack.errors import UsageError


@contextlib.contextmanager
def kept_fabric(name: str, root: str) -> Iterator[Fabric]:
    """A Fabric over the kept topology ``name`` (its namespaces opened for the call)."""
    found = keeper.find(name, root)
    if found is None:
        raise UsageError(f"no kept topology named {name!r}")
    run_dir, info = found
    described = info.get("topology") or {}
    if "spec" not in described:
        raise HarnessError(f"kept topology {name!r} has no spec (kept by an older harness)")
    topo = from_dict(described["spec"])
    fds: dict[str, int] = {}
    hubs: dict[str, int] = {}
    try:
        for node, d in described["nodes"].items():
            fds[node] = os.open(d["path"], os.O_RDONLY | os.O_CLOEXEC)
        for seg, d in described.get("hubs", {}).items():
            hubs[seg] = os.open(d["path"], os.O_RDONLY | os.O_CLOEXEC)
        yield Fabric(topo, fds, hubs, None, control_dir=Path(run_dir))
    finally:
        for fd in (*fds.values(), *hubs.values()):
            os.close(fd)


def change(name: str, root: str, what: str, args: list[str]) -> str:
    """``what`` is ``link`` (A [B] up|down), ``impair`` (A [B] SPEC|clear) or ``member``
    (SEGMENT NODE up|down); return one line saying what now holds."""
    try:
        return _change(name, root, what, args)
    except LookupError as exc:  # an unknown link, segment or member: the user's words
        raise UsageError(str(exc).strip("'\"")) from None


def _change(name: str, root: str, what: str, args: list[str]) -> str:
    with kept_fabric(name, root) as fab:
        if what == "member":
            if len(args) != 3 or args[2] not in ("up", "down"):
                raise UsageError("member: SEGMENT NODE up|down")
            seg, node, state = args
            fab.segment(seg).set_member_up(node.partition(":")[0], state == "up")
            return f"{name}: {seg} member {node} {state}"
        *ends, last = args
        if not 1 <= len(ends) <= 2:
            raise UsageError(f"{what}: A [B] {'up|down' if what == 'link' else 'SPEC|clear'}")
        index = fab.find_link(*ends)
        handle = fab.link(index)
        if what == "link":
            if last not in ("up", "down"):
                raise UsageError("link: A [B] up|down")
            for side in ("a", "b"):
                handle.set_up(side, last == "up")
            return f"{name}: link {handle.name} {last}"
        impair = LinkImpairment() if last == "clear" else parse_link_impair("impair", _spec(last))
        handle.set(impair)
        return f"{name}: {handle.describe()}"


def _spec(text: str) -> Any:
    """``SPEC`` is JSON or YAML flow style: ``'{delay: 20ms, loss: 1%}'``."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UsageError(f"impair: {text!r} is not a mapping: {str(exc).splitlines()[0]}") from None
