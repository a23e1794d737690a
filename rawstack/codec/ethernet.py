"""Ethernet II frame codec with one optional IEEE 802.1Q tag.

Theory of operation: a frame as an ``AF_PACKET``/``SOCK_RAW`` socket sends and receives
it: destination MAC, source MAC, EtherType, payload (no preamble, no FCS). When
:attr:`Ethernet.vlan` is set, ``encode()`` inserts the 802.1Q tag (TPID 0x8100, then the
16-bit TCI: priority, DEI, VLAN id; IEEE 802.1Q tag format) before the EtherType;
``decode()`` lifts one such tag into ``vlan``. Ethernet has no length field, so the
payload is everything after the header, including any padding a NIC added to reach the
60-byte minimum: the protocol inside (IPv4 total length, CHAO length) says where its data
ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._header import BytesLike, HeaderTable, as_bytes, check_optional_uint, check_uint, frozen_bytes

__all__ = [
    "BROADCAST_MAC",
    "ETH_HLEN",
    "ETH_P_8021Q",
    "ETH_P_ALL",
    "ETH_P_ARP",
    "ETH_P_CHAO",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "ETH_ZLEN",
    "Ethernet",
    "is_multicast",
    "mac_to_bytes",
    "mac_to_str",
]

LAYER = "ethernet"

# EtherTypes (IEEE registry; the values Linux names in <linux/if_ether.h>).
ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
# IEEE Std 802 "Local Experimental EtherType 1": free for private protocols such as
# CHAO; see docs/chao.md.
ETH_P_CHAO = 0x88B5
# Not a wire value: the Linux packet(7) protocol number meaning "every EtherType".
ETH_P_ALL = 0x0003

ETH_HLEN = 14
ETH_ZLEN = 60  # minimum frame without FCS; shorter frames are padded by the sender's NIC
BROADCAST_MAC = b"\xff" * 6

HEADER = HeaderTable(
    LAYER, (("dst", "6s", BROADCAST_MAC), ("src", "6s", b"\x00" * 6), ("ethertype", "H", 0))
)
VLAN_TAG = HeaderTable(LAYER, (("tci", "H", 0), ("ethertype", "H", 0)))


def mac_to_bytes(mac: str) -> bytes:
    """``"aa:bb:cc:dd:ee:ff"`` (or with ``-``) -> 6 bytes; anything else is a ValueError."""
    if not isinstance(mac, str):
        raise TypeError(f"{LAYER}: MAC address must be a str, not {type(mac).__name__}")
    parts = mac.replace("-", ":").split(":")
    if len(parts) != 6 or any(
        len(part) != 2 or any(c not in "0123456789abcdefABCDEF" for c in part) for part in parts
    ):
        raise ValueError(
            f"{LAYER}: bad MAC address {mac!r}: expected 6 hex pairs like aa:bb:cc:dd:ee:ff"
        )
    return bytes(int(part, 16) for part in parts)


def mac_to_str(mac: BytesLike) -> str:
    """6 bytes -> ``"aa:bb:cc:dd:ee:ff"``."""
    raw = as_bytes(LAYER, mac)
    if len(raw) != 6:
        raise ValueError(f"{LAYER}: a MAC address is 6 bytes, not {len(raw)}")
    return ":".join(f"{octet:02x}" for octet in raw)


def is_multicast(mac: BytesLike) -> bool:
    """True for a group address: the I/G bit, bit 0 of the first octet (IEEE Std 802)."""
    raw = as_bytes(LAYER, mac)
    if len(raw) != 6:
        raise ValueError(f"{LAYER}: a MAC address is 6 bytes, not {len(raw)}")
    return bool(raw[0] & 0x01)


@dataclass(frozen=True)
class Ethernet:
    """One frame; ``vlan`` is the 802.1Q TCI, or ``None`` for an untagged frame."""

    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes = b""
    vlan: int | None = None

    def __post_init__(self) -> None:
        for name in ("dst", "src"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise TypeError(f"{LAYER}: {name} must be 6 bytes; use mac_to_bytes({value!r})")
            frozen_bytes(self, LAYER, name)
            if len(getattr(self, name)) != 6:
                raise ValueError(f"{LAYER}: {name} must be 6 bytes, not {len(value)}")
        check_uint(LAYER, "ethertype", self.ethertype, 16)
        check_optional_uint(LAYER, "vlan", self.vlan, 16)
        frozen_bytes(self, LAYER, "payload")

    @property
    def vlan_id(self) -> int | None:
        """The 12-bit VLAN identifier of the tag, if any."""
        return None if self.vlan is None else self.vlan & 0x0FFF

    @property
    def vlan_priority(self) -> int | None:
        """The 3-bit priority code point of the tag, if any."""
        return None if self.vlan is None else self.vlan >> 13

    def encode(self) -> bytes:
        """The frame as an AF_PACKET SOCK_RAW socket sends it (no FCS, no padding)."""
        if self.vlan is None:
            header = HEADER.pack(dst=self.dst, src=self.src, ethertype=self.ethertype)
        else:
            header = HEADER.pack(dst=self.dst, src=self.src, ethertype=ETH_P_8021Q) + VLAN_TAG.pack(
                tci=self.vlan, ethertype=self.ethertype
            )
        return header + self.payload

    @classmethod
    def decode(cls, buf: BytesLike) -> Ethernet:
        """Parse a frame, lifting one 802.1Q tag into ``vlan``."""
        data = as_bytes(LAYER, buf)
        fields = HEADER.unpack(data)
        vlan: int | None = None
        ethertype = fields["ethertype"]
        start = HEADER.size
        if ethertype == ETH_P_8021Q:
            tag = VLAN_TAG.unpack(data, HEADER.size)
            vlan, ethertype = tag["tci"], tag["ethertype"]
            start += VLAN_TAG.size
        return cls(
            dst=fields["dst"],
            src=fields["src"],
            ethertype=ethertype,
            payload=data[start:],
            vlan=vlan,
        )
