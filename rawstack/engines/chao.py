"""CHAO request/reply engines: the client session and the server's verdict on a frame.

Theory of operation (sans-IO, docs/chao.md): the caller moves whole Ethernet frames.
:func:`server_verdict` turns one received frame into a :class:`Verdict`: a reply frame to
send (a request: same sequence and payload, addressed to the sender's MAC), something to
ignore (our own frames, replies meant for a client) or a drop with the decode error's
reason. :class:`ChaoClient` numbers requests, remembers when each was sent, and matches
replies by sequence number (plus destination MAC, peer MAC and payload): each request is
answered at most once; duplicates and replies arriving after a request expired are
counted, never reported as answers.

The RTT is the kernel's arrival stamp of the reply (``rx_ns``) minus the wall clock read
right before the request's send (:meth:`ChaoClient.mark_sent`), both CLOCK_REALTIME
nanoseconds, so the caller's wake-up latency is left out; without both stamps (or if the
wall clock stepped back) it is the difference of the caller's monotonic ``now`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rawstack.codec import DecodeError
from rawstack.codec.chao import CHAO_REPLY, CHAO_REQUEST, Chao
from rawstack.codec.ethernet import BROADCAST_MAC, ETH_P_CHAO, Ethernet, is_multicast, mac_to_str

REPLY = "reply"
IGNORE = "ignore"
DROP = "drop"


@dataclass(frozen=True)
class Verdict:
    """What the server does with one frame: ``reply`` (send ``frame``), ``ignore`` or ``drop``."""

    action: str
    reason: str = ""
    frame: bytes | None = None
    seq: int | None = None
    peer: str | None = None  # the sender's MAC, when the frame got that far


def server_verdict(frame: bytes, my_mac: bytes, outgoing: bool = False) -> Verdict:
    """Decide on one received frame for a server whose interface MAC is ``my_mac``."""
    if outgoing:
        return Verdict(IGNORE, "our own outgoing frame")
    try:
        eth = Ethernet.decode(frame)
    except DecodeError as exc:
        return Verdict(DROP, str(exc))
    peer = mac_to_str(eth.src)
    if eth.src == my_mac:
        return Verdict(IGNORE, "our own frame", peer=peer)
    if eth.ethertype != ETH_P_CHAO:
        return Verdict(DROP, f"ethertype {eth.ethertype:#06x} is not CHAO", peer=peer)
    if eth.dst != my_mac and not is_multicast(eth.dst):
        return Verdict(DROP, f"addressed to {mac_to_str(eth.dst)}, not to us", peer=peer)
    if is_multicast(eth.src):
        return Verdict(DROP, f"group source address {peer}", peer=peer)
    try:
        message = Chao.decode(eth.payload)
    except DecodeError as exc:
        return Verdict(DROP, str(exc), peer=peer)
    if message.type != CHAO_REQUEST:
        return Verdict(IGNORE, "a reply (for a client)", seq=message.seq, peer=peer)
    reply = Ethernet(eth.src, my_mac, ETH_P_CHAO, Chao.reply_to(message).encode(), eth.vlan)
    return Verdict(REPLY, frame=reply.encode(), seq=message.seq, peer=peer)


@dataclass(frozen=True)
class ChaoReply:
    """A reply matched to one of our requests."""

    seq: int
    peer: str  # the replier's MAC
    payload: bytes
    rtt: float  # seconds


@dataclass
class _Pending:
    sent_at: float  # monotonic: expiry and the fallback RTT
    payload: bytes
    sent_ns: int | None = None  # CLOCK_REALTIME, right before the send


def _rtt(pending: _Pending, now: float, rx_ns: int | None) -> float:
    if rx_ns is not None and pending.sent_ns is not None and rx_ns >= pending.sent_ns:
        return (rx_ns - pending.sent_ns) / 1e9
    return max(0.0, now - pending.sent_at)


@dataclass
class ChaoClient:
    """Requests from ``my_mac`` to ``to_mac`` (a unicast MAC or broadcast)."""

    my_mac: bytes
    to_mac: bytes = BROADCAST_MAC
    next_seq: int = 1
    sent: int = 0
    received: int = 0
    duplicates: int = 0
    late: int = 0
    _pending: dict[int, _Pending] = field(default_factory=dict)
    _answered: set[int] = field(default_factory=set)
    _expired: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        for name in ("my_mac", "to_mac"):
            if len(getattr(self, name)) != 6:
                raise ValueError(f"{name} must be 6 bytes")
        if not 0 <= self.next_seq <= 0xFFFF:
            raise ValueError(f"sequence must be 0..65535, not {self.next_seq}")

    def request(self, payload: bytes, now: float) -> tuple[int, bytes]:
        """``(seq, frame)`` for a new request sent at monotonic time ``now``."""
        seq = self.next_seq
        self.next_seq = (seq + 1) & 0xFFFF
        # A reused sequence number (after 65536 requests) starts afresh.
        self._answered.discard(seq)
        self._expired.discard(seq)
        message = Chao(CHAO_REQUEST, seq, payload)
        frame = Ethernet(self.to_mac, self.my_mac, ETH_P_CHAO, message.encode()).encode()
        self._pending[seq] = _Pending(now, bytes(payload))
        self.sent += 1
        return seq, frame

    def mark_sent(self, seq: int, wall_ns: int) -> None:
        """Request ``seq`` left at ``wall_ns`` (CLOCK_REALTIME ns, read right before the send)."""
        pending = self._pending.get(seq)
        if pending is not None:
            pending.sent_ns = wall_ns

    def feed(self, frame: bytes, now: float, rx_ns: int | None = None) -> ChaoReply | None:
        """A received frame at monotonic ``now`` (kernel arrival stamp ``rx_ns`` if any);
        the matched reply, or None for anything else."""
        try:
            eth = Ethernet.decode(frame)
            if eth.ethertype != ETH_P_CHAO or eth.dst != self.my_mac:
                return None
            message = Chao.decode(eth.payload)
        except DecodeError:
            return None
        if message.type != CHAO_REPLY:
            return None
        if not is_multicast(self.to_mac) and eth.src != self.to_mac:
            return None
        seq = message.seq
        pending = self._pending.get(seq)
        if pending is None:
            if seq in self._answered:
                self.duplicates += 1
            elif seq in self._expired:
                self.late += 1
            return None
        if message.payload != pending.payload:
            return None
        del self._pending[seq]
        self._answered.add(seq)
        self.received += 1
        return ChaoReply(seq, mac_to_str(eth.src), message.payload, _rtt(pending, now, rx_ns))

    def expire(self, now: float, timeout: float) -> list[int]:
        """Give up on requests older than ``timeout`` seconds; their sequence numbers."""
        gone = [seq for seq, p in self._pending.items() if now - p.sent_at >= timeout]
        for seq in gone:
            del self._pending[seq]
            self._expired.add(seq)
        return gone

    @property
    def outstanding(self) -> list[int]:
        return list(self._pending)

    def next_deadline(self, timeout: float) -> float | None:
        """When the oldest outstanding request expires (monotonic), or None."""
        if not self._pending:
            return None
        return min(p.sent_at for p in self._pending.values()) + timeout
