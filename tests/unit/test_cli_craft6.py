"""``rawstack craft icmp6-echo|udp6|tcp6-syn``: checked against scapy's dissection and
checksums, per target kernel (the whole packet where the kernel takes a hand-built IPv6
header, the upper-layer bytes where it builds the header itself)."""

from __future__ import annotations

from typing import Any

import pytest
from scapy.layers.inet import TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6

from rawstack.cli import main
from rawstack.quirks import ENV_OS, ENV_OSREL

A, B = "fd00::1", "fd00::2"


@pytest.fixture(autouse=True)
def _no_env_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_OS, raising=False)
    monkeypatch.delenv(ENV_OSREL, raising=False)


def craft(capsys: pytest.CaptureFixture[str], *argv: str) -> bytes:
    assert main(["craft", *argv]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return bytes.fromhex(out.strip())


def _scapy_checksum(packet: Any, layer: type) -> int:
    fresh = packet.copy()
    field = "cksum" if layer in (ICMPv6EchoRequest, ICMPv6EchoReply) else "chksum"
    delattr(fresh[layer], field)
    return int(getattr(IPv6(bytes(fresh))[layer], field))


def test_icmp6_echo_for_linux_is_the_whole_packet(capsys: pytest.CaptureFixture[str]) -> None:
    wire = craft(
        capsys, "icmp6-echo", "--src", A, "--dst", B, "--icmp-id", "5", "--seq", "1",
        "--payload", "6869", "--hop-limit", "9", "--tclass", "32", "--flow-label", "77",
        "--os", "linux",
    )  # fmt: skip
    pkt = IPv6(wire)
    assert (pkt.src, pkt.dst, pkt.hlim, pkt.tc, pkt.fl, pkt.plen) == (A, B, 9, 32, 77, 10)
    echo = pkt[ICMPv6EchoRequest]
    assert (echo.id, echo.seq, bytes(echo.data)) == (5, 1, b"hi")
    assert echo.cksum == _scapy_checksum(pkt, ICMPv6EchoRequest)


def test_the_bsds_get_the_upper_layer_bytes_alone(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["icmp6-echo", "--src", A, "--dst", B, "--icmp-id", "5", "--reply"]
    whole = craft(capsys, *args, "--os", "freebsd", "--wire")
    body = craft(capsys, *args, "--os", "freebsd")
    assert body == whole[40:]  # the kernel builds the IPv6 header there (RFC 3542)
    assert IPv6(whole)[ICMPv6EchoReply].id == 5
    assert craft(capsys, *args, "--os", "linux") == whole


def test_udp6_and_tcp6_syn_checksums_cover_the_ipv6_pseudo_header(
    capsys: pytest.CaptureFixture[str],
) -> None:
    udp = IPv6(craft(capsys, "udp6", "--src", A, "--dst", B, "--sport", "1", "--dport", "53",
                     "--payload", "00ff", "--wire"))  # fmt: skip
    assert (udp[UDP].sport, udp[UDP].dport, bytes(udp[UDP].payload)) == (1, 53, b"\x00\xff")
    assert udp[UDP].chksum == _scapy_checksum(udp, UDP)
    syn = IPv6(
        craft(
            capsys,
            "tcp6-syn",
            "--src",
            A,
            "--dst",
            B,
            "--sport",
            "40000",
            "--dport",
            "80",
            "--seq",
            "7",
            "--mss",
            "1440",
            "--wscale",
            "7",
            "--wire",
        )
    )
    assert (syn[TCP].flags, syn[TCP].seq, syn.nh) == ("S", 7, 6)
    assert [o for o in syn[TCP].options if o[0] != "NOP"] == [("MSS", 1440), ("WScale", 7)]
    assert syn[TCP].chksum == _scapy_checksum(syn, TCP)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["udp6", "--src", "10.0.0.1", "--dst", B, "--sport", "1", "--dport", "2"], "--src"),
        (["icmp6-echo", "--src", A, "--dst", B, "--hop-limit", "256"], "--hop-limit"),
        (["icmp6-echo", "--src", A, "--dst", B, "--flow-label", "1048576"], "--flow-label"),
        (["icmp6-echo", "--src", A, "--dst", B, "--os", "plan9"], "unknown os"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["craft", *argv]) == 2
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1
    assert message in err
