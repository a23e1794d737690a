"""tshark as an independent oracle: we encode and write a pcap, Wireshark's dissectors
read it and must agree field by field, with every checksum verified "Good"; and tshark's
own pcap output must read back through our reader.

Each test runs tshark once over a batch of packets (fixed vectors, or a hypothesis-drawn
list), fed on stdin, so nothing is written to disk and the module stays fast.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

import pytest
from _strategies import (
    MAC_A,
    MAC_B,
    SYN_OPTIONS,
    addresses,
    ipv4_packets,
    macs,
    tcp_fields,
    tcp_options,
    u16,
    u32,
    vlan_tags,
)
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    BROADCAST_MAC,
    CHAO_REQUEST,
    DEST_UNREACH,
    ECHO_REPLY,
    ECHO_REQUEST,
    ETH_P_CHAO,
    ETH_P_IP,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    TIME_EXCEEDED,
    Chao,
    DecodeError,
    Ethernet,
    IcmpEcho,
    IcmpError,
    IPv4,
    Tcp,
    TcpMss,
    TcpOption,
    TcpSack,
    TcpTimestamps,
    TcpWindowScale,
    Udp,
    mac_to_str,
    transport_checksum,
)
from rawstack.codec.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    PcapRecord,
    read_pcap,
    write_pcap,
)

TSHARK = shutil.which("tshark")
pytestmark = pytest.mark.skipif(
    TSHARK is None, reason="tshark is not installed (Debian package tshark)"
)

# Validate every checksum, and show sequence numbers as sent rather than relative to
# the first segment of the stream; never reassemble fragments of unrelated packets.
PREFS = (
    "ip.check_checksum:TRUE",
    "udp.check_checksum:TRUE",
    "tcp.check_checksum:TRUE",
    "tcp.relative_sequence_numbers:FALSE",
    "ip.defragment:FALSE",
)
GOOD = "1"  # PROTO_CHECKSUM_E_GOOD in epan/proto.h, as tshark's JSON prints it

# Shrinking reruns tshark for every candidate (minutes for a batch of 60), so a
# failure is reported as drawn; the assertion diff names the frame that disagrees.
ORACLE = settings(
    max_examples=4,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Fields = dict[str, list[str]]


def _tshark(args: Sequence[str], stdin: bytes) -> bytes:
    """Run tshark with a private, empty profile so no user preference changes a field."""
    assert TSHARK is not None
    with tempfile.TemporaryDirectory(prefix="rawstack-tshark-") as home:
        env = {**os.environ, "WIRESHARK_CONFIG_DIR": home, "HOME": home}
        # stderr carries the "running as root" warning; only the exit status matters.
        proc = subprocess.run(
            [TSHARK, "-n", *args],
            check=False,
            input=stdin,
            capture_output=True,
            env=env,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout


class _Object(list[tuple[str, Any]]):
    """A JSON object as its (key, value) pairs: tshark repeats keys (one per option)."""


def _flatten(node: Any, out: Fields) -> None:
    for key, value in node:
        values = value if isinstance(value, list) and not isinstance(value, _Object) else [value]
        for item in values:
            if isinstance(item, _Object):
                _flatten(item, out)
            else:
                out.setdefault(key, []).append(item)


def dissect(records: Sequence[PcapRecord], linktype: int, **options: Any) -> list[Fields]:
    """tshark's fields per frame, each name mapped to its values in dissection order."""
    pcap = write_pcap(records, linktype, **options)
    args = ["-r", "-", "-T", "json"]
    for pref in PREFS:
        args += ["-o", pref]
    frames = json.loads(_tshark(args, pcap), object_pairs_hook=_Object)
    result = []
    for frame in frames:
        fields: Fields = {}
        _flatten(dict(dict(frame)["_source"])["layers"], fields)
        result.append(fields)
    assert len(result) == len(records)
    return result


def pick(frames: list[Fields], wanted: Sequence[dict[str, list[str]]]) -> list[Fields]:
    """Of each frame, only the names its expectation mentions (absent: empty list)."""
    return [{key: frame.get(key, []) for key in want} for frame, want in zip(frames, wanted)]


def records_of(packets: Sequence[bytes]) -> list[PcapRecord]:
    return [PcapRecord(packet, 1700000000, n) for n, packet in enumerate(packets)]


def hexcolon(data: bytes) -> str:
    return ":".join(f"{octet:02x}" for octet in data)


def x16(value: int) -> str:
    return f"0x{value:04x}"


# --- fixed vectors ------------------------------------------------------------------

SRC, DST = "192.0.2.1", "198.51.100.7"

# Seed 004: the echo request Linux builds from the article's header (ident 11); the
# article's tcpdump shows the IP checksum 0x7cd4 and the ICMP checksum 0xf7ff.
SEED_004 = IPv4(
    "127.0.0.1", "127.0.0.1", PROTO_ICMP, IcmpEcho(ECHO_REQUEST, 0, 0).encode(), ident=11
)
SEED_004_FIELDS = {
    "ip.len": ["28"],
    "ip.id": ["0x000b"],
    "ip.checksum": ["0x7cd4"],
    "ip.checksum.status": [GOOD],
    "ip.src": ["127.0.0.1"],
    "icmp.type": ["8"],
    "icmp.checksum": ["0xf7ff"],
    "icmp.checksum.status": [GOOD],
}

UDP_PAYLOAD = b"rawstack udp payload"
UDP_DATAGRAM = IPv4(SRC, DST, PROTO_UDP, Udp(40000, 9, UDP_PAYLOAD).encode(SRC, DST), ttl=17)
UDP_FIELDS = {
    "ip.len": [str(20 + 8 + len(UDP_PAYLOAD))],
    "ip.ttl": ["17"],
    "ip.checksum.status": [GOOD],
    "udp.srcport": ["40000"],
    "udp.dstport": ["9"],
    "udp.length": [str(8 + len(UDP_PAYLOAD))],
    "udp.checksum.status": [GOOD],
    "udp.payload": [hexcolon(UDP_PAYLOAD)],
}


def _zero_sum_payload() -> bytes:
    """Two bytes that make the computed UDP checksum 0, which RFC 768 sends as 0xffff."""
    base = Udp(1, 2, b"\x00\x00", checksum=0).encode(SRC, DST)
    needed = (~transport_checksum(SRC, DST, PROTO_UDP, base)) & 0xFFFF
    return (0xFFFF - needed).to_bytes(2, "big")


ZERO_SUM = IPv4(SRC, DST, PROTO_UDP, Udp(1, 2, _zero_sum_payload()).encode(SRC, DST))
ZERO_SUM_FIELDS = {"udp.checksum": ["0xffff"], "udp.checksum.status": [GOOD]}

SYN_SEGMENT = IPv4(
    SRC, DST, PROTO_TCP, Tcp(40000, 80, 0x01020304, options=SYN_OPTIONS).encode(SRC, DST), df=True
)
SYN_FIELDS = {
    "ip.flags.df": ["1"],
    "tcp.seq_raw": [str(0x01020304)],
    "tcp.flags": ["0x0002"],
    "tcp.hdr_len": ["40"],
    "tcp.window_size_value": ["65535"],
    "tcp.option_kind": ["2", "4", "8", "1", "3"],
    "tcp.options.mss_val": ["1460"],
    "tcp.options.timestamp.tsval": [str(0xDEADBEEF)],
    "tcp.options.timestamp.tsecr": ["0"],
    "tcp.options.wscale.shift": ["7"],
    "tcp.checksum.status": [GOOD],
}

# A router's time exceeded for UDP_DATAGRAM, quoting its header and first 8 data bytes.
TIME_EXCEEDED_MSG = IPv4(
    "203.0.113.1",
    SRC,
    PROTO_ICMP,
    IcmpError(TIME_EXCEEDED, 0, UDP_DATAGRAM.encode()[:28]).encode(),
)
TIME_EXCEEDED_FIELDS = {
    "ip.src": ["203.0.113.1", SRC],
    "ip.dst": [SRC, DST],
    "ip.checksum.status": [GOOD, GOOD],
    "icmp.type": ["11"],
    "icmp.code": ["0"],
    "icmp.checksum.status": [GOOD],
    "udp.srcport": ["40000"],
    "udp.dstport": ["9"],
}

TAGGED = Ethernet(MAC_B, MAC_A, ETH_P_IP, UDP_DATAGRAM.encode(), vlan=(5 << 13) | (1 << 12) | 100)
TAGGED_FIELDS = {
    "eth.type": ["0x8100"],
    "vlan.priority": ["5"],
    "vlan.dei": ["1"],
    "vlan.id": ["100"],
    "vlan.etype": ["0x0800"],
    "udp.checksum.status": [GOOD],
}

CHAO_MESSAGE = Chao(CHAO_REQUEST, 0xBEEF, b"hello")
CHAO_FRAME = Ethernet(BROADCAST_MAC, MAC_A, ETH_P_CHAO, CHAO_MESSAGE.encode())
CHAO_FIELDS = {
    "eth.dst": ["ff:ff:ff:ff:ff:ff"],
    "eth.src": ["02:00:00:00:00:01"],
    "eth.type": ["0x88b5"],
    "data.data": [hexcolon(b"CHAO\x01\x01\xbe\xef\x00\x05hello")],
    "frame.len": [str(14 + 10 + 5)],
}

ETHERNET_VECTORS = [
    (Ethernet(MAC_B, MAC_A, ETH_P_IP, SEED_004.encode()), SEED_004_FIELDS),
    (Ethernet(MAC_B, MAC_A, ETH_P_IP, UDP_DATAGRAM.encode()), UDP_FIELDS),
    (Ethernet(MAC_B, MAC_A, ETH_P_IP, ZERO_SUM.encode()), ZERO_SUM_FIELDS),
    (Ethernet(MAC_B, MAC_A, ETH_P_IP, SYN_SEGMENT.encode()), SYN_FIELDS),
    (Ethernet(MAC_B, MAC_A, ETH_P_IP, TIME_EXCEEDED_MSG.encode()), TIME_EXCEEDED_FIELDS),
    (TAGGED, TAGGED_FIELDS),
    (CHAO_FRAME, CHAO_FIELDS),
]
RAW_VECTORS = [
    (SEED_004, SEED_004_FIELDS),
    (UDP_DATAGRAM, UDP_FIELDS),
    (SYN_SEGMENT, SYN_FIELDS),
    (TIME_EXCEEDED_MSG, TIME_EXCEEDED_FIELDS),
]


def test_fixed_vectors_in_an_ethernet_capture() -> None:
    wanted = [fields for _, fields in ETHERNET_VECTORS]
    frames = dissect(records_of([frame.encode() for frame, _ in ETHERNET_VECTORS]), 1)
    assert pick(frames, wanted) == wanted
    assert [frame.get("_ws.malformed", []) for frame in frames] == [[]] * len(frames)
    assert [frame["frame.protocols"][0].split(":")[0] for frame in frames] == ["eth"] * 7


def test_fixed_vectors_in_a_raw_ip_capture() -> None:
    wanted = [fields for _, fields in RAW_VECTORS]
    frames = dissect(records_of([packet.encode() for packet, _ in RAW_VECTORS]), LINKTYPE_RAW)
    assert pick(frames, wanted) == wanted
    assert [frame["frame.protocols"][0].split(":")[:2] for frame in frames] == [["raw", "ip"]] * 4


# --- one hypothesis-drawn batch of every kind ---------------------------------------
# Each strategy draws one case: an Ethernet frame and the fields tshark must show for it.

Case = tuple[bytes, Fields]


def _in_ethernet(packet: IPv4) -> bytes:
    return Ethernet(MAC_B, MAC_A, ETH_P_IP, packet.encode()).encode()


def _ipv4_case(p: IPv4) -> Case:
    return (
        _in_ethernet(p),
        {
            "ip.src": [p.src],
            "ip.dst": [p.dst],
            "ip.proto": [str(p.proto)],
            "ip.len": [str(p.header_length + len(p.payload))],
            "ip.hdr_len": [str(p.header_length)],
            "ip.ttl": [str(p.ttl)],
            "ip.dsfield": [f"0x{p.tos:02x}"],
            "ip.id": [x16(p.ident)],
            "ip.flags.rb": [str(int(p.reserved_flag))],
            "ip.flags.df": [str(int(p.df))],
            "ip.flags.mf": [str(int(p.mf))],
            "ip.frag_offset": [str(p.frag_offset)],  # 8-octet units, as on the wire
            "ip.checksum": [x16(int.from_bytes(p.encode()[10:12], "big"))],
            "ip.checksum.status": [GOOD],
        },
    )


ipv4_cases = ipv4_packets(
    # Experimental protocol numbers (RFC 3692): tshark shows the payload as data.
    proto=st.sampled_from([253, 254]),
    options=st.integers(0, 3).map(lambda words: b"\x01" * (4 * words)),  # no-operation
    max_payload=40,
).map(_ipv4_case)


def _udp_case(src: str, dst: str, udp: Udp) -> Case:
    wire = udp.encode(src, dst)
    return _in_ethernet(IPv4(src, dst, PROTO_UDP, wire)), {
        "udp.srcport": [str(udp.src_port)],
        "udp.dstport": [str(udp.dst_port)],
        "udp.length": [str(len(wire))],
        "udp.checksum": [x16(int.from_bytes(wire[6:8], "big"))],
        "udp.checksum.status": [GOOD],
    }


udp_cases = st.builds(
    _udp_case, addresses, addresses, st.builds(Udp, u16, u16, st.binary(max_size=48))
)


def _option_fields(options: tuple[TcpOption, ...]) -> Fields:
    """What tshark should list for ``options``, in order, per field name."""
    fields: Fields = {
        "tcp.option_kind": [],
        "tcp.options.mss_val": [],
        "tcp.options.wscale.shift": [],
        "tcp.options.timestamp.tsval": [],
        "tcp.options.timestamp.tsecr": [],
        "tcp.options.sack_le": [],
        "tcp.options.sack_re": [],
    }
    for option in options:
        fields["tcp.option_kind"].append(str(option.kind))
        if isinstance(option, TcpMss):
            fields["tcp.options.mss_val"].append(str(option.mss))
        elif isinstance(option, TcpWindowScale):
            fields["tcp.options.wscale.shift"].append(str(option.shift))
        elif isinstance(option, TcpTimestamps):
            fields["tcp.options.timestamp.tsval"].append(str(option.tsval))
            fields["tcp.options.timestamp.tsecr"].append(str(option.tsecr))
        elif isinstance(option, TcpSack):
            fields["tcp.options.sack_le"] += [str(left) for left, _ in option.blocks]
            fields["tcp.options.sack_re"] += [str(right) for _, right in option.blocks]
    # Our encoder pads to 32 bits with zeros; tshark lists each as an end-of-list option.
    fields["tcp.option_kind"] += ["0"] * (-len(b"".join(o.encode() for o in options)) % 4)
    return fields


def _tcp_case(src: str, dst: str, tcp: Tcp) -> Case:
    wire = tcp.encode(src, dst)
    return _in_ethernet(IPv4(src, dst, PROTO_TCP, wire)), {
        "tcp.srcport": [str(tcp.src_port)],
        "tcp.dstport": [str(tcp.dst_port)],
        "tcp.seq_raw": [str(tcp.seq)],
        "tcp.ack_raw": [str(tcp.ack)],
        "tcp.flags": [f"0x{tcp.flags:04x}"],
        "tcp.window_size_value": [str(tcp.window)],
        "tcp.urgent_pointer": [str(tcp.urgent)],
        "tcp.hdr_len": [str(20 + len(tcp.options_bytes()))],
        "tcp.len": [str(len(tcp.payload))],
        "tcp.checksum": [x16(int.from_bytes(wire[16:18], "big"))],
        "tcp.checksum.status": [GOOD],
        **_option_fields(tcp.options),
    }


tcp_cases = st.builds(
    _tcp_case,
    addresses,
    addresses,
    st.builds(Tcp, **tcp_fields(tcp_options(5, 3)), urgent=u16),
)


def _icmp_case(message: IcmpEcho | IcmpError, quoted: tuple[str, str, int, int]) -> Case:
    fields = {
        "icmp.type": [str(message.type)],
        "icmp.code": [str(message.code)],
        "icmp.checksum": [x16(int.from_bytes(message.encode()[2:4], "big"))],
        "icmp.checksum.status": [GOOD],
    }
    if isinstance(message, IcmpEcho):
        fields["icmp.ident"] = [str(message.ident)]
        fields["icmp.seq"] = [str(message.seq)]
    else:
        fields["ip.src"] = [SRC, quoted[0]]
        fields["ip.dst"] = [DST, quoted[1]]
        fields["ip.checksum.status"] = [GOOD, GOOD]
        fields["udp.srcport"] = [str(quoted[2])]
        fields["udp.dstport"] = [str(quoted[3])]
    return _in_ethernet(IPv4(SRC, DST, PROTO_ICMP, message.encode())), fields


@st.composite
def icmp_cases(draw: st.DrawFn) -> Case:
    """An echo, or an error quoting a UDP datagram's header and its first 8 data bytes."""
    src, dst, sport, dport = quoted = draw(st.tuples(addresses, addresses, u16, u16))
    if draw(st.booleans()):
        kind = draw(st.sampled_from([ECHO_REQUEST, ECHO_REPLY]))
        return _icmp_case(
            IcmpEcho(kind, draw(u16), draw(u16), draw(st.binary(max_size=40))), quoted
        )
    kind, code = draw(st.sampled_from([(DEST_UNREACH, 3), (TIME_EXCEEDED, 0)]))
    inner = IPv4(src, dst, PROTO_UDP, Udp(sport, dport, b"x" * 20).encode(src, dst))
    return _icmp_case(IcmpError(kind, code, inner.encode()[:28]), quoted)


def _chao_case(dst: bytes, src: bytes, tag: tuple[int, int, int] | None, chao: Chao) -> Case:
    tci = None if tag is None else (tag[0] << 13) | (tag[1] << 12) | tag[2]
    frame = Ethernet(dst, src, ETH_P_CHAO, chao.encode(), vlan=tci).encode()
    fields = {
        "eth.dst": [mac_to_str(dst)],
        "eth.src": [mac_to_str(src)],
        "eth.type": ["0x8100" if tag else "0x88b5"],
        "data.data": [hexcolon(chao.encode())],
    }
    if tag is not None:
        fields["vlan.priority"] = [str(tag[0])]
        fields["vlan.dei"] = [str(tag[1])]
        fields["vlan.id"] = [str(tag[2])]
        fields["vlan.etype"] = ["0x88b5"]
    return frame, fields


chao_cases = st.builds(
    _chao_case,
    macs,
    macs,
    vlan_tags,
    st.builds(Chao, st.sampled_from([1, 2]), u16, st.binary(max_size=40)),
)


def _epoch(record: PcapRecord, nanosecond: bool) -> str:
    nanos = record.ts_frac if nanosecond else record.ts_frac * 1000
    return f"{record.ts_sec}.{nanos:09d}"


@ORACLE
@given(data=st.data())
def test_random_batch_in_a_random_file_format(data: st.DataObject) -> None:
    cases = data.draw(
        st.lists(
            st.one_of(ipv4_cases, udp_cases, tcp_cases, icmp_cases(), chao_cases),
            min_size=10,
            max_size=60,
        ),
        label="cases",
    )
    byteorder = data.draw(st.sampled_from(["little", "big"]), label="byteorder")
    nanosecond = data.draw(st.booleans(), label="nanosecond")
    ticks = 10**9 if nanosecond else 10**6
    records = [
        PcapRecord(frame, data.draw(u32), data.draw(st.integers(0, ticks - 1)), len(frame) + extra)
        for frame, _ in cases
        for extra in [data.draw(st.integers(0, 100))]
    ]
    frames = dissect(records, LINKTYPE_ETHERNET, byteorder=byteorder, nanosecond=nanosecond)
    wanted = [
        {
            **fields,
            "frame.time_epoch": [_epoch(record, nanosecond)],
            "frame.cap_len": [str(len(record.data))],
            "frame.len": [str(record.wire_length)],
        }
        for (_, fields), record in zip(cases, records)
    ]
    assert pick(frames, wanted) == wanted


# --- the file format itself ---------------------------------------------------------

MIXED = [
    *records_of([frame.encode() for frame, _ in ETHERNET_VECTORS]),
    PcapRecord(Ethernet(MAC_B, MAC_A, ETH_P_IP, bytes(range(256)) * 4).encode(), 0xFFFFFFFF),
    PcapRecord(CHAO_FRAME.encode()[:16], 1, 999_999, orig_len=60),  # cut at a snaplen
]
MIXED_RAW = [PcapRecord(packet.encode(), 7, 999_999) for packet, _ in RAW_VECTORS]


@pytest.mark.parametrize(
    ("records", "linktype", "byteorder", "file_type"),
    [
        pytest.param(MIXED, LINKTYPE_ETHERNET, "big", "nsecpcap", id="ethernet-be-to-nsec"),
        pytest.param(MIXED_RAW, LINKTYPE_RAW, "little", "pcap", id="raw-le-to-usec"),
    ],
)
def test_tshark_rewrites_our_capture_and_we_read_it_back(
    records: list[PcapRecord], linktype: int, byteorder: str, file_type: str
) -> None:
    ours = write_pcap(records, linktype, byteorder=byteorder)
    header, got = read_pcap(_tshark(["-r", "-", "-w", "-", "-F", file_type], ours))
    nanosecond = file_type == "nsecpcap"
    assert (header.linktype, header.nanosecond, header.version_major) == (linktype, nanosecond, 2)
    scale = 1000 if nanosecond else 1
    assert got == [PcapRecord(r.data, r.ts_sec, r.ts_frac * scale, r.wire_length) for r in records]


def test_tshark_default_pcapng_output_is_refused_clearly() -> None:
    theirs = _tshark(["-r", "-", "-w", "-"], write_pcap(MIXED[:1], LINKTYPE_ETHERNET))
    with pytest.raises(DecodeError, match="pcapng file; only classic pcap is read"):
        read_pcap(theirs)
