"""An ICMP echo responder in user space: requests in on a raw ICMP socket, replies out
through IPPROTO_RAW with an IP header we build ourselves.

The kernel normally answers echo requests itself; for this responder to be the only
one, ``net.ipv4.icmp_echo_ignore_all`` must be 1 in its namespace, otherwise every
request gets two replies (iputils reports the second as ``DUP!``). The BSDs never hand
echo requests to raw sockets (QUIRKS.md), so there this responder sees nothing.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from rawstack.codec import DecodeError
from rawstack.codec.icmp import ECHO_REPLY, ECHO_REQUEST, IcmpEcho, decode_icmp
from rawstack.codec.ipv4 import PROTO_ICMP, IPv4, ip_to_bytes
from rawstack.errors import RawstackError
from rawstack.peers.base import log
from rawstack.peers.loop import Loop
from rawstack.peers.ratelimit import LimitedLog
from rawstack.quirks import KernelQuirks, host_quirks
from rawstack.sockets.raw import (
    CAN_BIND_TO_DEVICE,
    RawIpReceiver,
    RawIpSender,
    open_raw_icmp_receiver,
    open_raw_ip_sender,
)

ECHO_IGNORE_ALL = Path("/proc/sys/net/ipv4/icmp_echo_ignore_all")
REPLY_TTL = 64


def kernel_answers_echo(path: Path = ECHO_IGNORE_ALL) -> bool | None:
    """True when this namespace's kernel replies to echo requests itself; None if unknown."""
    try:
        return path.read_text().strip() == "0"
    except OSError:
        return None


def build_reply(request: bytes, ident: int) -> tuple[bytes, str] | None:
    """``(wire reply packet, destination)`` for a wire echo request, or None to ignore it.

    Raises :class:`DecodeError` for a malformed packet (the caller logs the reason).
    """
    ip = IPv4.decode(request, verify=True)
    if ip.proto != PROTO_ICMP or ip.mf or ip.frag_offset:
        return None
    icmp = decode_icmp(ip.payload, verify=True)
    if not isinstance(icmp, IcmpEcho) or icmp.type != ECHO_REQUEST:
        return None
    if not _unicast(ip.dst) or not _unicast(ip.src):
        return None  # a reply from a broadcast/multicast source would be nonsense
    reply = IcmpEcho(ECHO_REPLY, icmp.ident, icmp.seq, icmp.payload)
    packet = IPv4(
        src=ip.dst,
        dst=ip.src,
        proto=PROTO_ICMP,
        payload=reply.encode(),
        ttl=REPLY_TTL,
        tos=ip.tos,
        ident=ident,
    )
    return packet.encode(), ip.src


def _unicast(addr: str) -> bool:
    first = ip_to_bytes(addr)[0]
    return addr not in ("0.0.0.0", "255.255.255.255") and not 224 <= first <= 239


class IcmpResponder:
    """Answers ICMP echo requests (optionally only those arriving on ``iface``)."""

    name = "icmp"

    def __init__(self, iface: str | None = None, quirks: KernelQuirks | None = None) -> None:
        self.iface = iface
        self.quirks = quirks
        self._loop: Loop | None = None
        self._rx: RawIpReceiver | None = None
        self._tx: RawIpSender | None = None
        self._ident = 0
        self.counts: Counter[str] = Counter()
        # Any host on the link can make us complain once per packet: rate-limit it.
        self._drop_log = LimitedLog(self.name)
        self._send_log = LimitedLog(self.name)

    def start(self, loop: Loop) -> dict[str, Any]:
        quirks = self.quirks or host_quirks()
        iface = self.iface
        if iface is not None and not CAN_BIND_TO_DEVICE:
            # serve-all passes its --iface to every peer; where the kernel cannot limit a
            # raw socket to one interface, answer on all rather than refuse to start.
            log(self.name, f"warning: cannot limit to {iface} here; answering on every interface")
            iface = None
        try:
            self._rx = open_raw_icmp_receiver(quirks, {ECHO_REQUEST}, iface)
            self._tx = open_raw_ip_sender(quirks)
        except BaseException:
            self.close()
            raise
        if kernel_answers_echo():
            log(
                self.name,
                "warning: net.ipv4.icmp_echo_ignore_all is 0 in this namespace, so the kernel "
                "answers echo requests too and every reply will be duplicated",
            )
        elif quirks.echo_request_to_raw is False:
            log(self.name, f"warning: {quirks.label} does not pass echo requests to raw sockets")
        self._loop = loop
        loop.add_reader(self._rx, self._on_readable)
        return {"iface": self.iface}

    def _on_readable(self) -> None:
        if self._rx is None or self._tx is None:
            return
        try:
            packets = self._rx.recv_packets()
        except RawstackError as exc:
            log(self.name, f"read failed: {exc}")
            return
        for packet, _src in packets:
            self.counts["received"] += 1
            self._ident = (self._ident + 1) & 0xFFFF
            try:
                built = build_reply(packet, self._ident)
            except DecodeError as exc:
                self.counts["dropped"] += 1
                self._drop_log(f"dropped: {exc}")
                continue
            if built is None:
                self.counts["ignored"] += 1
                continue
            reply, dst = built
            try:
                self._tx.send(reply, dst)
            except RawstackError as exc:
                self.counts["send_errors"] += 1
                self._send_log(f"reply to {dst} not sent: {exc}")
                continue
            self.counts["answered"] += 1

    def close(self) -> None:
        self._drop_log.flush()
        self._send_log.flush()
        if self._loop is not None and self._rx is not None:
            self._loop.remove_reader(self._rx)
        self._loop = None
        for sock in (self._rx, self._tx):
            if sock is not None:
                sock.close()
        self._rx = self._tx = None

    def stats(self) -> dict[str, Any]:
        return dict(self.counts)
