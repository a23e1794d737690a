"""Which kernel mechanism gives each impairment: netem, or tbf/htb + tc BPF + the relay.

Theory of operation: :func:`plan` maps one direction's
:class:`~rawstack_harness.topology.impair.Impairment` onto what the running kernel has
(:class:`Features`, found by :mod:`~rawstack_harness.backends.linux.impair.probe`):
``sch_netem`` does everything when present; otherwise ``rate`` is a ``tbf`` (or ``htb``)
qdisc, ``loss``/``duplicate`` a tc BPF program (:mod:`.ebpf`) and ``delay``/``jitter``/
``reorder`` the packet relay (:mod:`.relay`) in a hidden namespace between the two ends, which
also takes loss and duplication when there is no clsact BPF. When no path exists
:class:`MissingFeature` names what is missing. Pure: unit-tested without root.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from rawstack_harness.errors import MissingFeature
from rawstack_harness.topology.impair import Impairment


@dataclass(frozen=True)
class Features:
    """What the running kernel offers for impairment (see ``features.probe``)."""

    netem: bool = False
    tbf: bool = False
    htb: bool = False
    clsact_bpf: bool = False
    packet: bool = False

    def describe(self) -> str:
        have = [f.name for f in fields(self) if getattr(self, f.name)]
        return ", ".join(have) or "nothing"


@dataclass(frozen=True)
class Plan:
    """How one direction is served: at most one of each mechanism."""

    netem: bool = False
    rate: str = ""  # "tbf" | "htb" | ""
    bpf: bool = False  # loss/duplicate on clsact egress
    relay: bool = False  # delay/jitter/reorder (and loss/duplicate without bpf)
    relay_loss: bool = False

    def describe(self) -> str:
        if self.netem:
            return "netem"
        parts = []
        if self.rate:
            parts.append(f"{self.rate} rate")
        if self.bpf:
            parts.append("tc-bpf loss/duplicate")
        if self.relay:
            parts.append("relay " + ("delay+loss" if self.relay_loss else "delay"))
        return " + ".join(parts) or "none"


def plan(imp: Impairment, feats: Features) -> Plan:
    """The mechanisms that give ``imp`` on this kernel, or :class:`MissingFeature`."""
    if not imp:
        return Plan()
    if feats.netem:
        return Plan(netem=True)
    rate = ""
    if imp.rate_bps:
        rate = "tbf" if feats.tbf else "htb" if feats.htb else ""
        if not rate:
            raise MissingFeature("rate needs sch_netem, sch_tbf or sch_htb in the kernel")
    lossy = bool(imp.loss or imp.duplicate)
    bpf = lossy and feats.clsact_bpf
    relay = imp.needs_delay_line or (lossy and not bpf)
    if relay and not feats.packet:
        what = "delay/jitter/reorder" if imp.needs_delay_line else "loss/duplicate"
        extra = "" if imp.needs_delay_line else " or clsact with BPF"
        raise MissingFeature(f"{what} needs sch_netem{extra} or AF_PACKET in the kernel")
    return Plan(rate=rate, bpf=bpf, relay=relay, relay_loss=relay and lossy and not bpf)


def describe_features(feats: Features) -> str:
    """The report header's line: which mechanism serves each impairment on this kernel."""
    if feats.netem:
        return "link impairment by netem (this kernel has sch_netem)"
    rate = "tbf" if feats.tbf else "htb" if feats.htb else "nothing (no tbf/htb)"
    loss = "tc BPF" if feats.clsact_bpf else "the relay" if feats.packet else "nothing"
    delay = "the relay (AF_PACKET)" if feats.packet else "nothing (no AF_PACKET)"
    return (
        f"link impairment without netem: rate by {rate}, loss/duplicate by {loss}, "
        f"delay/jitter/reorder by {delay}"
    )
