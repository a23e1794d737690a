"""rawstack.codec.ethernet: frames, one 802.1Q tag, MAC helpers."""

from __future__ import annotations

import pytest
from _strategies import MAC_A, MAC_B, h, macs
from hypothesis import given, settings
from hypothesis import strategies as st

from rawstack.codec import (
    BROADCAST_MAC,
    ETH_P_8021Q,
    ETH_P_CHAO,
    ETH_P_IP,
    DecodeError,
    Ethernet,
    is_multicast,
    mac_to_bytes,
    mac_to_str,
)

# Wire bytes produced by scapy 2.x.
UNTAGGED = h("""
    ff ff ff ff
    ff ff 02 00
    00 00 00 01
    88 b5 43 48
    41 4f
""")
TAGGED = h("""
    02 00 00 00
    00 02 02 00
    00 00 00 01
    81 00 a0 64
    08 00
""")

# (frame as built, wire bytes)
VECTORS = [
    pytest.param(
        Ethernet(BROADCAST_MAC, MAC_A, ETH_P_CHAO, b"CHAO"),
        UNTAGGED,
        id="broadcast-chao",
    ),
    pytest.param(
        Ethernet(MAC_B, MAC_A, ETH_P_IP, vlan=(5 << 13) | 100),
        TAGGED,
        id="vlan-100-prio-5",
    ),
]


@pytest.mark.parametrize(("frame", "wire"), VECTORS)
def test_encode_vector(frame: Ethernet, wire: bytes) -> None:
    assert frame.encode() == wire


@pytest.mark.parametrize(("frame", "wire"), VECTORS)
def test_decode_vector(frame: Ethernet, wire: bytes) -> None:
    assert Ethernet.decode(wire) == frame
    assert Ethernet.decode(wire).encode() == wire


def test_vlan_fields() -> None:
    frame = Ethernet.decode(TAGGED)
    assert (frame.vlan_id, frame.vlan_priority, frame.ethertype) == (100, 5, ETH_P_IP)
    untagged = Ethernet.decode(UNTAGGED)
    assert (untagged.vlan, untagged.vlan_id, untagged.vlan_priority) == (None, None, None)


def test_a_second_tag_stays_in_the_payload() -> None:
    wire = MAC_B + MAC_A + h("81 00 00 0a  81 00 00 14  08 00")
    frame = Ethernet.decode(wire)
    assert (frame.vlan_id, frame.ethertype, frame.payload) == (10, ETH_P_8021Q, h("00 14 08 00"))
    assert frame.encode() == wire


ERROR_VECTORS = [
    pytest.param(b"", 0, "needs 14 bytes, got 0", id="empty"),
    pytest.param(BROADCAST_MAC + MAC_A + b"\x08", 0, "needs 14 bytes, got 13", id="short"),
    pytest.param(MAC_B + MAC_A + h("81 00 00"), 14, "needs 4 bytes, got 1", id="short-tag"),
]


@pytest.mark.parametrize(("wire", "offset", "reason"), ERROR_VECTORS)
def test_error_vectors(wire: bytes, offset: int, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        Ethernet.decode(wire)
    assert (info.value.layer, info.value.offset) == ("ethernet", offset)
    assert reason in info.value.reason


@pytest.mark.parametrize(
    ("text", "raw"),
    [
        ("aa:bb:cc:dd:ee:ff", h("aabbccddeeff")),
        ("AA-BB-CC-00-01-02", h("aabbcc000102")),
        ("ff:ff:ff:ff:ff:ff", BROADCAST_MAC),
    ],
)
def test_mac_conversions(text: str, raw: bytes) -> None:
    assert mac_to_bytes(text) == raw
    assert mac_to_str(raw) == text.lower().replace("-", ":")


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "aa:bb:cc:dd:ee",
        "aa:bb:cc:dd:ee:ff:00",
        "aa:bb:cc:dd:ee:gg",
        "a:bb:cc:dd:ee:fff",
        "aabbccddeeff",
        "aa:bb:cc:dd:ee:+f",
    ],
)
def test_bad_mac_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="bad MAC address"):
        mac_to_bytes(bad)


def test_mac_helpers_reject_misuse() -> None:
    with pytest.raises(TypeError):
        mac_to_bytes(b"\x00" * 6)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="6 bytes"):
        mac_to_str(b"\x00" * 5)
    with pytest.raises(ValueError, match="6 bytes"):
        is_multicast(b"\x01")


@pytest.mark.parametrize(
    ("mac", "group"),
    [
        (BROADCAST_MAC, True),
        (h("01 00 5e 00 00 01"), True),
        (h("43 48 41 4f 48 65"), True),
        (MAC_A, False),
    ],
)
def test_is_multicast(mac: bytes, group: bool) -> None:
    assert is_multicast(mac) is group


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"dst": "ff:ff:ff:ff:ff:ff"}, TypeError),
        ({"dst": b"\xff" * 5}, ValueError),
        ({"src": b"\x00" * 7}, ValueError),
        ({"ethertype": 0x10000}, ValueError),
        ({"vlan": -1}, ValueError),
        ({"payload": 5}, TypeError),
    ],
)
def test_api_misuse(kwargs: dict[str, object], error: type[Exception]) -> None:
    fields: dict[str, object] = {"dst": MAC_B, "src": MAC_A, "ethertype": ETH_P_IP}
    fields.update(kwargs)
    with pytest.raises(error):
        Ethernet(**fields)  # type: ignore[arg-type]


@settings(max_examples=200)
@given(
    macs,
    macs,
    st.integers(0, 0xFFFF).filter(lambda t: t != ETH_P_8021Q),
    st.binary(max_size=64),
    st.none() | st.integers(0, 0xFFFF),
)
def test_round_trip(
    dst: bytes, src: bytes, ethertype: int, payload: bytes, vlan: int | None
) -> None:
    frame = Ethernet(dst, src, ethertype, payload, vlan)
    assert Ethernet.decode(frame.encode()) == frame
    assert mac_to_bytes(mac_to_str(dst)) == dst


@settings(max_examples=200)
@given(st.binary(max_size=40))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        frame = Ethernet.decode(data)
    except DecodeError:
        return
    assert frame.encode() == data


@pytest.mark.parametrize(("frame", "wire"), VECTORS)
def test_truncated_headers_are_decode_errors(frame: Ethernet, wire: bytes) -> None:
    header_len = 14 if frame.vlan is None else 18
    for end in range(header_len):
        with pytest.raises(DecodeError):
            Ethernet.decode(wire[:end])
