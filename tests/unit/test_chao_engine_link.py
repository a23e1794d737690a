"""Argument checks of the CHAO peers and the packet socket that need no root."""

from __future__ import annotations

import pytest

from rawstack.codec import BROADCAST_MAC
from rawstack.errors import UsageError
from rawstack.peers.chao import chao_exchange, parse_destination
from rawstack.sockets.packet import open_packet


@pytest.mark.parametrize("text", ["broadcast", "BROADCAST", "ff:ff:ff:ff:ff:ff"])
def test_broadcast_spellings(text: str) -> None:
    assert parse_destination(text) == BROADCAST_MAC


def test_mac_with_dashes_or_colons() -> None:
    assert parse_destination("02-00-00-00-00-0A") == bytes.fromhex("02000000000a")


@pytest.mark.parametrize("text", ["", "02:00:00:00:00", "zz:00:00:00:00:00", "0200.0000.0001"])
def test_bad_macs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="bad MAC address"):
        parse_destination(text)


@pytest.mark.parametrize("name", ["", "x" * 16, "a/b", " eth0"])
def test_bad_interface_names_are_refused_before_any_socket(name: str) -> None:
    with pytest.raises(UsageError, match="bad interface name"):
        open_packet(name)


def test_unknown_interface_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no such interface: rsd-nowhere"):
        open_packet("rsd-nowhere")


@pytest.mark.parametrize("ethertype", [0, 0x05FF, 0x10000])
def test_bad_ethertypes(ethertype: int) -> None:
    with pytest.raises(UsageError, match="EtherType"):
        open_packet("lo", ethertype)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"count": 0}, "count"),
        ({"timeout": 0.0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"interval": -1.0}, "interval"),
        ({"to": "nonsense"}, "bad MAC"),
    ],
)
def test_exchange_arguments_checked_before_opening_anything(
    kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(UsageError, match=match):
        chao_exchange("rsd-nowhere", **kwargs)  # type: ignore[arg-type]
