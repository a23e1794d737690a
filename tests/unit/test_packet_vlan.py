"""The 802.1Q tag a Linux packet socket reports in PACKET_AUXDATA, put back into the frame."""

from __future__ import annotations

import socket

from rawstack.codec import ETH_P_CHAO, Ethernet
from rawstack.codec.bpf import ethertype_filter, run_filter
from rawstack.sockets.packet import (
    AUXDATA,
    PACKET_AUXDATA,
    SOL_PACKET,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    with_vlan_tag,
)

DST, SRC = b"\x02\x00\x00\x00\x00\x02", b"\x02\x00\x00\x00\x00\x01"
UNTAGGED = Ethernet(DST, SRC, ETH_P_CHAO, b"CHAO\x01\x01\x00\x01\x00\x00").encode()


def aux(status: int, tci: int = 0, tpid: int = 0) -> list[tuple[int, int, bytes]]:
    return [(SOL_PACKET, PACKET_AUXDATA, AUXDATA.pack(status, 24, 24, 0, 14, tci, tpid))]


def test_the_tag_goes_back_after_the_macs() -> None:
    status = 1 | TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID
    frame = with_vlan_tag(UNTAGGED, aux(status, tci=0xA064, tpid=0x8100))
    eth = Ethernet.decode(frame)
    assert (eth.vlan_id, eth.vlan_priority, eth.ethertype) == (100, 5, ETH_P_CHAO)
    assert frame == Ethernet(DST, SRC, ETH_P_CHAO, eth.payload, vlan=0xA064).encode()


def test_a_tci_without_a_tpid_is_802_1q() -> None:
    frame = with_vlan_tag(UNTAGGED, aux(TP_STATUS_VLAN_VALID, tci=7))
    assert frame[12:16] == b"\x81\x00\x00\x07"


def test_priority_only_tag_of_vlan_0_is_kept_too() -> None:
    assert with_vlan_tag(UNTAGGED, aux(TP_STATUS_VLAN_VALID, tci=0))[12:16] == b"\x81\x00\x00\x00"


def test_no_vlan_metadata_leaves_the_frame_alone() -> None:
    assert with_vlan_tag(UNTAGGED, aux(1, tci=0x64)) == UNTAGGED  # not VLAN_VALID
    assert with_vlan_tag(UNTAGGED, []) == UNTAGGED
    other = [(socket.SOL_SOCKET, 35, b"\x00" * 16)]  # a timestamp, not auxdata
    assert with_vlan_tag(UNTAGGED, other) == UNTAGGED


def test_the_filter_matches_the_inner_ethertype_the_kernel_leaves() -> None:
    # The kernel runs the program on the untagged data, so a tagged CHAO frame matches.
    program = ethertype_filter(ETH_P_CHAO, 65536)
    assert run_filter(program, UNTAGGED) == len(UNTAGGED)
    assert run_filter(program, UNTAGGED[:12] + b"\x08\x00" + UNTAGGED[14:]) == 0
