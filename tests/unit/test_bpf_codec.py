"""rawstack.codec.bpf: filter programs, ioctl numbers, bpf_hdr records per OS and arch."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess

import pytest
from _strategies import MAC_A, MAC_B
from hypothesis import given
from hypothesis import strategies as st

from rawstack.codec import DecodeError
from rawstack.codec.bpf import (
    LAYOUTS,
    BpfLayout,
    Insn,
    encode_program,
    encode_record,
    ethertype_filter,
    ioc,
    ior,
    iow,
    iowr,
    layout_for,
    pack_ifreq,
    pack_program,
    parse_bpf_hdr,
    parse_sockaddr_dl,
    run_filter,
    walk,
)

FREEBSD_AMD64 = LAYOUTS[("freebsd", "amd64")]
FREEBSD_I386 = LAYOUTS[("freebsd", "i386")]
DARWIN_ARM64 = LAYOUTS[("darwin", "arm64")]

# `tcpdump -dd ether proto 0x88b5` (tcpdump 4.99, libpcap 1.10), recorded so the vector
# holds where tcpdump is not installed; test_filter_matches_live_tcpdump re-checks it.
TCPDUMP_88B5 = [
    (0x28, 0, 0, 0x0000000C),
    (0x15, 0, 1, 0x000088B5),
    (0x6, 0, 0, 0x00040000),
    (0x6, 0, 0, 0x00000000),
]


def _frame(ethertype: int, payload: bytes = b"CHAO") -> bytes:
    return MAC_B + MAC_A + ethertype.to_bytes(2, "big") + payload


# --- filter program -------------------------------------------------------------------


def test_filter_is_tcpdumps_program() -> None:
    prog = ethertype_filter(0x88B5)
    assert [(i.code, i.jt, i.jf, i.k) for i in prog] == TCPDUMP_88B5


def _tcpdump_dd(expr: str) -> list[tuple[int, int, int, int]]:
    out = subprocess.run(
        ["tcpdump", "-y", "EN10MB", "-dd", expr],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    rows = re.findall(r"\{\s*(0x[0-9a-f]+),\s*(\d+),\s*(\d+),\s*(0x[0-9a-f]+)\s*\}", out)
    return [(int(c, 16), int(t), int(f), int(k, 16)) for c, t, f, k in rows]


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
@pytest.mark.parametrize("ethertype", [0x88B5, 0x0800, 0x86DD, 0xFFFF])
def test_filter_matches_live_tcpdump(ethertype: int) -> None:
    expected = _tcpdump_dd(f"ether proto {ethertype:#06x}")
    assert [(i.code, i.jt, i.jf, i.k) for i in ethertype_filter(ethertype)] == expected


def test_program_bytes_little_and_big_endian() -> None:
    prog = ethertype_filter(0x88B5)
    little = encode_program(prog, "little")
    assert little[:8] == bytes.fromhex("2800 00 00 0c000000".replace(" ", ""))
    assert little[8:16] == bytes.fromhex("1500 00 01 b5880000".replace(" ", ""))
    assert len(little) == 32
    big = encode_program(prog, "big")
    assert big[8:16] == bytes.fromhex("0015 00 01 000088b5".replace(" ", ""))


@pytest.mark.parametrize(
    ("frame", "accepted"),
    [
        (_frame(0x88B5), 18),
        (_frame(0x0800), 0),
        (_frame(0x88B4), 0),
        (_frame(0xB588), 0),  # byte-swapped EtherType must not match
        (_frame(0x88B5)[:13], 0),  # too short to hold the EtherType: load out of bounds
        (_frame(0x88B5)[:14], 14),
    ],
)
def test_filter_semantics(frame: bytes, accepted: int) -> None:
    assert run_filter(ethertype_filter(0x88B5), frame) == accepted


def test_filter_snaplen_caps_accepted_length() -> None:
    assert run_filter(ethertype_filter(0x88B5, snaplen=16), _frame(0x88B5)) == 16


@pytest.mark.parametrize("bad", [-1, 0x10000])
def test_filter_rejects_bad_ethertype(bad: int) -> None:
    with pytest.raises(ValueError, match="EtherType"):
        ethertype_filter(bad)


def test_interpreter_refuses_unknown_instructions() -> None:
    with pytest.raises(ValueError, match="not supported"):
        run_filter([Insn(0x07)], b"")  # BPF_MISC|BPF_TAX


# --- ioctl numbers ----------------------------------------------------------------------


def test_ioc_encoding() -> None:
    assert iow("B", 108, 32) == 0x8020426C
    assert ior("B", 102, 4) == 0x40044266
    assert iowr("B", 102, 4) == 0xC0044266
    assert ioc(0x20000000, "B", 105, 0) == 0x20004269  # _IO('B', 105): BIOCPROMISC
    with pytest.raises(ValueError, match="IOCPARM_MASK"):
        iow("B", 1, 0x2000)


# Values as <net/bpf.h> and <sys/sockio.h> expand them (also what golang.org/x/sys
# zerrors_{freebsd,darwin}_*.go list).
KNOWN = {
    ("freebsd", "amd64"): {
        "BIOCSETIF": 0x8020426C,
        "BIOCIMMEDIATE": 0x80044270,
        "BIOCGBLEN": 0x40044266,
        "BIOCSBLEN": 0xC0044266,
        "BIOCSHDRCMPLT": 0x80044275,
        "BIOCSETF": 0x80104267,
        "BIOCSSEESENT": 0x80044277,
        "BIOCGDLT": 0x4004426A,
        "SIOCGIFMTU": 0xC0206933,
    },
    ("freebsd", "i386"): {"BIOCSETF": 0x80084267, "BIOCSETIF": 0x8020426C},
    ("darwin", "amd64"): {
        "BIOCSETIF": 0x8020426C,
        "BIOCSETF": 0x80104267,
        "BIOCSSEESENT": 0x80044277,
        "BIOCGDLT": 0x4004426A,
        "BIOCSHDRCMPLT": 0x80044275,
        "BIOCIMMEDIATE": 0x80044270,
    },
}


@pytest.mark.parametrize(
    ("key", "name", "value"),
    [(key, name, value) for key, table in KNOWN.items() for name, value in table.items()],
)
def test_ioctl_numbers(key: tuple[str, str], name: str, value: int) -> None:
    assert getattr(LAYOUTS[key], name) == value


# --- struct sizes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layout", "sizeof_bpf_hdr", "bpf_hdr_size", "hdrlen", "program_size"),
    [
        # amd64: timeval 16 -> 16+4+4+2 = 26, padded to 8 -> 32; hdrlen WORDALIGN(26+14)-14
        (FREEBSD_AMD64, 26, 32, 26, 16),
        (LAYOUTS[("freebsd", "arm64")], 26, 32, 26, 16),
        # i386: 32-bit time_t, timeval 8 -> 18, padded to 4 -> 20; WORDALIGN(32)-14 = 18
        (FREEBSD_I386, 18, 20, 18, 8),
        # macOS: timeval32 -> 18 (20 padded); BPF_ALIGNMENT 4 -> WORDALIGN(32)-14 = 18
        (DARWIN_ARM64, 18, 20, 18, 16),
        (LAYOUTS[("darwin", "amd64")], 18, 20, 18, 16),
    ],
)
def test_struct_sizes(
    layout: BpfLayout, sizeof_bpf_hdr: int, bpf_hdr_size: int, hdrlen: int, program_size: int
) -> None:
    assert layout.sizeof_bpf_hdr == sizeof_bpf_hdr
    assert layout.bpf_hdr_size == bpf_hdr_size
    assert layout.hdrlen() == hdrlen
    assert (hdrlen + 14) % layout.alignment == 0  # the IP header lands word-aligned
    assert layout.program_size == program_size


def test_wordalign() -> None:
    assert [FREEBSD_AMD64.wordalign(n) for n in (0, 1, 8, 9, 26)] == [0, 8, 8, 16, 32]
    assert [DARWIN_ARM64.wordalign(n) for n in (0, 1, 4, 5, 18)] == [0, 4, 4, 8, 20]


@pytest.mark.parametrize(
    ("os_name", "machine", "key"),
    [
        ("freebsd14", "amd64", ("freebsd", "amd64")),
        ("freebsd13", "arm64", ("freebsd", "arm64")),
        ("freebsd14", "i386", ("freebsd", "i386")),
        ("darwin", "x86_64", ("darwin", "amd64")),
        ("darwin", "arm64", ("darwin", "arm64")),
    ],
)
def test_layout_for(os_name: str, machine: str, key: tuple[str, str]) -> None:
    assert layout_for(os_name, machine) is LAYOUTS[key]


@pytest.mark.parametrize(("os_name", "machine"), [("linux", "x86_64"), ("freebsd14", "mips")])
def test_layout_for_unknown(os_name: str, machine: str) -> None:
    with pytest.raises(ValueError, match="no BPF layout"):
        layout_for(os_name, machine)


def test_pack_program() -> None:
    assert pack_program(4, 0x1122334455667788, FREEBSD_AMD64) == (
        b"\x04\0\0\0" + b"\0\0\0\0" + bytes.fromhex("8877665544332211")
    )
    assert pack_program(4, 0x11223344, FREEBSD_I386) == b"\x04\0\0\0" + bytes.fromhex("44332211")


def test_pack_ifreq() -> None:
    req = pack_ifreq("epair0a", FREEBSD_AMD64, struct.pack("<i", 1500))
    assert len(req) == 32
    assert req[:16] == b"epair0a" + b"\0" * 9
    assert req[16:20] == b"\xdc\x05\0\0"
    assert req[20:] == bytes(12)


@pytest.mark.parametrize("bad", ["", "x" * 16, "a\0b", "é0"])
def test_pack_ifreq_rejects_bad_names(bad: str) -> None:
    with pytest.raises(ValueError, match="interface name"):
        pack_ifreq(bad, FREEBSD_AMD64)


# --- bpf_hdr records --------------------------------------------------------------------


def test_record_layout_freebsd_amd64() -> None:
    frame = _frame(0x88B5, b"x" * 3)  # 17 bytes
    rec = encode_record(frame, FREEBSD_AMD64, sec=1, usec=2, pad=b"\xee")
    # timeval{8,8}, caplen, datalen, hdrlen=26, then the frame at 26, padded to 8
    assert rec[:26] == struct.pack("<qqIIH", 1, 2, 17, 17, 26)
    assert rec[26:43] == frame
    assert len(rec) == 48
    assert rec[43:] == b"\xee" * 5


def test_record_layout_darwin() -> None:
    frame = _frame(0x88B5, b"x" * 3)
    rec = encode_record(frame, DARWIN_ARM64, sec=1, usec=2)
    assert rec[:18] == struct.pack("<iiIIH", 1, 2, 17, 17, 18)
    assert rec[18:35] == frame
    assert len(rec) == 36


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=lambda la: f"{la.os}-{la.arch}")
def test_walk_several_records(layout: BpfLayout) -> None:
    frames = [_frame(0x88B5, b"a" * n) for n in (0, 1, 5, 46, 1486)]
    buf = b"".join(
        encode_record(f, layout, sec=i, usec=i * 10, pad=b"\xa5") for i, f in enumerate(frames)
    )
    got = list(walk(buf, layout))
    assert [f for _, f in got] == frames
    assert [(h.sec, h.usec, h.caplen, h.hdrlen) for h, _ in got] == [
        (i, i * 10, len(f), layout.hdrlen()) for i, f in enumerate(frames)
    ]


def test_walk_truncated_capture() -> None:
    frame = _frame(0x88B5, b"z" * 100)
    rec = encode_record(frame[:64], FREEBSD_AMD64, datalen=len(frame))
    ((hdr, got),) = walk(rec, FREEBSD_AMD64)
    assert (hdr.caplen, hdr.datalen, got) == (64, len(frame), frame[:64])


def test_walk_uses_the_kernels_hdrlen_not_ours() -> None:
    # A kernel may pad the header further (e.g. a 32-bit process on amd64): trust bh_hdrlen.
    frame = _frame(0x88B5)
    head = struct.pack("<qqIIH", 0, 0, len(frame), len(frame), 40)
    buf = head + b"\0" * (40 - len(head)) + frame
    buf += b"\0" * (FREEBSD_AMD64.wordalign(len(buf)) - len(buf))
    assert [f for _, f in walk(buf, FREEBSD_AMD64)] == [frame]


def test_walk_empty() -> None:
    assert list(walk(b"", FREEBSD_AMD64)) == []


@pytest.mark.parametrize(
    ("buf", "reason"),
    [
        (b"\0" * 10, "bpf_hdr needs 26 bytes"),
        (struct.pack("<qqIIH", 0, 0, 4, 4, 10) + b"\0" * 20, "shorter than bpf_hdr"),
        (struct.pack("<qqIIH", 0, 0, 9, 4, 26) + b"\0" * 20, "exceeds bh_datalen"),
        (struct.pack("<qqIIH", 0, 0, 100, 100, 26) + b"\0" * 20, "overruns the buffer"),
    ],
)
def test_walk_errors(buf: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        list(walk(buf, FREEBSD_AMD64))
    assert info.value.layer == "bpf"
    assert reason in info.value.reason


def test_parse_bpf_hdr_at_offset() -> None:
    rec = encode_record(_frame(0x88B5), DARWIN_ARM64, sec=7)
    hdr = parse_bpf_hdr(b"\xff" * 4 + rec, 4, DARWIN_ARM64)
    assert (hdr.sec, hdr.caplen, hdr.hdrlen) == (7, 18, 18)


layouts = st.sampled_from(list(LAYOUTS.values()))


@given(layouts, st.lists(st.binary(min_size=0, max_size=300), max_size=8), st.binary(max_size=1))
def test_walk_roundtrip(layout: BpfLayout, frames: list[bytes], pad: bytes) -> None:
    buf = b"".join(encode_record(f, layout, pad=pad or b"\0") for f in frames)
    assert [f for _, f in walk(buf, layout)] == frames


@given(layouts, st.binary(max_size=200))
def test_walk_fuzz_only_decode_error(layout: BpfLayout, buf: bytes) -> None:
    try:
        for hdr, frame in walk(buf, layout):
            assert len(frame) == hdr.caplen
    except DecodeError:
        pass


# --- sockaddr_dl ------------------------------------------------------------------------


def test_parse_sockaddr_dl() -> None:
    name, mac = b"epair0a", MAC_A
    sdl = struct.pack("=BBHBBBB", 20, 18, 3, 6, len(name), 6, 0) + name + mac
    sdl += b"\0" * (20 - len(sdl))  # FreeBSD pads sdl_data to at least 12 bytes
    assert parse_sockaddr_dl(sdl) == (3, "epair0a", mac)


@pytest.mark.parametrize(
    ("buf", "reason"),
    [
        (b"\x08\x12", "needs 8 bytes"),
        (struct.pack("=BBHBBBB", 8, 2, 1, 6, 0, 0, 0), "not AF_LINK"),
        (struct.pack("=BBHBBBB", 8, 18, 1, 6, 4, 6, 0) + b"ab", "overrun"),
    ],
)
def test_parse_sockaddr_dl_errors(buf: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        parse_sockaddr_dl(buf)
