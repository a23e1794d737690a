"""rawstack.peers.icmp.build_reply6: the ICMPv6 echo rules (RFC 4443 4.1, 4.2)."""

from __future__ import annotations

import pytest

from rawstack.codec import DecodeError, Icmp6Echo, IPv6, decode_icmp6
from rawstack.codec.icmp6 import ECHO_REPLY6, ECHO_REQUEST6
from rawstack.codec.ipv6 import PROTO_ICMPV6
from rawstack.peers.icmp import build_reply6
from rawstack.sockets.raw6 import Received6

US, THEM, GROUP = "fd00::2", "fd00::1", "ff02::1"


def request(src: str = THEM, dst: str | None = US, payload: bytes = b"ping6") -> Received6:
    message = Icmp6Echo(ECHO_REQUEST6, 0x4242, 7, payload).encode(src, dst or US)
    return Received6(message, src, dst, 64, 2, None)


def test_the_reply_mirrors_the_request_from_the_address_it_was_sent_to() -> None:
    decision = build_reply6(request(payload=b"x" * 3000))
    assert decision.dst == THEM
    assert decision.packet is not None
    packet = IPv6.decode(decision.packet)
    assert (packet.src, packet.dst, packet.next_header, packet.hop_limit) == (
        US,
        THEM,
        PROTO_ICMPV6,
        64,
    )
    reply = decode_icmp6(packet.payload, US, THEM)  # our checksum, pseudo-header included
    assert reply == Icmp6Echo(ECHO_REPLY6, 0x4242, 7, b"x" * 3000, checksum=reply.checksum)


def test_a_multicast_request_is_answered_from_a_unicast_address() -> None:
    decision = build_reply6(
        request(dst=GROUP), ignore_multicast=lambda: False, source_towards=lambda peer: US
    )
    assert decision.packet is not None
    assert IPv6.decode(decision.packet).src == US  # RFC 4443 4.2, never the group
    ignored = build_reply6(request(dst=GROUP), ignore_multicast=lambda: True)
    assert ignored.packet is None
    assert ignored.reason is not None
    assert "echo_ignore_multicast is 1" in ignored.reason


@pytest.mark.parametrize("src", ["::", "ff02::1"])
def test_requests_from_no_host_are_not_answered(src: str) -> None:
    decision = build_reply6(request(src=src))
    assert decision.packet is None
    assert decision.reason is not None
    assert "no host" in decision.reason


def test_other_messages_are_not_requests() -> None:
    reply = Icmp6Echo(ECHO_REPLY6, 1, 1, checksum=0).encode()
    assert build_reply6(Received6(reply, THEM, US, 64, 2, None)).packet is None
    with pytest.raises(DecodeError):
        build_reply6(Received6(b"\x80\x00", THEM, US, 64, 2, None))
