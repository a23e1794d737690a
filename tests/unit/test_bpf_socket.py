"""rawstack.sockets.bpf against a fake /dev/bpf: the ioctl sequence, reads, writes, errors.

The real device exists only on the BSDs and macOS (tests/bsd/ drives it there); here the
module's I/O seams are replaced by a recorder, while the program pointer handed to BIOCSETF
is real memory in this process and is read back through it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import sys
from collections.abc import Iterator
from typing import Callable

import pytest

from rawstack.codec.bpf import LAYOUTS, encode_program, encode_record, ethertype_filter
from rawstack.errors import PrivilegeError, RawstackError, UsageError
from rawstack.sockets import bpf

LAYOUT = LAYOUTS[("freebsd", "amd64")]
MAC = bytes.fromhex("02000000000a")
BLEN = 4096


def _frame(ethertype: int, payload: bytes = b"CHAO") -> bytes:
    return bytes(6) + MAC + ethertype.to_bytes(2, "big") + payload


class FakeDevice:
    """Answers the ioctls as a FreeBSD kernel would and records each one."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, bytes]] = []
        self.program: bytes = b""
        self.dlt = 1
        self.fail: dict[int, int] = {}  # request -> errno

    def ioctl(self, fd: int, request: int, arg: bytes) -> bytes:
        self.calls.append((request, bytes(arg)))
        if request in self.fail:
            raise OSError(self.fail[request], os.strerror(self.fail[request]))
        if request == LAYOUT.BIOCSETF:
            count, address = struct.unpack("<I4xQ", arg)
            self.program = ctypes.string_at(address, count * 8)
        if request == LAYOUT.BIOCGDLT:
            return struct.pack("<I", self.dlt)
        if request == LAYOUT.BIOCGBLEN:
            return struct.pack("<I", BLEN)
        if request == LAYOUT.SIOCGIFMTU:
            return arg[:16] + struct.pack("<i", 1500) + arg[20:]
        return arg

    def requests(self) -> list[int]:
        return [request for request, _ in self.calls]


@pytest.fixture
def device(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDevice]:
    """A fake device behind a real (pipe) file descriptor, so set_blocking and close work."""
    fake = FakeDevice()
    read_end, write_end = os.pipe()
    # Each open gets its own duplicate, which the code under test must close.
    monkeypatch.setattr(bpf, "_open_device", lambda: os.dup(read_end))
    monkeypatch.setattr(bpf, "_ioctl", fake.ioctl)
    monkeypatch.setattr(bpf, "_interface_mac", lambda ifname: MAC)
    monkeypatch.setattr(socket, "if_nametoindex", lambda ifname: 7)
    yield fake
    os.close(write_end)
    os.close(read_end)


def test_open_configures_the_device_in_order(device: FakeDevice) -> None:
    sock = bpf.open_bpf("epair0a", 0x88B5, layout=LAYOUT)
    assert device.requests() == [
        LAYOUT.BIOCSETIF,
        LAYOUT.BIOCGDLT,
        LAYOUT.BIOCIMMEDIATE,
        LAYOUT.BIOCSHDRCMPLT,
        LAYOUT.BIOCSSEESENT,
        LAYOUT.BIOCSETF,
        LAYOUT.SIOCGIFMTU,
        LAYOUT.BIOCGBLEN,
    ]
    args = dict(device.calls)
    assert args[LAYOUT.BIOCSETIF] == b"epair0a" + bytes(25)
    assert args[LAYOUT.BIOCIMMEDIATE] == struct.pack("<I", 1)
    assert args[LAYOUT.BIOCSHDRCMPLT] == struct.pack("<I", 1)
    assert args[LAYOUT.BIOCSSEESENT] == struct.pack("<I", 0)  # BPF_D_IN: hide our own
    assert device.program == encode_program(ethertype_filter(0x88B5))
    assert (sock.ifname, sock.ifindex, sock.mac, sock.mtu) == ("epair0a", 7, MAC, 1500)
    assert sock.buffer_length == BLEN
    assert not os.get_blocking(sock.fileno())
    sock.close()
    sock.close()  # idempotent


def test_recv_frames_walks_every_record_and_drops_other_types(
    device: FakeDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = bpf.open_bpf("epair0a", layout=LAYOUT)
    wanted = [_frame(0x88B5, b"one"), _frame(0x88B5, b"two" * 100)]
    buffers = [
        encode_record(wanted[0], LAYOUT)
        + encode_record(_frame(0x0800), LAYOUT)
        + encode_record(wanted[1], LAYOUT),
        encode_record(b"\x00" * 10, LAYOUT),  # a runt cannot carry an EtherType
    ]
    lengths: list[int] = []

    def fake_read(fd: int, length: int) -> bytes:
        lengths.append(length)
        if buffers:
            return buffers.pop(0)
        raise BlockingIOError(errno.EAGAIN, "would block")

    monkeypatch.setattr(bpf, "_read", fake_read)
    assert sock.recv_frames() == wanted
    assert lengths == [BLEN, BLEN, BLEN]  # bpf(4): a read must ask for the whole buffer
    assert sock.recv_frames() == []
    sock.close()


def test_recv_frames_interface_gone_raises(
    device: FakeDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    sock = bpf.open_bpf("epair0a", layout=LAYOUT)

    def gone(fd: int, length: int) -> bytes:
        raise OSError(errno.ENXIO, "Device not configured")

    monkeypatch.setattr(bpf, "_read", gone)
    with pytest.raises(RawstackError, match="receiving on epair0a"):
        sock.recv_frames()
    sock.close()


def test_send_writes_the_frame(device: FakeDevice, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = bpf.open_bpf("epair0a", layout=LAYOUT)
    written: list[bytes] = []

    def fake_write(fd: int, data: bytes) -> int:
        written.append(data)
        return len(data)

    monkeypatch.setattr(os, "write", fake_write)
    sock.send(_frame(0x88B5))
    assert written == [_frame(0x88B5)]
    monkeypatch.setattr(os, "write", lambda fd, data: 3)
    with pytest.raises(RawstackError, match="short write"):
        sock.send(_frame(0x88B5))
    sock.close()


def _closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


@pytest.mark.parametrize(
    ("setup", "error", "message"),
    [
        (lambda d: d.fail.update({LAYOUT.BIOCSETIF: errno.ENXIO}), UsageError, "no such interface"),
        (lambda d: setattr(d, "dlt", 0), UsageError, "not an Ethernet interface"),
        (lambda d: d.fail.update({LAYOUT.BIOCSETF: errno.EACCES}), PrivilegeError, "/dev/bpf"),
        (lambda d: d.fail.update({LAYOUT.BIOCSETF: errno.EINVAL}), RawstackError, "Invalid"),
    ],
)
def test_open_failures_close_the_device(
    device: FakeDevice,
    monkeypatch: pytest.MonkeyPatch,
    setup: Callable[[FakeDevice], object],
    error: type[Exception],
    message: str,
) -> None:
    opened: list[int] = []
    real_open = bpf._open_device

    def recording_open() -> int:
        opened.append(real_open())
        return opened[-1]

    monkeypatch.setattr(bpf, "_open_device", recording_open)
    setup(device)
    with pytest.raises(error, match=message):
        bpf.open_bpf("epair0a", layout=LAYOUT)
    assert _closed(opened[0])


@pytest.mark.parametrize(
    ("ifname", "ethertype", "message"),
    [
        ("", 0x88B5, "bad interface name"),
        ("x" * 16, 0x88B5, "bad interface name"),
        ("../bpf", 0x88B5, "bad interface name"),
        ("epair0a", 0x05FF, "bad EtherType"),
        ("epair0a", 0x10000, "bad EtherType"),
    ],
)
def test_bad_arguments(ifname: str, ethertype: int, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        bpf.open_bpf(ifname, ethertype, layout=LAYOUT)


def test_unknown_interface(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(ifname: str) -> int:
        raise OSError(errno.ENXIO, "no such device")

    monkeypatch.setattr(socket, "if_nametoindex", missing)
    with pytest.raises(UsageError, match="no such interface: nope0"):
        bpf.open_bpf("nope0", layout=LAYOUT)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="checks the Linux refusal")
def test_no_bpf_on_linux() -> None:
    with pytest.raises(UsageError, match="/dev/bpf is not supported here"):
        bpf.open_bpf("lo")


def test_open_device_falls_back_to_numbered_units(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []

    def fake_open(path: str, flags: int) -> int:
        tried.append(path)
        if path == "/dev/bpf":
            raise FileNotFoundError(errno.ENOENT, "no clone device")
        if path == "/dev/bpf0":
            raise OSError(errno.EBUSY, "busy")
        return 42

    monkeypatch.setattr(os, "open", fake_open)
    assert bpf._open_device() == 42
    assert tried == ["/dev/bpf", "/dev/bpf0", "/dev/bpf1"]


def test_open_device_permission(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str, flags: int) -> int:
        raise PermissionError(errno.EACCES, "denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(PrivilegeError, match="/dev/bpf"):
        bpf._open_device()
