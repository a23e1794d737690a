"""The batched netlink requests: what goes on the wire, and how ACKs become errors (no root).

Linux only: pyproject installs pyroute2 only where ``sys_platform == 'linux'``, so on FreeBSD
and macOS this module skips before importing it (``ci/shaped.py`` holds that). On Linux a
missing pyroute2 is a broken install and fails collection, as it should.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import sys
from collections.abc import Iterator
from typing import Any

import pytest

if not sys.platform.startswith("linux"):
    pytest.skip(
        "netlink is the Linux backend's; pyroute2 is installed on Linux only",
        allow_module_level=True,
    )

from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
from pyroute2.netlink.rtnl.rtmsg import rtmsg
from rawstack_harness.backends.linux import rtnl

HDR = struct.Struct("=IHHII")


def _decode(cls: Any, data: bytes) -> Any:
    msg = cls(data)
    msg.decode()
    return msg


def _split(data: bytes) -> list[bytes]:
    out, off = [], 0
    while off < len(data):
        (length,) = struct.unpack_from("=I", data, off)
        out.append(data[off : off + length])
        off += (length + 3) & ~3
    return out


def test_veth_request_places_the_peer_and_both_indexes() -> None:
    batch = rtnl.Batch("node a")
    batch.veth(2, "eth0", 5, "eth1", peer_netns_fd=7, mac="02:00:00:00:00:01", peer_mac=None)
    (seq, data, what) = batch.requests[0]
    length, mtype, flags, hseq, _ = HDR.unpack_from(data)
    assert (length, mtype, hseq) == (len(data), rtnl.RTM_NEWLINK, seq)
    assert flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    msg = _decode(ifinfmsg, data)
    assert msg["index"] == 2
    assert msg.get_attr("IFLA_IFNAME") == "eth0"
    assert msg.get_attr("IFLA_ADDRESS") == "02:00:00:00:00:01"
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer["index"] == 5
    assert peer.get_attr("IFLA_IFNAME") == "eth1"
    assert peer.get_attr("IFLA_NET_NS_FD") == 7
    assert what == "add veth eth0 in node a"


def test_addresses_get_local_and_v4_broadcast() -> None:
    batch = rtnl.Batch("node b")
    batch.addr(3, "eth0", ipaddress.ip_interface("10.0.0.2/24"))
    batch.addr(3, "eth0", ipaddress.ip_interface("fd00::2/64"))
    batch.addr(3, "eth0", ipaddress.ip_interface("10.9.9.1/31"))
    v4, v6, p2p = (_decode(ifaddrmsg, d) for _, d, _ in batch.requests)
    assert (v4["family"], v4["prefixlen"], v4["index"]) == (socket.AF_INET, 24, 3)
    assert v4.get_attr("IFA_LOCAL") == "10.0.0.2"
    assert v4.get_attr("IFA_BROADCAST") == "10.0.0.255"
    assert (v6["family"], v6["prefixlen"]) == (socket.AF_INET6, 64)
    assert v6.get_attr("IFA_ADDRESS") == "fd00::2"
    assert v6.get_attr("IFA_BROADCAST") is None
    assert p2p.get_attr("IFA_BROADCAST") is None


@pytest.mark.parametrize(
    ("dst", "via", "family", "dst_len", "rta_dst"),
    [
        ("default", "10.0.1.1", socket.AF_INET, 0, None),
        ("10.9.0.0/16", "10.0.1.1", socket.AF_INET, 16, "10.9.0.0"),
        ("default", "fd00:1::1", socket.AF_INET6, 0, None),
    ],
)
def test_routes(dst: str, via: str, family: int, dst_len: int, rta_dst: str | None) -> None:
    batch = rtnl.Batch("node a")
    batch.route(dst, via)
    msg = _decode(rtmsg, batch.requests[0][1])
    assert (msg["family"], msg["dst_len"], msg["table"]) == (family, dst_len, 254)
    assert msg.get_attr("RTA_GATEWAY") == via
    assert msg.get_attr("RTA_DST") == rta_dst


def test_link_set_up_with_mtu() -> None:
    batch = rtnl.Batch("node a")
    batch.link_set(1, "lo")
    batch.link_set(4, "eth1", mtu=1400)
    lo, eth = (_decode(ifinfmsg, d) for _, d, _ in batch.requests)
    assert (lo["index"], lo["flags"] & 1, lo["change"]) == (1, 1, 1)
    assert lo.get_attr("IFLA_MTU") is None
    assert eth.get_attr("IFLA_MTU") == 1400
    assert len({seq for seq, _, _ in batch.requests}) == 2


def _ack(seq: int, err: int = 0, text: str = "") -> bytes:
    """An NLMSG_ERROR as a NETLINK_CAP_ACK + NETLINK_EXT_ACK kernel sends it."""
    flags = 0x100  # capped: the request's header only
    tlv = b""
    if text:
        raw = text.encode() + b"\0"
        tlv = struct.pack("=HH", 4 + len(raw), rtnl.NLMSGERR_ATTR_MSG) + raw
        tlv += b"\0" * (-len(tlv) % 4)
        flags |= rtnl.NLM_F_ACK_TLVS
    body = struct.pack("=i", -err) + HDR.pack(32, rtnl.RTM_NEWLINK, 5, seq, 0) + tlv
    return HDR.pack(16 + len(body), rtnl.NLMSG_ERROR, flags, seq, 0) + body


@pytest.fixture
def pipe() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A datagram socketpair standing in for the kernel's netlink socket."""
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    yield ours, kernel
    ours.close()
    kernel.close()


def test_send_writes_one_datagram_per_batch(pipe: tuple[socket.socket, socket.socket]) -> None:
    ours, kernel = pipe
    batch = rtnl.Batch("node a")
    batch.link_set(1, "lo")
    batch.addr(1, "lo", ipaddress.ip_interface("10.1.1.1/32"))
    pending = rtnl.send(ours, batch)
    sent = kernel.recv(65536)
    assert _split(sent) == [data for _, data, _ in batch.requests]
    for seq in pending.what:
        kernel.send(_ack(seq))
    rtnl.collect([pending])  # every ACK was a success: no error


def test_collect_reports_the_first_refused_request_in_batch_order(
    pipe: tuple[socket.socket, socket.socket],
) -> None:
    ours, kernel = pipe
    batch = rtnl.Batch("node b")
    batch.veth(2, "eth0", 2, "eth0")
    batch.addr(2, "eth0", ipaddress.ip_interface("10.0.0.2/24"))
    batch.link_set(2, "eth0")
    pending = rtnl.send(ours, batch)
    kernel.recv(65536)
    first, second, third = pending.what
    # ACKs may be read in any order; the error named is the earliest request that failed.
    kernel.send(_ack(third, errno.ENODEV))
    kernel.send(_ack(second, errno.EEXIST))
    kernel.send(_ack(first, errno.EEXIST, "Interface name already exists"))
    with pytest.raises(rtnl.NetlinkError) as info:
        rtnl.collect([pending])
    assert str(info.value) == (
        "netlink: add veth eth0 in node b: File exists (Interface name already exists)"
    )


def test_collect_times_out_naming_the_request(pipe: tuple[socket.socket, socket.socket]) -> None:
    ours, _kernel = pipe
    batch = rtnl.Batch("node a")
    batch.route("default", "10.0.1.1")
    pending = rtnl.send(ours, batch)
    with pytest.raises(rtnl.NetlinkError, match=r"no answer to add route default via 10\.0\.1\.1"):
        rtnl.collect([pending], timeout=0.05)


def test_repeated_requests_reuse_the_encoding_but_not_the_sequence_number() -> None:
    first, again = rtnl.Batch("node a"), rtnl.Batch("node a")
    for batch in (first, again):
        batch.veth(2, "eth0", 2, "eth0", peer_netns_fd=9, mac="02:00:00:00:00:01")
        batch.link_set(2, "eth0", mtu=1400)
    for (seq1, data1, _), (seq2, data2, _) in zip(first.requests, again.requests):
        assert seq1 != seq2
        assert HDR.unpack_from(data2)[3] == seq2
        assert data1[:8] + data1[12:] == data2[:8] + data2[12:]
    # A cached request is byte for byte what pyroute2 encodes for it now.
    msg = ifinfmsg()
    msg["index"] = 2
    msg["flags"] = msg["change"] = 1
    msg["attrs"] = [("IFLA_MTU", 1400)]
    msg["header"]["type"] = rtnl.RTM_NEWLINK
    msg["header"]["flags"] = rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK
    msg["header"]["sequence_number"] = again.requests[1][0]
    msg.encode()
    assert again.requests[1][1] == bytes(msg.data)


def test_requests_differing_in_one_field_are_encoded_apart() -> None:
    batch = rtnl.Batch("node a")
    batch.veth(2, "eth0", 2, "eth0", peer_netns_fd=9)
    batch.veth(2, "eth0", 2, "eth0", peer_netns_fd=10)
    batch.addr(3, "eth0", ipaddress.ip_interface("10.0.0.2/24"))
    batch.addr(3, "eth0", ipaddress.ip_interface("10.0.0.2/25"))
    v9, v10, a24, a25 = (
        _decode(cls, d)
        for cls, (_, d, _) in zip((ifinfmsg, ifinfmsg, ifaddrmsg, ifaddrmsg), batch.requests)
    )
    for msg, fd in ((v9, 9), (v10, 10)):
        info = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA")
        assert info.get_attr("VETH_INFO_PEER").get_attr("IFLA_NET_NS_FD") == fd
    assert (a24["prefixlen"], a25["prefixlen"]) == (24, 25)
    assert a25.get_attr("IFA_BROADCAST") == "10.0.0.127"


def _newlink(seq: int, index: int, name: str, oper: int) -> bytes:
    """One RTM_NEWLINK of a dump as the kernel writes it: ifinfomsg, IFLA_IFNAME, OPERSTATE."""

    def attr(kind: int, value: bytes) -> bytes:
        raw = struct.pack("=HH", 4 + len(value), kind) + value
        return raw + bytes(-len(raw) % 4)

    body = struct.pack("=BxHiII", 0, 1, index, 0, 0)
    body += attr(rtnl.IFLA_IFNAME, name.encode() + b"\0") + attr(rtnl.IFLA_OPERSTATE, bytes([oper]))
    return HDR.pack(HDR.size + len(body), rtnl.RTM_NEWLINK, 0x2, seq, 0) + body


def test_links_up_reads_a_dump_and_keeps_the_up_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtnl, "_seq", iter([40]))
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, kernel:
        # An unrelated reply first (another request's), then the dump in two datagrams.
        kernel.send(_newlink(39, 9, "stale", rtnl.IF_OPER_UP))
        kernel.send(_newlink(40, 2, "eth0", rtnl.IF_OPER_UP) + _newlink(40, 3, "eth1", 2))
        kernel.send(_newlink(40, 4, "eth2", 0) + HDR.pack(20, rtnl.NLMSG_DONE, 2, 40, 0) + bytes(4))
        assert rtnl.links_up(ours) == {"eth0"}
        request = kernel.recv(100)
    length, mtype, flags, seq, _ = HDR.unpack_from(request)
    assert (length, mtype, seq) == (len(request), rtnl.RTM_GETLINK, 40)
    assert flags & rtnl.NLM_F_DUMP == rtnl.NLM_F_DUMP


def test_links_up_turns_a_refusal_into_one_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtnl, "_seq", iter([7]))
    ours, kernel = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with ours, kernel:
        kernel.send(
            HDR.pack(36, rtnl.NLMSG_ERROR, 0, 7, 0) + struct.pack("=i", -errno.EPERM) + bytes(16)
        )
        with pytest.raises(rtnl.NetlinkError, match="dump links: Operation not permitted"):
            rtnl.links_up(ours)


def test_ipv6_addresses_are_added_without_dad_and_ipv4_ones_as_before() -> None:
    v6 = _decode(ifaddrmsg, rtnl._addr_msg(2, ipaddress.ip_interface("fd00::1/64")))
    v4 = _decode(ifaddrmsg, rtnl._addr_msg(2, ipaddress.ip_interface("10.0.0.1/24")))
    assert v6["flags"] & rtnl.IFA_F_NODAD
    assert not v4["flags"] & rtnl.IFA_F_NODAD
