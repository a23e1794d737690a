"""Pin this kernel's row of the IPv6 quirk table: what its raw IPv6 sockets really do.

Each probe runs in a forked child inside a private network namespace (Linux; the helper
is the IPv4 quirk test's), talks to ::1 there, and reports what it saw; the test compares
that with ``host_ipv6_quirks()``. An AF_PACKET tap on the namespace's loopback shows each
packet exactly as it went out, header included, which no IPv6 raw read can.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import sys
import time
from typing import Any

import pytest
from test_kernel_quirks import run_probe

from rawstack.codec import DecodeError
from rawstack.codec.icmp6 import ECHO_REPLY6, ECHO_REQUEST6, Icmp6Echo, decode_icmp6
from rawstack.codec.ipv6 import PROTO_ICMPV6, IPv6, transport_checksum
from rawstack.quirks import Ipv6Quirks, KernelQuirks, host_ipv6_quirks, host_quirks
from rawstack.sockets.raw6 import (
    IPV6_CHECKSUM,
    Raw6Socket,
    Received6,
    open_ping6_dgram,
    open_raw6,
    open_raw_icmp6,
    open_raw_ip6_sender,
)

LOOPBACK6 = "::1"
TIMEOUT = 3.0
ETH_P_IPV6 = 0x86DD
EXPERIMENTAL = 253  # RFC 3692

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (raw IPv6 sockets: CAP_NET_RAW)"),
    pytest.mark.skipif(
        not sys.platform.startswith("linux"), reason="the probes run in Linux namespaces"
    ),
]


def _sysctl(name: str, value: str) -> None:
    # Per-namespace sysctls: the child's private namespace only.
    with open("/proc/sys/" + name.replace(".", "/"), "w") as f:
        f.write(value)


def _wait(sock: Raw6Socket, want: Any, timeout: float = TIMEOUT) -> list[Received6]:
    """Reads of ``sock`` until one satisfies ``want`` or ``timeout`` passes; what is queued
    by then is read too (a reader the scheduler held past the deadline misses nothing)."""
    seen: list[Received6] = []
    deadline = time.monotonic() + timeout
    while not any(want(r) for r in seen):
        left = max(0.0, deadline - time.monotonic())
        if not select.select([sock], [], [], left)[0]:
            break
        seen.extend(sock.recv())
    return seen


def _tap() -> socket.socket:
    tap = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IPV6))
    tap.bind(("lo", ETH_P_IPV6))
    tap.setblocking(False)
    return tap


def _tapped(tap: socket.socket, match: Any) -> bytes | None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if not select.select([tap], [], [], 0.2)[0]:
            continue
        data, addr = tap.recvfrom(65536)
        if addr[2] != socket.PACKET_OUTGOING and match(data):
            return data
    return None


def _ident(data: bytes) -> int | None:
    try:
        message = decode_icmp6(data)
    except DecodeError:
        return None
    return message.ident if isinstance(message, Icmp6Echo) else None


def probe_hdrincl(_: KernelQuirks) -> dict[str, Any]:
    """A hand-built packet from :: with a flow label, hop limit 7 and a wrong payload
    length: what went out, and what a raw ICMPv6 socket read of a correct one."""
    row = host_ipv6_quirks()
    ident = os.getpid() & 0xFFFF
    echo = Icmp6Echo(ECHO_REQUEST6, ident, 1, b"rawstack-q15").encode(LOOPBACK6, LOOPBACK6)
    good = IPv6(LOOPBACK6, LOOPBACK6, PROTO_ICMPV6, echo, hop_limit=7, traffic_class=0x20)
    odd = IPv6("::", LOOPBACK6, PROTO_ICMPV6, echo, flow_label=0x12345, payload_length=4)
    receiver = open_raw_icmp6(row, {ECHO_REQUEST6, ECHO_REPLY6})
    sender = open_raw_ip6_sender(row)
    tap = _tap()
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW):
            pass  # opening it at all is the claim "IPPROTO_RAW exists for IPv6"
        sender.send(odd.encode(), LOOPBACK6)
        wire_odd = _tapped(tap, lambda d: d[:4] == odd.encode()[:4])
        sender.send(good.encode(), LOOPBACK6)
        reads = _wait(receiver, lambda r: r.data[:1] == bytes([ECHO_REPLY6]))
        return {
            "sent_odd": odd.encode().hex(),
            "wire_odd": None if wire_odd is None else wire_odd.hex(),
            "reads": [(r.data.hex(), r.src, r.dst, r.hop_limit) for r in reads],
            "ident": ident,
        }
    finally:
        tap.close()
        sender.close()
        receiver.close()


@pytest.fixture(scope="module")
def row() -> Ipv6Quirks:
    """This kernel's IPv6 row."""
    return host_ipv6_quirks()


def _v4_row() -> KernelQuirks:
    # run_probe hands its probe the IPv4 row; the IPv6 probes look up their own.
    return host_quirks()


@pytest.fixture(scope="module")
def hdrincl() -> dict[str, Any]:
    """What one hand-built exchange over ::1 showed."""
    return run_probe(probe_hdrincl, _v4_row())


def test_hand_built_header_goes_out_as_written(row: Ipv6Quirks, hdrincl: dict[str, Any]) -> None:
    assert row.hdrincl_option is not None  # the Linux row; the BSDs have no such probe
    # Nothing filled or fixed: source ::, flow label and the wrong payload length stay.
    assert row.hdrincl_kernel_fills == frozenset()
    assert hdrincl["wire_odd"] == hdrincl["sent_odd"]


def test_reads_have_no_header_and_echo_requests_arrive(
    row: Ipv6Quirks, hdrincl: dict[str, Any]
) -> None:
    kinds = {bytes.fromhex(data)[0] for data, *_ in hdrincl["reads"]}
    assert ECHO_REPLY6 in kinds, "no echo reply: the hand-built request never made it"
    assert (ECHO_REQUEST6 in kinds) is row.echo_request_to_raw
    assert not row.read_includes_header
    for data, src, dst, _hops in hdrincl["reads"]:
        message = bytes.fromhex(data)
        assert message[0] != 0x60  # an ICMPv6 type, never an IPv6 version nibble
        assert (src, dst) == (LOOPBACK6, LOOPBACK6)  # the kept header, as IPV6_PKTINFO
    hops = {bytes.fromhex(d)[0]: h for d, _s, _t, h in hdrincl["reads"]}
    if ECHO_REQUEST6 in hops:
        assert hops[ECHO_REQUEST6] == 7  # our hop limit, as IPV6_HOPLIMIT


def probe_kernel_checksum(_: KernelQuirks) -> dict[str, Any]:
    """An echo request written with checksum 0 on a raw ICMPv6 socket, and what arrived."""
    row = host_ipv6_quirks()
    ident = (os.getpid() + 1) & 0xFFFF
    sock = open_raw_icmp6(row, {ECHO_REQUEST6})
    try:
        sock.send(Icmp6Echo(ECHO_REQUEST6, ident, 1, b"x", checksum=0).encode(), LOOPBACK6)
        reads = _wait(sock, lambda r: _ident(r.data) == ident)
        mine = [r.data.hex() for r in reads if _ident(r.data) == ident]
        try:
            sock.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM or 7, 2)
            icmp6_option = "accepted"
        except OSError as exc:
            icmp6_option = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        return {"mine": mine, "icmp6_option": icmp6_option}
    finally:
        sock.close()


def test_kernel_computes_the_icmp6_checksum(row: Ipv6Quirks) -> None:
    outcome = run_probe(probe_kernel_checksum, _v4_row())
    assert outcome["mine"], "the echo request written with checksum 0 was not seen"
    message = bytes.fromhex(outcome["mine"][0])
    assert row.icmp6_checksum_by_kernel
    assert message[2:4] != b"\x00\x00"
    assert decode_icmp6(message, LOOPBACK6, LOOPBACK6).checksum_ok(LOOPBACK6, LOOPBACK6)
    expected = "EINVAL" if row.icmp6_checksum_option == "einval" else "accepted"
    assert outcome["icmp6_option"] == expected


def probe_checksum_option(_: KernelQuirks) -> dict[str, Any]:
    """IPV6_CHECKSUM 2 on an experimental protocol: the kernel sums what we send."""
    row = host_ipv6_quirks()
    sender = open_raw6(row, EXPERIMENTAL, checksum_offset=2)
    receiver = open_raw6(row, EXPERIMENTAL)
    try:
        try:
            sender.sock.setsockopt(socket.IPPROTO_IPV6, IPV6_CHECKSUM or 7, 3)
            odd = "accepted"
        except OSError as exc:
            odd = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        sender.send(b"\xab\xcd\x00\x00rawstack", LOOPBACK6)
        reads = _wait(receiver, lambda r: r.data[:2] == b"\xab\xcd")
        return {"odd": odd, "reads": [r.data.hex() for r in reads]}
    finally:
        sender.close()
        receiver.close()


def test_ipv6_checksum_option_for_other_protocols(row: Ipv6Quirks) -> None:
    outcome = run_probe(probe_checksum_option, _v4_row())
    assert row.checksum_option_for_others
    data = bytes.fromhex(outcome["reads"][0])
    assert transport_checksum(LOOPBACK6, LOOPBACK6, EXPERIMENTAL, data) == 0
    assert data[2:4] != b"\x00\x00"
    assert (outcome["odd"] == "EINVAL") is row.odd_checksum_offset_einval


def probe_filter_and_echo_switch(_: KernelQuirks) -> dict[str, Any]:
    """Replies with the kernel's echo switch on and off; a filter passing replies only."""
    row = host_ipv6_quirks()
    assert row.echo_ignore_sysctl is not None
    seen: dict[str, Any] = {}
    replies_only = open_raw_icmp6(row, {ECHO_REPLY6})
    sender = open_raw_icmp6(row, {ECHO_REPLY6})
    try:
        for setting in ("1", "0"):
            _sysctl(row.echo_ignore_sysctl, setting)
            ident = (os.getpid() + 7 + int(setting)) & 0xFFFF
            sender.send(Icmp6Echo(ECHO_REQUEST6, ident, 1, checksum=0).encode(), LOOPBACK6)
            # Loopback answers in microseconds: where no reply may come, 0.3 s shows it.
            wait = 0.3 if setting == "1" else 1.0
            reads = _wait(replies_only, lambda r, i=ident: _ident(r.data) == i, wait)
            seen[setting] = sorted({r.data[0] for r in reads if _ident(r.data) == ident})
        return seen
    finally:
        sender.close()
        replies_only.close()


def test_echo_switch_and_type_filter(row: Ipv6Quirks) -> None:
    seen = run_probe(probe_filter_and_echo_switch, _v4_row())
    assert seen["1"] == []  # echo_ignore_all=1: no reply (and the filter hid our request)
    assert seen["0"] == [ECHO_REPLY6]  # the reply passes; our own request never does


def probe_ping_socket(_: KernelQuirks) -> dict[str, Any]:
    """The unprivileged ICMPv6 socket, once the namespace's ping_group_range lets root in."""
    _sysctl("net.ipv4.ping_group_range", "0 0")
    sock = open_ping6_dgram()
    try:
        sock.send(Icmp6Echo(ECHO_REQUEST6, 0, 1, b"dgram", checksum=0).encode(), LOOPBACK6)
        reads = _wait(sock, lambda r: r.data[:1] == bytes([ECHO_REPLY6]))
        return {"ident": sock.ident, "reads": [(r.data.hex(), r.hop_limit) for r in reads]}
    finally:
        sock.close()


def test_unprivileged_ping_socket(row: Ipv6Quirks) -> None:
    assert row.has_ping_socket
    outcome = run_probe(probe_ping_socket, _v4_row())
    data, hop_limit = outcome["reads"][0]
    reply = decode_icmp6(bytes.fromhex(data))
    assert isinstance(reply, Icmp6Echo)
    assert (reply.type, reply.ident, reply.payload) == (ECHO_REPLY6, outcome["ident"], b"dgram")
    assert hop_limit == 64


def probe_ancillary_path(_: KernelQuirks) -> dict[str, Any]:
    """The BSD way on this kernel: the same packet sent through RFC 3542 ancillary data
    (RawIp6Sender with this row, told there is no hand-built header), and what went out."""
    from dataclasses import replace

    from rawstack.quirks._ipv6 import ANCILLARY

    ident = (os.getpid() + 3) & 0xFFFF
    echo = Icmp6Echo(ECHO_REQUEST6, ident, 1, b"ancillary").encode(LOOPBACK6, LOOPBACK6)
    packet = IPv6(LOOPBACK6, LOOPBACK6, PROTO_ICMPV6, echo, hop_limit=7, traffic_class=0x20)
    row = replace(host_ipv6_quirks(), header_write=ANCILLARY, hdrincl_option=None)
    sender = open_raw_ip6_sender(row)
    tap = _tap()
    try:
        sender.send(packet.encode(), LOOPBACK6)
        wire = _tapped(
            tap, lambda d: d[40:41] == bytes([ECHO_REQUEST6]) and _ident(d[40:]) == ident
        )
        return {"sent": packet.encode().hex(), "wire": None if wire is None else wire.hex()}
    finally:
        tap.close()
        sender.close()


def test_ancillary_data_gives_the_same_packet_on_the_wire() -> None:
    outcome = run_probe(probe_ancillary_path, _v4_row())
    assert outcome["wire"] is not None, "nothing went out"
    sent, wire = bytes.fromhex(outcome["sent"]), bytes.fromhex(outcome["wire"])
    # Hop limit, traffic class, addresses, payload and the checksum all as built: the
    # kernel wrote the header from IPV6_HOPLIMIT/IPV6_TCLASS and recomputed the same sum.
    # The flow label is the kernel's own (net.ipv6.auto_flowlabels), which is why a packet
    # with a flow label of ours needs the hand-built header.
    assert IPv6.decode(wire).flow_label != 0 or wire == sent
    assert wire[:1] + bytes([wire[1] & 0xF0]) + wire[4:] == sent[:2] + sent[4:]
