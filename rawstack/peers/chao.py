"""The CHAO server and client over a link-layer socket (AF_PACKET or /dev/bpf).

Both drive :mod:`rawstack.engines.chao` through :func:`rawstack.sockets.link.open_link`,
so they run unchanged wherever a :class:`LinkSocket` exists. The client times replies with
the kernel's arrival stamps when the link socket offers ``recv_frames_timed()`` (AF_PACKET
does) and with the loop's clock otherwise.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from rawstack.codec.chao import max_payload
from rawstack.codec.ethernet import BROADCAST_MAC, ETH_P_CHAO, mac_to_bytes, mac_to_str
from rawstack.engines.chao import DROP, REPLY, ChaoClient, ChaoReply, server_verdict
from rawstack.errors import RawstackError, UsageError
from rawstack.peers.base import log
from rawstack.peers.loop import Loop, Reactor, Timer
from rawstack.peers.ratelimit import LimitedLog
from rawstack.sockets.link import LinkSocket, open_link

DEFAULT_MESSAGE = "Hello, custom chao protocol!"  # the message of the Go program CHAO grew from


class ChaoServer:
    """Answers every CHAO request on ``iface`` with a reply to the sender's MAC."""

    name = "chao"

    def __init__(self, iface: str) -> None:
        self.iface = iface
        self._link: LinkSocket | None = None
        self._loop: Reactor | None = None
        self.counts: Counter[str] = Counter()
        # Anything on the link can make us complain once per frame: rate-limit it.
        self._drop_log = LimitedLog(self.name)
        self._send_log = LimitedLog(self.name)

    def start(self, loop: Reactor) -> dict[str, Any]:
        link = open_link(self.iface, ETH_P_CHAO)
        self._link, self._loop = link, loop
        loop.add_reader(link, self._on_readable)
        return {"iface": self.iface, "mac": mac_to_str(link.mac)}

    def _on_readable(self) -> None:
        link = self._link
        if link is None:
            return
        try:
            frames = link.recv_frames()
        except RawstackError as exc:
            log(self.name, f"read failed: {exc}")
            return
        for frame in frames:
            self.counts["received"] += 1
            verdict = server_verdict(frame, link.mac)
            if verdict.action == REPLY and verdict.frame is not None:
                try:
                    link.send(verdict.frame)
                except RawstackError as exc:
                    self.counts["send_errors"] += 1
                    self._send_log(f"reply seq={verdict.seq} to {verdict.peer} not sent: {exc}")
                    continue
                self.counts["answered"] += 1
            elif verdict.action == DROP:
                self.counts["dropped"] += 1
                peer = f" from {verdict.peer}" if verdict.peer else ""
                self._drop_log(f"dropped {len(frame)}-byte frame{peer}: {verdict.reason}")
            else:
                self.counts["ignored"] += 1

    def close(self) -> None:
        self._drop_log.flush()
        self._send_log.flush()
        if self._link is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._link)
            self._link.close()
        self._link = self._loop = None

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)


@dataclass
class ChaoResult:
    """The outcome of :func:`chao_exchange`."""

    iface: str
    to: str
    sent: int = 0
    replies: list[ChaoReply] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    duplicates: int = 0
    late: int = 0

    @property
    def received(self) -> int:
        return len(self.replies)

    @property
    def ok(self) -> bool:
        """At least one reply, as ping counts success."""
        return bool(self.replies)

    @property
    def rtts(self) -> list[float]:
        return [r.rtt for r in self.replies]

    def as_dict(self) -> dict[str, Any]:
        return {
            "iface": self.iface,
            "to": self.to,
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "late": self.late,
            "replies": [
                {"seq": r.seq, "from": r.peer, "bytes": len(r.payload), "rtt_ms": r.rtt * 1000}
                for r in self.replies
            ],
        }


def parse_destination(to: str) -> bytes:
    """``broadcast`` or a MAC address; anything else is a :class:`UsageError`."""
    if to.lower() in ("broadcast", "ff:ff:ff:ff:ff:ff"):
        return BROADCAST_MAC
    try:
        return mac_to_bytes(to)
    except ValueError as exc:
        raise UsageError(
            f"bad MAC address {to!r}: expected aa:bb:cc:dd:ee:ff or broadcast"
        ) from exc


def chao_exchange(
    iface: str,
    to: str = "broadcast",
    message: bytes | str = DEFAULT_MESSAGE,
    count: int = 1,
    timeout: float = 2.0,
    *,
    interval: float = 1.0,
    on_reply: Callable[[ChaoReply], None] | None = None,
    first_seq: int = 1,
) -> ChaoResult:
    """Send ``count`` requests ``interval`` s apart and wait up to ``timeout`` s for each.

    The result says what came back; ``result.ok`` is False when no reply arrived.
    """
    payload = message.encode() if isinstance(message, str) else bytes(message)
    dst = parse_destination(to)
    if count < 1:
        raise UsageError(f"count must be at least 1, not {count}")
    if not (math.isfinite(timeout) and math.isfinite(interval)) or timeout <= 0 or interval < 0:
        raise UsageError("timeout must be > 0 and interval >= 0 seconds")
    link = open_link(iface, ETH_P_CHAO)
    loop = Loop()
    try:
        if len(payload) > max_payload(link.mtu):
            raise UsageError(
                f"message of {len(payload)} bytes does not fit {iface}'s MTU {link.mtu} "
                f"(at most {max_payload(link.mtu)})"
            )
        client = ChaoClient(link.mac, dst, next_seq=first_seq)
        result = ChaoResult(iface, mac_to_str(dst))
        _ClientRun(
            loop=loop,
            link=link,
            client=client,
            result=result,
            payload=payload,
            count=count,
            timeout=timeout,
            interval=interval,
            on_reply=on_reply,
        ).run()
    finally:
        loop.close()
        link.close()
    return result


TimedFrames = Callable[[], "list[tuple[bytes, int | None]]"]


def timed_reader(link: LinkSocket) -> TimedFrames:
    """The link's kernel-stamped read if it has one, else its frames with no stamps.

    An optional extra over :class:`LinkSocket`, so link sockets without it keep working.
    """
    timed = getattr(link, "recv_frames_timed", None)
    if callable(timed):
        return cast(TimedFrames, timed)
    return lambda: [(frame, None) for frame in link.recv_frames()]


class _ClientRun:
    """Drives one exchange: sends on a timer, reads replies, expires old requests."""

    def __init__(
        self,
        *,
        loop: Loop,
        link: LinkSocket,
        client: ChaoClient,
        result: ChaoResult,
        payload: bytes,
        count: int,
        timeout: float,
        interval: float,
        on_reply: Callable[[ChaoReply], None] | None,
    ) -> None:
        self.loop, self.link, self.client, self.result = loop, link, client, result
        self.payload, self.count, self.timeout, self.interval = payload, count, timeout, interval
        self.on_reply = on_reply
        self.expiry: Timer | None = None
        self.read = timed_reader(link)

    def run(self) -> None:
        self.loop.add_reader(self.link, self._on_readable)
        self._send()
        self.loop.run()
        self.loop.remove_reader(self.link)
        self.result.lost.extend(self.client.outstanding)
        self.result.duplicates = self.client.duplicates
        self.result.late = self.client.late

    def _send(self) -> None:
        seq, frame = self.client.request(self.payload, self.loop.time())
        sent_ns = time.time_ns()
        self.link.send(frame)
        self.client.mark_sent(seq, sent_ns)
        self.result.sent += 1
        if self.result.sent < self.count:
            self.loop.call_later(self.interval, self._send)
        self._arm()

    def _on_readable(self) -> None:
        now = self.loop.time()
        for frame, rx_ns in self.read():
            reply = self.client.feed(frame, now, rx_ns)
            if reply is not None:
                self.result.replies.append(reply)
                if self.on_reply is not None:
                    self.on_reply(reply)
        self._maybe_done()

    def _expire(self) -> None:
        self.result.lost.extend(self.client.expire(self.loop.time(), self.timeout))
        self._arm()
        self._maybe_done()

    def _arm(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
        deadline = self.client.next_deadline(self.timeout)
        self.expiry = None
        if deadline is not None:
            self.expiry = self.loop.call_later(deadline - self.loop.time(), self._expire)

    def _maybe_done(self) -> None:
        if self.result.sent >= self.count and not self.client.outstanding:
            self.loop.stop()
