"""``rawstack craft``: seed 004, byte order per kernel, other kinds, and bad arguments.

Packets are checked against scapy (an independent parser) rather than against bytes this
code produced.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.utils import checksum as scapy_checksum

from rawstack.cli import main
from rawstack.quirks import ENV_OS, ENV_OSREL

SEED_004_ARGS = [
    "craft", "icmp-echo", "--src", "127.0.0.1", "--dst", "127.0.0.1",
    "--ip-id", "11", "--icmp-id", "0", "--seq", "0",
]  # fmt: skip
SEED_004_DARWIN = (
    "45 00 1c 00 00 0b 00 00 40 01 60 f0 7f 00 00 01 7f 00 00 01 08 00 f7 ff 00 00 00 00"
)
SEED_004_WIRE = (
    "45 00 00 1c 00 0b 00 00 40 01 7c d4 7f 00 00 01 7f 00 00 01 08 00 f7 ff 00 00 00 00"
)


def craft(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run ``rawstack <argv>`` in-process; the one output line, after checking exit 0."""
    assert main(list(argv)) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 1
    return lines[0]


def as_bytes(line: str) -> bytes:
    return bytes.fromhex(line)


@pytest.fixture(autouse=True)
def _no_env_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default target is this host unless a test sets RAWSTACK_OS itself."""
    monkeypatch.delenv(ENV_OS, raising=False)
    monkeypatch.delenv(ENV_OSREL, raising=False)


def test_seed_004_darwin(capsys: pytest.CaptureFixture[str]) -> None:
    assert craft(capsys, *SEED_004_ARGS, "--os", "darwin") == SEED_004_DARWIN


def test_seed_004_wire(capsys: pytest.CaptureFixture[str]) -> None:
    assert craft(capsys, *SEED_004_ARGS, "--os", "darwin", "--wire") == SEED_004_WIRE
    assert craft(capsys, *SEED_004_ARGS, "--wire") == SEED_004_WIRE


HOST_ORDER = "1c 00"
NETWORK_ORDER = "00 1c"


@pytest.mark.parametrize(
    ("target", "length"),
    [
        (["--os", "freebsd", "--osrel", "1003000"], HOST_ORDER),
        (["--os", "freebsd", "--osrel", "903000"], HOST_ORDER),
        (["--os", "freebsd", "--osrel", "1400000"], NETWORK_ORDER),
        # The byte order flips at 1100030 (nmap's boundary; see rawstack/quirks/_table.py).
        (["--os", "freebsd", "--osrel", "1100000"], HOST_ORDER),
        (["--os", "freebsd", "--osrel", "1100030"], NETWORK_ORDER),
        (["--os", "netbsd"], HOST_ORDER),
        (["--os", "dragonfly"], HOST_ORDER),
        (["--os", "darwin"], HOST_ORDER),
        (["--os", "ios"], HOST_ORDER),
        (["--os", "openbsd"], NETWORK_ORDER),
        (["--os", "linux"], NETWORK_ORDER),
        (["--os", "darwin", "--byteorder", "big"], NETWORK_ORDER),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_ip_len_byte_order_per_kernel(
    capsys: pytest.CaptureFixture[str], target: list[str], length: str
) -> None:
    line = craft(capsys, *SEED_004_ARGS, *target)
    assert line[6:11] == length
    # The checksum is valid over the bytes as written, whatever their order.
    assert scapy_checksum(as_bytes(line)[:20]) == 0


def test_ip_off_follows_the_kernel_too(capsys: pytest.CaptureFixture[str]) -> None:
    darwin = as_bytes(craft(capsys, *SEED_004_ARGS, "--df", "--os", "darwin"))
    linux = as_bytes(craft(capsys, *SEED_004_ARGS, "--df", "--os", "linux"))
    assert darwin[6:8] == b"\x00\x40"
    assert linux[6:8] == b"\x40\x00"


def test_linux_form_is_the_wire_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert craft(capsys, *SEED_004_ARGS, "--os", "linux") == SEED_004_WIRE


def test_default_target_comes_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_OS, "darwin")
    assert craft(capsys, *SEED_004_ARGS) == SEED_004_DARWIN


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="default target is this host")
def test_default_target_on_linux_is_the_wire(capsys: pytest.CaptureFixture[str]) -> None:
    assert craft(capsys, *SEED_004_ARGS) == SEED_004_WIRE


def test_icmp_echo_fields(capsys: pytest.CaptureFixture[str]) -> None:
    line = craft(
        capsys, "craft", "icmp-echo", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--ttl", "7",
        "--icmp-id", "4660", "--seq", "9", "--payload", "de ad be ef", "--wire",
    )  # fmt: skip
    pkt = IP(as_bytes(line))
    assert (pkt.src, pkt.dst, pkt.ttl, pkt.len) == ("10.0.0.1", "10.0.0.2", 7, 32)
    assert (pkt[ICMP].type, pkt[ICMP].id, pkt[ICMP].seq) == (8, 4660, 9)
    assert bytes(pkt[ICMP].payload) == bytes.fromhex("deadbeef")
    assert scapy_checksum(bytes(pkt[ICMP])) == 0


def test_icmp_echo_reply(capsys: pytest.CaptureFixture[str]) -> None:
    line = craft(capsys, *SEED_004_ARGS, "--reply", "--wire")
    assert IP(as_bytes(line))[ICMP].type == 0


def test_udp(capsys: pytest.CaptureFixture[str]) -> None:
    line = craft(
        capsys, "craft", "udp", "--src", "10.0.0.1", "--dst", "10.0.0.2",
        "--sport", "5353", "--dport", "9", "--payload", "68656c6c6f", "--os", "linux",
    )  # fmt: skip
    pkt = IP(as_bytes(line))
    assert (pkt.proto, pkt[UDP].sport, pkt[UDP].dport, pkt[UDP].len) == (17, 5353, 9, 13)
    assert bytes(pkt[UDP].payload) == b"hello"
    rebuilt = IP(as_bytes(line))
    del rebuilt[UDP].chksum
    assert IP(bytes(rebuilt))[UDP].chksum == pkt[UDP].chksum


def test_tcp_syn_with_options(capsys: pytest.CaptureFixture[str]) -> None:
    line = craft(
        capsys, "craft", "tcp-syn", "--src", "10.0.0.1", "--dst", "10.0.0.2",
        "--sport", "40000", "--dport", "80", "--seq", "1000", "--mss", "1460",
        "--sack-perm", "--timestamps", "77", "--wscale", "7", "--wire",
    )  # fmt: skip
    pkt = IP(as_bytes(line))
    tcp = pkt[TCP]
    assert (tcp.sport, tcp.dport, tcp.seq, tcp.flags, tcp.window) == (40000, 80, 1000, "S", 65535)
    options = dict((name, value) for name, value in tcp.options if name != "NOP")
    assert options == {"MSS": 1460, "SAckOK": b"", "Timestamp": (77, 0), "WScale": 7}
    assert tcp.dataofs * 4 == 40  # every option aligned, as Linux lays out a SYN
    rebuilt = IP(as_bytes(line))
    del rebuilt[TCP].chksum
    assert IP(bytes(rebuilt))[TCP].chksum == tcp.chksum


def test_tcp_syn_without_options(capsys: pytest.CaptureFixture[str]) -> None:
    line = craft(
        capsys, "craft", "tcp-syn", "--src", "10.0.0.1", "--dst", "10.0.0.2",
        "--sport", "1", "--dport", "2", "--os", "darwin",
    )  # fmt: skip
    raw = as_bytes(line)
    assert raw[2:4] == (40).to_bytes(2, "little")
    assert IP(raw[:2] + (40).to_bytes(2, "big") + raw[4:])[TCP].options == []


CHAO_SRC = "02:00:00:00:00:01"


def test_chao_frame(capsys: pytest.CaptureFixture[str]) -> None:
    line = craft(capsys, "craft", "chao", "--src-mac", CHAO_SRC, "--seq", "258", "hi")
    frame = as_bytes(line)
    assert frame[:6] == b"\xff" * 6
    assert frame[6:12] == bytes.fromhex("020000000001")
    assert frame[12:14] == b"\x88\xb5"
    assert frame[14:18] == b"CHAO"
    assert frame.endswith(b"hi")
    assert (258).to_bytes(2, "big") in frame[18:]


def test_chao_hex_payload_equals_text(capsys: pytest.CaptureFixture[str]) -> None:
    text = craft(capsys, "craft", "chao", "--src-mac", CHAO_SRC, "--type", "reply", "hi")
    hexed = craft(
        capsys, "craft", "chao", "--src-mac", CHAO_SRC, "--type", "reply", "--payload", "6869"
    )
    assert text == hexed


def test_chao_request_and_reply_differ_only_in_type(capsys: pytest.CaptureFixture[str]) -> None:
    req = as_bytes(craft(capsys, "craft", "chao", "--src-mac", CHAO_SRC))
    rep = as_bytes(craft(capsys, "craft", "chao", "--src-mac", CHAO_SRC, "--type", "reply"))
    assert [i for i in range(len(req)) if req[i] != rep[i]] == [19]


BAD_ARGS = [
    (["--src", "300.1.1.1"], "--src"),
    (["--dst", "1.2.3"], "--dst"),
    (["--payload", "abc"], "odd number of hex digits"),
    (["--payload", "zz"], "not hex"),
    (["--os", "plan9"], "unknown os 'plan9'"),
    (["--os", "darwin", "--osrel", "1400000"], "needs --os freebsd"),
    (["--os", "linux", "--osrel", "1400000"], "needs --os freebsd"),
    (["--os", "freebsd"], "needs --osrel"),
    (["--os", "freebsd", "--osrel", "-5"], "non-negative"),
    (["--ttl", "256"], "--ttl 256 is out of range"),
    (["--ip-id", "65536"], "--ip-id 65536 is out of range"),
    (["--seq", "70000"], "--seq 70000 is out of range"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_ARGS, ids=[m for _, m in BAD_ARGS])
def test_bad_icmp_arguments(
    capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    argv = [*SEED_004_ARGS, "--os", "darwin", *extra]
    if "--os" in extra:
        argv = [*SEED_004_ARGS, *extra]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("rawstack: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["udp", "--sport", "70000", "--dport", "1"], "--sport 70000 is out of range"),
        (["udp", "--sport", "1", "--dport", "-1"], "--dport -1 is out of range"),
        (["tcp-syn", "--sport", "1", "--dport", "2", "--wscale", "15"], "--wscale 15"),
        (["tcp-syn", "--sport", "1", "--dport", "2", "--mss", "65536"], "--mss 65536"),
    ],
)
def test_bad_transport_arguments(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    common = ["--src", "10.0.0.1", "--dst", "10.0.0.2", "--os", "linux"]
    assert main(["craft", *argv, *common]) == 2
    out, err = capsys.readouterr()
    assert (out, err.count("\n")) == ("", 1)
    assert message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--src-mac", "02:00:00:00:00"], "--src-mac"),
        (["--src-mac", CHAO_SRC, "--dst-mac", "zz:00:00:00:00:00"], "--dst-mac"),
        (["--src-mac", CHAO_SRC, "--payload", "6869", "hi"], "not both"),
        (["--src-mac", CHAO_SRC, "--payload", "686"], "odd number"),
        (["--src-mac", CHAO_SRC, "--seq", "65536"], "--seq 65536"),
    ],
)
def test_bad_chao_arguments(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["craft", "chao", *argv]) == 2
    out, err = capsys.readouterr()
    assert (out, err.count("\n")) == ("", 1)
    assert message in err


@pytest.mark.parametrize(
    "argv",
    [
        ["craft"],
        ["craft", "icmp-echo", "--dst", "127.0.0.1"],
        ["craft", "udp", "--src", "1.1.1.1", "--dst", "1.1.1.2", "--sport", "x", "--dport", "1"],
        [*SEED_004_ARGS, "--byteorder", "middle"],
    ],
)
def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def _console_script() -> Path:
    script = Path(sysconfig.get_path("scripts")) / "rawstack"
    if not script.exists():
        pytest.skip(f"the rawstack console script is not installed at {script}")
    return script


def test_console_script_reproduces_seed_004() -> None:
    result = subprocess.run(
        [str(_console_script()), *SEED_004_ARGS, "--os", "darwin"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (result.returncode, result.stdout, result.stderr) == (0, SEED_004_DARWIN + "\n", "")


def test_console_script_bad_address_is_one_line_exit_2() -> None:
    result = subprocess.run(
        [str(_console_script()), "craft", "udp", "--src", "300.1.1.1", "--dst", "127.0.0.1",
         "--sport", "1", "--dport", "2", "--os", "linux"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "300.1.1.1" in result.stderr


def checked(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, dict[str, str]]:
    """``craft ... --check``: the packet line and each kernel's verdict by label."""
    assert main([*argv, "--check"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    packet, *rows = out.splitlines()
    verdicts = dict(line.split(": ", 1) for line in rows)
    return packet, {label.strip(): verdict.strip() for label, verdict in verdicts.items()}


def test_check_names_the_kernels_that_refuse_a_macos_header(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Seed 004's macOS bytes (ip_len 28 in host order): the network-order kernels read
    # 7168 and refuse it; every host-order kernel and Linux take it.
    packet, verdicts = checked(capsys, *SEED_004_ARGS, "--os", "darwin")
    assert packet == SEED_004_DARWIN
    refused = {label for label, verdict in verdicts.items() if verdict != "accepted"}
    assert refused == {"FreeBSD 11.0", "FreeBSD >= 11.1", "OpenBSD"}
    assert verdicts["OpenBSD"] == "EINVAL (ip_len 7168 is not the datagram's 28 bytes)"
    assert verdicts["FreeBSD 11.0"] == "EINVAL (ip_len 7168 exceeds the 28-byte datagram)"
    assert len(verdicts) == 10


def test_check_with_a_short_ip_len_and_an_oversize_packet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["craft", "icmp-echo", "--src", "10.0.0.1", "--dst", "10.0.0.2", "--wire"]
    _, short = checked(capsys, *base, "--ip-len", "27")  # one byte short of 28
    # Host-order readers see 0x1b00 = 6912 (too long for all of them), exact network-order
    # readers see 27 != 28; only Linux (rewrites it) and FreeBSD 11.0 (">" only) accept.
    assert {k for k, v in short.items() if v == "accepted"} == {"Linux", "FreeBSD 11.0"}
    payload = "00" * 1473
    _, big = checked(capsys, *base, "--payload", payload, "--mtu", "1500")
    assert big["Linux"] == "EMSGSIZE (1501 bytes exceed the device MTU 1500)"
    assert big["FreeBSD >= 11.1"] == "accepted"  # the BSDs fragment it
    _, df = checked(capsys, *base, "--payload", payload, "--df")
    assert df["OpenBSD"].startswith("EMSGSIZE (Don't Fragment set")
