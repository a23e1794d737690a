"""Batched rtnetlink requests: pyroute2's message classes encode, one plain socket sends.

Theory of operation: pyroute2's ``IPRoute`` runs an asyncio loop per call, which cost more
than the kernel work itself. Here a :class:`Batch` collects requests encoded with
pyroute2's ``ifinfmsg``/``ifaddrmsg``/``rtmsg`` (so pyroute2 stays the netlink library)
and :func:`send` writes them to a node's ``NETLINK_ROUTE`` socket in one ``sendmsg``. The
kernel handles a datagram sent to it synchronously, message by message, inside that
``sendmsg``: when it returns, every request has been applied and its ACK queued, so the
batches of several namespaces can be sent back to back and their ACKs read afterwards
(:func:`collect`). Interface indexes are chosen by the caller (``ifi_index`` on creation,
honoured for a veth's peer too), so a batch never needs a lookup round trip. Encoded
requests are cached by their fields (all but the sequence number), as building the same
topology again is the common case and pyroute2's encoder is slower than the kernel.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import itertools
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from typing import Any, Union

from rawstack_harness.errors import HarnessError

IfAddress = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
IFA_F_NODAD = 0x02  # linux/if_addr.h
NLM_F_ACK_TLVS = 0x200  # in an ACK's flags: extended-ack attributes follow
NLMSG_ERROR = 2
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 18, 20, 24
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
MAX_PER_SEND = 64  # keeps the queued ACKs far below the socket's receive buffer
_HDR = struct.Struct("=IHHII")
_seq = itertools.count(1)


class NetlinkError(HarnessError):
    """The kernel refused a request; the message names the request and the reason."""


def open_socket() -> socket.socket:
    """A ``NETLINK_ROUTE`` socket in the calling thread's namespace, errors kept short."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
        # Older kernels lack these; a plain errno in the ACK is still enough.
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_NETLINK, opt, 1)
    sock.bind((0, 0))
    return sock


class Batch:
    """Requests for one namespace, in order; each gets an ACK and a description."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.requests: list[tuple[int, bytes, str]] = []

    def __len__(self) -> int:
        return len(self.requests)

    def _add(self, data: bytes, what: str) -> None:
        seq = next(_seq)
        self.requests.append((seq, _with_seq(data, seq), f"{what} in {self.where}"))

    def link_set(self, index: int, name: str, *, up: bool = True, mtu: int | None = None) -> None:
        self._add(_link_set_msg(index, up, mtu), f"set {name} {'up' if up else 'down'}")

    def veth(
        self,
        index: int,
        name: str,
        peer_index: int,
        peer_name: str,
        *,
        peer_netns_fd: int | None = None,
        mac: str | None = None,
        peer_mac: str | None = None,
        what: str = "",
    ) -> None:
        """A veth pair ``name``<->``peer_name``; the peer goes straight into ``peer_netns_fd``."""
        data = _veth_msg(
            index,
            name,
            peer_index,
            peer_name,
            peer_netns_fd=peer_netns_fd,
            mac=mac,
            peer_mac=peer_mac,
        )
        self._add(data, what or f"add veth {name}")

    def addr(self, index: int, name: str, iface: IfAddress) -> None:
        self._add(_addr_msg(index, iface), f"add {iface} to {name}")

    def route(self, dst: str, via: str) -> None:
        """A static unicast route in the main table; ``dst`` is a CIDR or ``default``."""
        self._add(_route_msg(dst, via), f"add route {dst} via {via}")


# The builders below are pure functions of their arguments: a topology built again (every
# test, every benchmark round) reuses the bytes, since pyroute2's encoder costs more than
# the kernel work. They return sequence number 0; Batch._add patches in the real one.
_CACHE = 1024


def _with_seq(data: bytes, seq: int) -> bytes:
    return data[:8] + struct.pack("=I", seq) + data[12:]


def _encode(msg: Any, mtype: int, flags: int) -> bytes:
    msg["header"]["type"] = mtype
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | flags
    msg.encode()
    return bytes(msg.data)


@functools.lru_cache(maxsize=_CACHE)
def _link_set_msg(index: int, up: bool, mtu: int | None) -> bytes:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    msg = ifinfmsg()
    msg["index"] = index
    msg["flags"] = IFF_UP if up else 0
    msg["change"] = IFF_UP
    msg["attrs"] = [("IFLA_MTU", mtu)] if mtu else []
    return _encode(msg, RTM_NEWLINK, 0)


@functools.lru_cache(maxsize=_CACHE)
def _veth_msg(
    index: int,
    name: str,
    peer_index: int,
    peer_name: str,
    *,
    peer_netns_fd: int | None,
    mac: str | None,
    peer_mac: str | None,
) -> bytes:
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    peer_attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", peer_name)]
    if peer_netns_fd is not None:
        peer_attrs.append(("IFLA_NET_NS_FD", peer_netns_fd))
    if peer_mac:
        peer_attrs.append(("IFLA_ADDRESS", peer_mac))
    attrs: list[tuple[str, Any]] = [("IFLA_IFNAME", name)]
    if mac:
        attrs.append(("IFLA_ADDRESS", mac))
    info = {"attrs": [("VETH_INFO_PEER", {"index": peer_index, "attrs": peer_attrs})]}
    attrs.append(
        ("IFLA_LINKINFO", {"attrs": [("IFLA_INFO_KIND", "veth"), ("IFLA_INFO_DATA", info)]})
    )
    msg = ifinfmsg()
    msg["index"] = index
    msg["attrs"] = attrs
    return _encode(msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)


@functools.lru_cache(maxsize=_CACHE)
def _addr_msg(index: int, iface: IfAddress) -> bytes:
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    ip = str(iface.ip)
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if iface.version == 4 else socket.AF_INET6
    msg["prefixlen"] = iface.network.prefixlen
    msg["index"] = index
    if iface.version == 6:
        # As `ip addr add ... nodad`. accept_dad=0 alone still leaves a new address
        # tentative until the kernel's DAD work runs, after a random delay of up to
        # rtr_solicit_delay (1 s); a neighbour solicitation for a packet from a tentative
        # source is not sent, so the first packet then waits a 1 s retransmission.
        msg["flags"] = IFA_F_NODAD
    attrs: list[tuple[str, Any]] = [("IFA_LOCAL", ip), ("IFA_ADDRESS", ip)]
    if iface.version == 4 and iface.network.prefixlen < 31:
        # As `ip addr add ... brd +`: subnet broadcasts reach the node.
        attrs.append(("IFA_BROADCAST", str(iface.network.broadcast_address)))
    msg["attrs"] = attrs
    return _encode(msg, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)


@functools.lru_cache(maxsize=_CACHE)
def _route_msg(dst: str, via: str) -> bytes:
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    gw = ipaddress.ip_address(via)
    net = ipaddress.ip_network(
        ("0.0.0.0/0" if gw.version == 4 else "::/0") if dst == "default" else dst
    )
    msg = rtmsg()
    msg["family"] = socket.AF_INET if gw.version == 4 else socket.AF_INET6
    msg["dst_len"] = net.prefixlen
    msg["table"] = RT_TABLE_MAIN
    msg["proto"] = RTPROT_BOOT
    msg["scope"] = RT_SCOPE_UNIVERSE
    msg["type"] = RTN_UNICAST
    attrs: list[tuple[str, Any]] = [("RTA_GATEWAY", via)]
    if net.prefixlen:
        attrs.insert(0, ("RTA_DST", str(net.network_address)))
    msg["attrs"] = attrs
    return _encode(msg, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)


class Pending:
    """Requests written to one socket whose ACKs are still to be read."""

    def __init__(self, sock: socket.socket, requests: Sequence[tuple[int, bytes, str]]) -> None:
        self.sock = sock
        self.what = {seq: what for seq, _, what in requests}


def send(sock: socket.socket, batch: Batch) -> Pending:
    """Write the batch (in as few datagrams as possible); the kernel applies it meanwhile."""
    reqs = batch.requests
    for start in range(0, len(reqs), MAX_PER_SEND):
        chunk = reqs[start : start + MAX_PER_SEND]
        sock.send(b"".join(data for _, data, _ in chunk))
    return Pending(sock, reqs)


def collect(pending: Sequence[Pending], timeout: float = 5.0) -> None:
    """Read every ACK; raise :class:`NetlinkError` for the first refused request, in order."""
    failures: dict[int, str] = {}
    order: list[int] = []
    for p in pending:
        order.extend(p.what)
        p.sock.settimeout(timeout)
        waiting = set(p.what)
        while waiting:
            try:
                data = p.sock.recv(65536)
            except socket.timeout:
                raise NetlinkError(f"netlink: no answer to {p.what[min(waiting)]}") from None
            for seq, err, text in _acks(data):
                if seq in waiting:
                    waiting.discard(seq)
                    if err:
                        detail = f" ({text})" if text else ""
                        failures[seq] = f"{p.what[seq]}: {os.strerror(err)}{detail}"
    for seq in order:
        if seq in failures:
            raise NetlinkError(f"netlink: {failures[seq]}")


def _acks(data: bytes) -> list[tuple[int, int, str]]:
    """(sequence number, errno, extended-ack text) of every ACK in one datagram."""
    out = []
    off = 0
    while off + _HDR.size <= len(data):
        length, mtype, flags, seq, _ = _HDR.unpack_from(data, off)
        if length < _HDR.size:
            break
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, off + 16)
            out.append((seq, -err, _ext_ack_text(data[off : off + length], flags)))
        off += (length + 3) & ~3
    return out


def _ext_ack_text(msg: bytes, flags: int) -> str:
    if not flags & NLM_F_ACK_TLVS:
        return ""
    (orig_len,) = struct.unpack_from("=I", msg, 20)
    # With NETLINK_CAP_ACK the request is not echoed, except when the kernel ignored that.
    off = 20 + (16 if flags & 0x100 else (orig_len + 3) & ~3)
    while off + 4 <= len(msg):
        alen, atype = struct.unpack_from("=HH", msg, off)
        if alen < 4:
            break
        if atype == NLMSGERR_ATTR_MSG:
            return msg[off + 4 : off + alen].rstrip(b"\0").decode(errors="replace")
        off += (alen + 3) & ~3
    return ""


IF_OPER_UP = 6  # linux/if.h, RFC 2863
IFLA_IFNAME, IFLA_OPERSTATE = 3, 16
NLM_F_DUMP, NLMSG_DONE = 0x300, 3
_IFINFO = struct.Struct("=BxHiII")


def links_up(sock: socket.socket) -> set[str]:
    """Names of the interfaces in the socket's namespace whose operational state is UP.

    One ``RTM_GETLINK`` dump, parsed here (two attributes: pyroute2's decoder would cost
    more than the dump) so that :func:`~.nodes` can poll it while a topology comes up.
    """
    seq = next(_seq)
    sock.settimeout(5.0)
    sock.send(_HDR.pack(_HDR.size + _IFINFO.size, RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
              + _IFINFO.pack(0, 0, 0, 0, 0))  # fmt: skip
    up: set[str] = set()
    while True:
        data = sock.recv(65536)
        off = 0
        while off + _HDR.size <= len(data):
            length, mtype, _, rseq, _ = _HDR.unpack_from(data, off)
            if length < _HDR.size:
                return up
            if rseq == seq:
                if mtype == NLMSG_DONE:
                    return up
                if mtype == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    raise NetlinkError(f"netlink: dump links: {os.strerror(-err)}")
                if mtype == RTM_NEWLINK:
                    name, oper = _link_name_and_state(data, off, length)
                    if oper == IF_OPER_UP:
                        up.add(name)
            off += (length + 3) & ~3


IFLA_ADDRESS = 1


def link_index_and_mac(sock: socket.socket, name: str) -> tuple[int, str] | None:
    """``(index, MAC)`` of the interface ``name`` in the socket's namespace, or None.

    Parsed here: the probes ask for a MAC on every fresh node, and pyroute2's decoder of
    the whole reply cost ~1 ms of CPU each time.
    """
    data = _get_link(sock, 0, name)
    if data is None:
        return None
    _, _, index, _, _ = _IFINFO.unpack_from(data, _HDR.size)
    mac = ""
    for atype, value in _attrs(data, _HDR.size + _IFINFO.size, len(data)):
        if atype == IFLA_ADDRESS:
            mac = value.hex(":")
    return index, mac


def _get_link(sock: socket.socket, index: int, name: str | None) -> bytes | None:
    """The kernel's ``RTM_NEWLINK`` answer for one interface, by index or name; None if
    there is no such interface."""
    seq = next(_seq)
    attr = b""
    if name:
        raw = name.encode() + b"\0"
        attr = struct.pack("=HH", 4 + len(raw), IFLA_IFNAME) + raw
        attr += b"\0" * (-len(attr) % 4)
    length = _HDR.size + _IFINFO.size + len(attr)
    sock.settimeout(5.0)
    sock.send(_HDR.pack(length, RTM_GETLINK, NLM_F_REQUEST, seq, 0)
              + _IFINFO.pack(0, 0, index, 0, 0) + attr)  # fmt: skip
    while True:
        data = sock.recv(65536)
        length, mtype, _, rseq, _ = _HDR.unpack_from(data, 0)
        if rseq != seq:
            continue
        if mtype == NLMSG_ERROR:
            (err,) = struct.unpack_from("=i", data, 16)
            if -err == errno.ENODEV:
                return None
            raise NetlinkError(f"netlink: get link {name or index}: {os.strerror(-err)}")
        return data[:length]


def _attrs(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    """``(type, payload)`` of each route attribute in ``data[start:end]``."""
    at = start
    while at + 4 <= end:
        alen, atype = struct.unpack_from("=HH", data, at)
        if alen < 4:
            return
        yield atype, data[at + 4 : at + alen]
        at += (alen + 3) & ~3


def _link_name_and_state(data: bytes, off: int, length: int) -> tuple[str, int]:
    name, oper = "", -1
    for atype, value in _attrs(data, off + _HDR.size + _IFINFO.size, off + length):
        if atype == IFLA_IFNAME:
            name = value.rstrip(b"\0").decode(errors="replace")
        elif atype == IFLA_OPERSTATE:
            oper = value[0]
    return name, oper


def get_link(sock: socket.socket, *, index: int = 0, name: str | None = None) -> Any:
    """The kernel's ``ifinfmsg`` for one interface (decoded by pyroute2), or None."""
    from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

    data = _get_link(sock, index, name)
    if data is None:
        return None
    reply = ifinfmsg(data)
    reply.decode()
    return reply
