"""/dev/bpf: whole Ethernet frames of one EtherType on one interface, on FreeBSD and macOS.

Theory of operation: BPF is the BSD counterpart of AF_PACKET. A cloned descriptor is bound to
an interface with BIOCSETIF, told to return each frame as it arrives (BIOCIMMEDIATE), to send
our frames with the source MAC we wrote (BIOCSHDRCMPLT), to hide the frames we send
(BIOCSSEESENT 0, which is BIOCSDIRECTION BPF_D_IN on FreeBSD), and given a kernel filter for
the EtherType (BIOCSETF) so user space never copies unrelated traffic. A read must ask for
exactly the buffer length (BIOCGBLEN) and returns several records; the record format and the
ioctl numbers live in :mod:`rawstack.codec.bpf`. bpf(4).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import os
import platform
import socket
import struct
import sys

from rawstack.codec.bpf import (
    BpfLayout,
    encode_program,
    ethertype_filter,
    layout_for,
    pack_ifreq,
    pack_program,
    parse_sockaddr_dl,
    walk,
)
from rawstack.errors import PrivilegeError, RawstackError, UsageError
from rawstack.sockets import translated

__all__ = ["BpfSocket", "open_bpf"]

DLT_EN10MB = 1
BPF_PRIVILEGE = "read/write access to /dev/bpf"
MAX_CLONE_UNITS = 256  # /dev/bpf0..N on kernels without the cloning /dev/bpf


class BpfSocket:
    """A /dev/bpf descriptor bound to one interface and one EtherType.

    Implements :class:`rawstack.sockets.link.LinkSocket`.
    """

    def __init__(
        self, fd: int, layout: BpfLayout, *, ifname: str, ethertype: int, mac: bytes, mtu: int
    ) -> None:
        self.fd = fd
        self.layout = layout
        self.ifname = ifname
        self.ethertype = ethertype
        self.ifindex = socket.if_nametoindex(ifname)
        self.mac = mac
        self.mtu = mtu
        self.buffer_length = _get_uint(fd, layout.BIOCGBLEN, layout)
        self._closed = False

    def fileno(self) -> int:
        return self.fd

    def send(self, frame: bytes) -> None:
        """Write one complete frame; BIOCSHDRCMPLT keeps the source MAC as written."""
        with translated(f"sending on {self.ifname}", BPF_PRIVILEGE):
            _write(self.fd, frame)

    def recv_frames(self) -> list[bytes]:
        """Frames waiting now; our own are already hidden by BIOCSSEESENT 0."""
        frames: list[bytes] = []
        while True:
            try:
                buf = _read(self.fd, self.buffer_length)
            except (BlockingIOError, InterruptedError):
                return frames
            except OSError as exc:
                if exc.errno == errno.ENETDOWN:
                    return frames
                raise RawstackError(f"receiving on {self.ifname}: {exc.strerror}") from exc
            if not buf:
                return frames
            for _hdr, frame in walk(buf, self.layout):
                # The kernel filter already matched; checked again so a frame can never
                # reach a peer with a length or type it did not ask for.
                if len(frame) >= 14 and int.from_bytes(frame[12:14], "big") == self.ethertype:
                    frames.append(frame)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)


def open_bpf(ifname: str, ethertype: int = 0x88B5, layout: BpfLayout | None = None) -> BpfSocket:
    """Open a non-blocking BPF descriptor for ``ethertype`` frames on ``ifname``.

    Unknown interface -> :class:`UsageError`; no access to /dev/bpf -> ``PrivilegeError``.
    """
    if not 0 < len(ifname) < 16 or "/" in ifname or ifname != ifname.strip():
        raise UsageError(f"bad interface name {ifname!r}")
    if not 0x0600 <= ethertype <= 0xFFFF:
        raise UsageError(f"bad EtherType {ethertype:#x} (must be 0x0600..0xffff)")
    if layout is None:
        try:
            layout = layout_for(sys.platform, platform.machine())
        except ValueError as exc:
            raise UsageError(f"/dev/bpf is not supported here: {exc}") from exc
    try:
        socket.if_nametoindex(ifname)
    except OSError as exc:
        raise UsageError(f"no such interface: {ifname}") from exc
    fd = _open_device()
    try:
        what = f"attaching /dev/bpf to {ifname}"
        with translated(what, BPF_PRIVILEGE):
            _ioctl(fd, layout.BIOCSETIF, pack_ifreq(ifname, layout))
            if _get_uint(fd, layout.BIOCGDLT, layout) != DLT_EN10MB:
                raise UsageError(f"{ifname} is not an Ethernet interface")
            _set_uint(fd, layout.BIOCIMMEDIATE, 1, layout)
            _set_uint(fd, layout.BIOCSHDRCMPLT, 1, layout)
            _set_uint(fd, layout.BIOCSSEESENT, 0, layout)
            _set_filter(fd, ethertype, layout)
            os.set_blocking(fd, False)
            mac = _interface_mac(ifname)
            mtu = _interface_mtu(ifname, layout)
            return BpfSocket(fd, layout, ifname=ifname, ethertype=ethertype, mac=mac, mtu=mtu)
    except BaseException:
        os.close(fd)
        raise


def _set_filter(fd: int, ethertype: int, layout: BpfLayout) -> None:
    insns = ethertype_filter(ethertype)
    code = ctypes.create_string_buffer(encode_program(insns, layout.byteorder))
    # The kernel copies the instructions during the ioctl, so `code` only has to outlive it.
    _ioctl(fd, layout.BIOCSETF, pack_program(len(insns), ctypes.addressof(code), layout))


def _open_device() -> int:
    try:
        return os.open("/dev/bpf", os.O_RDWR)
    except PermissionError as exc:
        raise PrivilegeError("opening /dev/bpf", BPF_PRIVILEGE, hint="run it as root") from exc
    except FileNotFoundError:
        pass  # macOS and old kernels: numbered units, first free one wins
    for unit in range(MAX_CLONE_UNITS):
        try:
            return os.open(f"/dev/bpf{unit}", os.O_RDWR)
        except PermissionError as exc:
            raise PrivilegeError(
                f"opening /dev/bpf{unit}", BPF_PRIVILEGE, hint="run it as root"
            ) from exc
        except FileNotFoundError:
            break
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise RawstackError(f"opening /dev/bpf{unit}: {exc.strerror}") from exc
    raise RawstackError("no free /dev/bpf device (is the bpf device in the kernel?)")


def _interface_mac(ifname: str) -> bytes:
    """The AF_LINK address from getifaddrs(3); Python's socket module has no call for it."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    class IfAddrs(ctypes.Structure):
        pass

    IfAddrs._fields_ = [
        ("ifa_next", ctypes.POINTER(IfAddrs)),
        ("ifa_name", ctypes.c_char_p),
        ("ifa_flags", ctypes.c_uint),
        ("ifa_addr", ctypes.c_void_p),
        ("ifa_netmask", ctypes.c_void_p),
        ("ifa_dstaddr", ctypes.c_void_p),
        ("ifa_data", ctypes.c_void_p),
    ]
    head = ctypes.POINTER(IfAddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        raise RawstackError(f"getifaddrs: {os.strerror(ctypes.get_errno())}")
    try:
        node = head
        while node:
            entry = node.contents
            if entry.ifa_name == ifname.encode() and entry.ifa_addr:
                sa_len = ctypes.string_at(entry.ifa_addr, 1)[0]
                sockaddr = ctypes.string_at(entry.ifa_addr, sa_len)
                if len(sockaddr) > 1 and sockaddr[1] == 18:  # AF_LINK
                    return parse_sockaddr_dl(sockaddr)[2]
            node = entry.ifa_next
    finally:
        libc.freeifaddrs(head)
    raise UsageError(f"{ifname} has no link-layer address")


def _interface_mtu(ifname: str, layout: BpfLayout) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        out = _ioctl(sock.fileno(), layout.SIOCGIFMTU, pack_ifreq(ifname, layout))
    prefix = "<" if layout.byteorder == "little" else ">"
    mtu: int = struct.unpack_from(f"{prefix}i", out, 16)[0]
    return mtu


def _get_uint(fd: int, request: int, layout: BpfLayout) -> int:
    prefix = "<" if layout.byteorder == "little" else ">"
    value: int = struct.unpack(f"{prefix}I", _ioctl(fd, request, bytes(4)))[0]
    return value


def _set_uint(fd: int, request: int, value: int, layout: BpfLayout) -> None:
    prefix = "<" if layout.byteorder == "little" else ">"
    _ioctl(fd, request, struct.pack(f"{prefix}I", value))


# Seams for the unit tests, which run where there is no /dev/bpf.
def _ioctl(fd: int, request: int, arg: bytes) -> bytes:
    return fcntl.ioctl(fd, request, arg)


def _read(fd: int, length: int) -> bytes:
    return os.read(fd, length)


def _write(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    if written != len(data):
        raise RawstackError(f"short write to /dev/bpf: {written} of {len(data)} bytes")
