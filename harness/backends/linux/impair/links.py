"""An impaired link between two nodes: a veth pair, or two with the relay between them.

Theory of operation: :class:`ImpairedLink` serves one link of a topology with its
:class:`~rawstack_harness.topology.impair.LinkImpairment`. Each direction gets a
:class:`~rawstack_harness.backends.linux.impair.plan.Plan` for this kernel. When neither
needs the relay the link is the plain veth pair the backend's batch built, and
:meth:`~ImpairedLink.attach` only puts tc on each end's egress. Otherwise
:meth:`~ImpairedLink.build` makes it ``a:ifname - [a  relay  b] - b:ifname``: a namespace of
its own (IPv6 off, so it never speaks), both veth pairs made from the nodes with their middle
ends placed straight into it, and the relay (``python -m
rawstack_harness.backends.linux.impair.relay``) started inside it. The harness's descriptor
of that namespace is closed once the relay runs, so the relay process is its only holder: it
dies with its owner (pidfd, or end of file on its control pipe), and the namespace with
both veth pairs dies with it. The relay's pid is in the run's manifest too (kind ``proc``),
so the reaper also kills it after a SIGKILL.

Run-time changes: :meth:`ImpairedLink.set` re-plans both directions and re-applies tc on
both ends and, when there is a relay, sends it the new delay line parameters; a link built
without a relay cannot gain one later (the error says to declare ``delay: 0ms`` to have
one). :meth:`ImpairedLink.set_up` takes an end down or up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rawstack_harness.backends.linux import nsutil, rtnl
from rawstack_harness.backends.linux.impair import probe, tc
from rawstack_harness.backends.linux.impair.plan import Features, Plan, plan
from rawstack_harness.errors import HarnessError
from rawstack_harness.topology.impair import LinkImpairment
from rawstack_harness.topology.spec import Endpoint

RELAY_READY_TIMEOUT = 20.0  # seconds: a cold Python start on a loaded 2-core machine
_RELAY_SYSCTLS = (
    ("net/ipv6/conf/default/disable_ipv6", "1"),
    ("net/ipv6/conf/all/disable_ipv6", "1"),
)


@dataclass
class Side:
    """One end: the node's namespace descriptor and the endpoint's spec."""

    nsfd: int
    endpoint: Endpoint


class RelayDied(HarnessError):
    """The relay process exited; the link through it is gone."""


def _relay_ns() -> int:
    def inside() -> int:
        nsutil.unshare_net()
        for key, value in _RELAY_SYSCTLS:
            with open("/proc/sys/" + key, "w", encoding="ascii") as fh:
                fh.write(value)
        return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    return nsutil.in_thread(inside, "relay-netns")


def _in_ns(nsfd: int, batch_fn: Any) -> Any:
    def inside() -> Any:
        sock = rtnl.open_socket()
        try:
            return batch_fn(sock)
        finally:
            sock.close()

    return nsutil.in_netns(nsfd, inside)


def _configure_end(sock: Any, ep: Endpoint, where: str) -> None:
    link = rtnl.get_link(sock, name=ep.ifname)
    if link is None:
        raise HarnessError(f"{where}: {ep.ifname} vanished while it was configured")
    index = int(link["index"])
    batch = rtnl.Batch(where)
    for iface in ep.interfaces():
        batch.addr(index, ep.ifname, iface)
    batch.link_set(index, ep.ifname, up=True, mtu=ep.mtu)
    rtnl.collect([rtnl.send(sock, batch)])


def _veth(sock: Any, ep: Endpoint, peer: str, peer_fd: int, peer_mac: str | None) -> None:
    """A veth ``ep.ifname`` in the socket's namespace, its peer ``peer`` in ``peer_fd``'s."""
    batch = rtnl.Batch(ep.node)
    batch.veth(0, ep.ifname, 0, peer, peer_netns_fd=peer_fd, mac=ep.mac, peer_mac=peer_mac)
    rtnl.collect([rtnl.send(sock, batch)])


class ImpairedLink:
    """One link and its impairment: :meth:`build`; :meth:`set`, :meth:`set_up`; :meth:`close`."""

    def __init__(
        self,
        a: Side,
        b: Side,
        impair: LinkImpairment,
        *,
        owner: int | None = None,
        feats: Features | None = None,
        manifest: Any = None,
        relay: bool | None = None,
        control: str = "",
    ) -> None:
        self.a, self.b = a, b
        self.impair = impair
        self.owner = os.getpid() if owner is None else owner
        self.feats = feats if feats is not None else probe.probe()
        self.manifest = manifest
        self.plans = self._plans(impair)
        self.has_relay = relay if relay is not None else any(p.relay for p in self.plans)
        self.relay: subprocess.Popen[bytes] | None = None
        # The relay's control socket (see relay.py): named so that another process (the
        # CLI, for a kept topology) can change this link's delay line.
        self.control = control

    @property
    def name(self) -> str:
        ea, eb = self.a.endpoint, self.b.endpoint
        return f"{ea.node}:{ea.ifname}-{eb.node}:{eb.ifname}"

    def _plans(self, impair: LinkImpairment) -> tuple[Plan, Plan]:
        return plan(impair.a, self.feats), plan(impair.b, self.feats)

    def describe(self) -> str:
        """Which mechanism serves each direction (for the report header)."""
        ea, eb = self.a.endpoint.node, self.b.endpoint.node
        pa, pb = self.plans
        return (
            f"{self.name}: {ea}->{eb} {self.impair.a.describe()} by {pa.describe()}; "
            f"{eb}->{ea} {self.impair.b.describe()} by {pb.describe()}"
        )

    # -- building ------------------------------------------------------------------------
    def attach(self) -> ImpairedLink:
        """The veth pair exists (the backend built it): put the tc pieces on its ends."""
        if self.has_relay:
            raise HarnessError(f"link {self.name} needs its relay: build() it instead")
        self._apply_tc()
        return self

    def build(self) -> ImpairedLink:
        ea, eb = self.a.endpoint, self.b.endpoint
        if not self.has_relay:
            _in_ns(self.a.nsfd, lambda s: _veth(s, ea, eb.ifname, self.b.nsfd, eb.mac))
        else:
            relay_fd = _relay_ns()
            try:
                for side, mid in ((self.a, "a"), (self.b, "b")):
                    ep = side.endpoint
                    _in_ns(side.nsfd, lambda s, ep=ep, mid=mid: _veth(s, ep, mid, relay_fd, None))
                # The middle ends carry whatever either node may send (a node's own MTU
                # still limits what it sends and what it accepts, as on a direct veth).
                mtu = max(ea.mtu or 1500, eb.mtu or 1500)
                middle = [Endpoint("relay", mid, mtu=mtu) for mid in ("a", "b")]
                for ep in middle:
                    _in_ns(relay_fd, lambda s, ep=ep: _configure_end(s, ep, "relay"))
                self._start_relay(relay_fd)
            finally:
                os.close(relay_fd)  # from now on the relay process alone holds its namespace
        for side in (self.a, self.b):
            ep = side.endpoint
            _in_ns(side.nsfd, lambda s, ep=ep: _configure_end(s, ep, ep.node))
        self._apply_tc()
        return self

    def _relay_config(self) -> dict[str, Any]:
        pa, pb = self.plans
        return {
            "ab": self.impair.a.to_dict(),
            "ba": self.impair.b.to_dict(),
            "loss": pa.relay_loss or pb.relay_loss,
        }

    def _start_relay(self, relay_fd: int) -> None:
        from rawstack_harness.supervise import ReadyFailed, ReadyTimeout, read_ready

        cfg = {
            "a": "a",
            "b": "b",
            "owner": self.owner,
            "control": self.control,
            **self._relay_config(),
        }
        # No death signal: it would fire when the *thread* that forked exits; the relay
        # watches its owner's pidfd instead.
        proc = subprocess.Popen(
            [sys.executable, "-m", "rawstack_harness.backends.linux.impair.relay", json.dumps(cfg)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=nsutil.child_preexec(relay_fd, deathsig=False),  # noqa: PLW1509
            start_new_session=True,
        )
        if self.manifest is not None:
            self.manifest.add(
                "proc", f"pid:{proc.pid}", pid=proc.pid, start=nsutil.proc_start_time(proc.pid)
            )
        self.relay = proc
        try:
            read_ready(proc, 1, RELAY_READY_TIMEOUT)
        except (ReadyFailed, ReadyTimeout) as exc:
            self._stop_relay()
            raise RelayDied(f"relay for {self.name} did not start: {exc}") from None

    def _apply_tc(self) -> None:
        pairs = ((self.a, self.impair.a, self.plans[0]), (self.b, self.impair.b, self.plans[1]))
        for side, imp, how in pairs:
            tc.apply(side.nsfd, side.endpoint.ifname, imp, how)

    # -- run time ------------------------------------------------------------------------
    def set(self, impair: LinkImpairment) -> None:
        """Change (or with ``LinkImpairment()`` clear) both directions' impairment."""
        plans = self._plans(impair)
        if any(p.relay for p in plans) and not self.has_relay:
            raise HarnessError(
                f"link {self.name} was built without a relay: declare a delay on it "
                "(0ms is enough) to change delay, jitter or reorder at run time"
            )
        self.impair, self.plans = impair, plans
        self._apply_tc()
        if self.relay is not None:
            self._relay_send(self._relay_config())
        elif self.has_relay and self.control:  # a relay another process owns (a keeper)
            from rawstack_harness.backends.linux.impair.relay import send_control

            try:
                send_control(self.control, self._relay_config())
            except (OSError, ValueError) as exc:
                raise RelayDied(f"relay for {self.name}: {exc}") from None

    def _relay_send(self, cfg: dict[str, Any]) -> None:
        from rawstack_harness.supervise import ReadyFailed, ReadyTimeout, read_ready

        proc = self.relay
        self.check()
        if proc is None or proc.stdin is None:
            raise RelayDied(f"relay for {self.name} was stopped")
        proc.stdin.write((json.dumps(cfg) + "\n").encode())
        proc.stdin.flush()
        try:
            read_ready(proc, 1, RELAY_READY_TIMEOUT)
        except (ReadyFailed, ReadyTimeout) as exc:
            raise RelayDied(f"relay for {self.name}: {exc}") from None

    def set_up(self, side: str, up: bool) -> None:
        """Take end ``a`` or ``b`` down (``up=False``) or bring it up again."""
        s = {"a": self.a, "b": self.b}[side]
        ep = s.endpoint
        self.check()

        def flip(sock: Any) -> None:
            link = rtnl.get_link(sock, name=ep.ifname)
            if link is None:
                raise HarnessError(f"{ep.node} has no interface {ep.ifname}")
            batch = rtnl.Batch(ep.node)
            batch.link_set(int(link["index"]), ep.ifname, up=up)
            rtnl.collect([rtnl.send(sock, batch)])

        _in_ns(s.nsfd, flip)

    def relay_alive(self) -> bool:
        return self.relay is not None and self.relay.poll() is None

    def check(self) -> None:
        """Raise :class:`RelayDied` (with its exit status and stderr) if the relay exited."""
        proc = self.relay
        if not self.has_relay or proc is None or proc.poll() is None:
            return
        from rawstack_harness.supervise import exit_status

        tail = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
        raise RelayDied(f"relay for {self.name} {exit_status(proc.returncode)}: {tail.strip()}")

    def _stop_relay(self) -> None:
        proc, self.relay = self.relay, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        if self.manifest is not None:
            self.manifest.remove("proc", f"pid:{proc.pid}")

    def close(self) -> None:
        """Stop the relay (its namespace and both veth pairs go with it)."""
        self._stop_relay()


def build_links(links: Sequence[ImpairedLink]) -> list[ImpairedLink]:
    """Build several links; on a failure close the ones already built and re-raise."""
    built: list[ImpairedLink] = []
    try:
        for link in links:
            built.append(link.build())
    except BaseException:
        for link in built:
            link.close()
        raise
    return built


__all__ = ["ImpairedLink", "LinkImpairment", "RelayDied", "Side", "build_links"]
