"""Topologies shared by a module's or a session's tests, with per-test logs and captures.

Theory of operation: ``netns_topology_module`` and ``netns_topology_session`` are factories
like ``netns_topology`` whose networks live until the end of their scope (a session per
xdist worker). Each built network is a :class:`Shared` in the :class:`SharedNetworks`
registry on the config; a test *uses* the networks of every shared fixture it depends on
(``item.fixturenames``, so also through the user's own fixtures). At a test's setup the
plugin marks where every used network's peer logs end and the time
(:meth:`SharedNetworks.begin`); a peer that died since the previous test fails this test's
setup, naming it. When a test fails, its report gets the peer logs from its marks on and
pcaps of its own time span only (frames from the mark on), in its own capture folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rawstack_harness.backends.base import Network
    from rawstack_harness.capture import Capture

SHARED_FIXTURES = ("netns_topology_module", "netns_topology_session")


@dataclass
class Shared:
    """One network a scope's tests share, and its capture (None when not captured)."""

    net: Network
    fixture: str
    capture: Capture | None = None


@dataclass
class Span:
    """Where a test's own part of a shared network's logs and frames begins."""

    start_ns: int
    marks: dict[int, dict[str, dict[str, int]]] = field(default_factory=dict)  # net -> node


@dataclass
class SharedNetworks:
    """Every shared network of this process, by the fixture that built it."""

    by_fixture: dict[str, list[Shared]] = field(default_factory=dict)

    def add(self, shared: Shared) -> None:
        self.by_fixture.setdefault(shared.fixture, []).append(shared)

    def remove(self, shared: Shared) -> None:
        self.by_fixture.get(shared.fixture, []).remove(shared)

    def used_by(self, fixturenames: list[str]) -> list[Shared]:
        return [s for f in SHARED_FIXTURES if f in fixturenames for s in self.by_fixture.get(f, [])]

    def begin(self, fixturenames: list[str]) -> tuple[Span, list[str]]:
        """A test's span (marks now) and the death messages of peers that died meanwhile."""
        span = Span(time.time_ns())
        dead: list[str] = []
        for shared in self.used_by(fixturenames):
            span.marks[id(shared.net)] = {
                name: peer.log_marks() for name, peer in shared.net.peers.items()
            }
            dead += [
                f"died between tests, in shared topology {shared.net.topology.name!r}: "
                f"{peer.death_message()}"
                for peer in shared.net.peers.values()
                if peer.died()
            ]
        return span, dead

    def sections(
        self, fixturenames: list[str], span: Span | None, capture_dir: Path
    ) -> list[tuple[str, str]]:
        """A failed test's report sections for the shared networks it used."""
        out: list[tuple[str, str]] = []
        written: list[str] = []
        for shared in self.used_by(fixturenames):
            net = shared.net
            marks = span.marks.get(id(net), {}) if span else {}
            for name, peer in net.peers.items():
                title = f"netns peer log: node {name} (shared {net.topology.name}, this test)"
                out.append((title, peer.logs(since=marks.get(name))))
            if shared.capture is not None:
                since = span.start_ns if span else 0
                for path, tap in shared.capture.write(
                    capture_dir, f"{net.topology.name}-", since_ns=since
                ):
                    written.append(f"{path} (whole ring: {tap.summary()})")
        if written:
            out.append(
                (
                    "netns captures (shared topologies, this test's time span)",
                    "\n".join(written),
                )
            )
        return out


def close(shared: Shared) -> None:
    """Stop the capture, then remove the network (a socket would pin its namespace)."""
    if shared.capture is not None:
        shared.capture.stop()
    shared.net.destroy()


__all__ = ["SHARED_FIXTURES", "Shared", "SharedNetworks", "Span", "close"]
