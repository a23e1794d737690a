"""Pin this kernel's row of shared/QUIRKS.md: what its raw IPv4 sockets really do.

Each test asks rawstack.quirks.host_quirks() for the row of the kernel underneath and checks
that the kernel behaves as the row says, over loopback. On Linux every probe runs in a
forked child inside a private network namespace, so no packet touches the root namespace's
loopback; on FreeBSD (the Vagrant box) they run on the box's own loopback.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import json
import os
import select
import socket
import struct
import sys
import time
import traceback
from typing import Any, Callable, Literal

import pytest

from rawstack.codec.checksum import internet_checksum
from rawstack.codec.icmp import ECHO_REPLY, ECHO_REQUEST, IcmpEcho
from rawstack.codec.ipv4 import PROTO_ICMP, IPv4
from rawstack.quirks import KernelQuirks, host_quirks, raw_to_wire, wire_to_raw, write_verdict
from rawstack.sockets.raw import open_raw_icmp_receiver, open_raw_ip_sender

IS_LINUX = sys.platform.startswith("linux")
LOOPBACK = "127.0.0.1"
PAYLOAD = b"rawstack-q12"  # 20 + 8 + 12 = 40 bytes: 0x0028, which reads 0x2800 swapped
TOTAL = 40
TIMEOUT = 3.0
CLONE_NEWNET = 0x40000000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (raw IPv4 sockets: CAP_NET_RAW)"
)

Probe = Callable[[KernelQuirks], dict[str, Any]]


def _linux_private_loopback() -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise PermissionError(ctypes.get_errno(), "unshare(CLONE_NEWNET) needs CAP_SYS_ADMIN")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        ifreq = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(sock.fileno(), SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | IFF_UP))


def run_probe(probe: Probe, quirks: KernelQuirks) -> dict[str, Any]:
    """Run ``probe`` in a private network namespace (Linux) or in-process (elsewhere)."""
    if not IS_LINUX:
        return probe(quirks)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        os.close(read_end)
        try:
            try:
                _linux_private_loopback()
            except PermissionError as exc:
                result: dict[str, Any] = {"skip": f"{exc.strerror}"}
            else:
                result = {"ok": probe(quirks)}
        except BaseException:
            result = {"error": traceback.format_exc()}
        os.write(write_end, json.dumps(result).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    outcome = json.loads(data or b'{"error": "probe child died without a result"}')
    if "skip" in outcome:
        pytest.skip(outcome["skip"])
    if "error" in outcome:
        pytest.fail(f"probe failed in the namespace child:\n{outcome['error']}")
    answer: dict[str, Any] = outcome["ok"]
    return answer


def echo_request(ident: int) -> bytes:
    """Our echo request to ourselves, in wire format."""
    icmp = IcmpEcho(ECHO_REQUEST, ident, 1, PAYLOAD).encode()
    return IPv4(LOOPBACK, LOOPBACK, PROTO_ICMP, icmp, ident=ident).encode()


def swap_len(raw: bytes) -> bytes:
    """``raw`` with ip_len byte-swapped and the header checksum made right again."""
    buf = bytearray(raw)
    buf[2], buf[3] = buf[3], buf[2]
    buf[10:12] = b"\0\0"
    buf[10:12] = internet_checksum(bytes(buf[:20])).to_bytes(2, "big")
    return bytes(buf)


def collect(sock: socket.socket, ident: int) -> dict[str, str]:
    """Raw reads of our echo messages (by ICMP type) until the reply arrives or TIMEOUT."""
    seen: dict[str, str] = {}
    deadline = time.monotonic() + TIMEOUT
    while "reply" not in seen:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        data = sock.recv(65536)
        hlen = (data[0] & 0x0F) * 4
        icmp = data[hlen:]
        if len(icmp) < 8 or int.from_bytes(icmp[4:6], "big") != ident:
            continue
        kind = {ECHO_REQUEST: "request", ECHO_REPLY: "reply"}.get(icmp[0])
        if kind:
            seen.setdefault(kind, data.hex())
    return seen


def probe_echo(quirks: KernelQuirks) -> dict[str, Any]:
    """Send a correct echo request to 127.0.0.1; report what a raw ICMP socket saw."""
    ident = os.getpid() & 0xFFFF
    receiver = open_raw_icmp_receiver(quirks, {ECHO_REPLY, ECHO_REQUEST})
    sender = open_raw_ip_sender(quirks)
    try:
        sender.send(echo_request(ident), LOOPBACK)
        return collect(receiver.sock, ident)
    finally:
        sender.close()
        receiver.close()


def probe_wrong_len(quirks: KernelQuirks) -> dict[str, Any]:
    """Write the request with ip_len in the other byte order; report errno and the wire."""
    ident = (os.getpid() + 1) & 0xFFFF
    receiver = open_raw_icmp_receiver(quirks, {ECHO_REPLY, ECHO_REQUEST})
    sender = open_raw_ip_sender(quirks)
    try:
        bad = swap_len(wire_to_raw(echo_request(ident), quirks))
        try:
            sender.sock.sendto(bad, (LOOPBACK, 0))
        except OSError as exc:
            return {"errno": exc.errno}
        return {"errno": None, **collect(receiver.sock, ident)}
    finally:
        sender.close()
        receiver.close()


def expected_read_len(quirks: KernelQuirks, total: int) -> bytes:
    """The ip_len bytes a raw read returns for a ``total``-byte datagram on this kernel."""
    value = total - 20 if quirks.read_len_excludes_header else total
    host_little = quirks.read_len_host_order and sys.byteorder == "little"
    order: Literal["little", "big"] = "little" if host_little else "big"
    return value.to_bytes(2, order)


@pytest.fixture(scope="module")
def quirks() -> KernelQuirks:
    """This kernel's row."""
    return host_quirks()


@pytest.fixture(scope="module")
def echo(quirks: KernelQuirks) -> dict[str, Any]:
    """What a raw ICMP socket saw of one correct echo exchange over loopback."""
    return run_probe(probe_echo, quirks)


def test_kernel_answers_our_request(echo: dict[str, Any]) -> None:
    assert "reply" in echo, "no echo reply within 3 s: the request never made it out"


def test_own_request_visibility_on_raw_icmp_socket(
    quirks: KernelQuirks, echo: dict[str, Any]
) -> None:
    if quirks.echo_request_to_raw is None:
        pytest.skip(f"{quirks.label}: unconfirmed in QUIRKS.md, nothing to pin")
    # Linux hands raw sockets a copy of every local ICMP packet; the BSDs consume requests.
    assert ("request" in echo) is quirks.echo_request_to_raw


def test_read_ip_len_form(quirks: KernelQuirks, echo: dict[str, Any]) -> None:
    raw = bytes.fromhex(echo["reply"])
    assert len(raw) == TOTAL
    assert raw[2:4] == expected_read_len(quirks, TOTAL)
    wire = raw_to_wire(raw, quirks)
    assert IPv4.decode(wire).total_length == TOTAL


def test_wrong_byte_order_ip_len(quirks: KernelQuirks) -> None:
    # Swapped, 40 reads as 10240: wrong, and longer than the datagram. The row's length
    # check says what the kernel answers; the kernel must agree.
    bad = swap_len(wire_to_raw(echo_request(1), quirks))
    verdict = write_verdict(bad, quirks, sys.byteorder, mtu=65536)  # loopback's MTU
    outcome = run_probe(probe_wrong_len, quirks)
    if verdict is not None:
        assert verdict.errno == "EINVAL"
        assert outcome["errno"] == errno.EINVAL
        return
    assert outcome["errno"] is None  # Linux: raw_send_hdrinc rewrites tot_len silently
    assert "reply" in outcome
    if quirks.echo_request_to_raw:
        # On the wire the request carries the right total length again.
        request = bytes.fromhex(outcome["request"])
        assert request[2:4] == expected_read_len(quirks, TOTAL)


def test_hdrincl_default_on_ipproto_raw(quirks: KernelQuirks) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as sock:
        implied = sock.getsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL) != 0
    assert implied is not quirks.hdrincl_must_be_set


def test_icmp_filter_support(quirks: KernelQuirks) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        try:
            sock.setsockopt(255, 1, struct.pack("I", 0))  # SOL_RAW, ICMP_FILTER
            supported = True
        except OSError:
            supported = False
    assert supported is quirks.has_icmp_filter
