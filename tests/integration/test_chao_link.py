"""CHAO across a veth pair: our client against our server, and hostile frames built by
scapy (an independent encoder) against ``rawstack chao serve``."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from _netns_pair import PYTHON, NetnsPair, netns_pair, stop, wait_ready

# Runs in namespace a: send the frames given as hex arguments on IFACE (EtherType 0x88B5
# only, like any CHAO peer), then print the CHAO frames that arrive within WAIT seconds.
INJECT = r"""
import json, select, socket, sys, time
iface, wait, frames = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.bind((iface, 0x88B5))
for f in frames:
    s.send(bytes.fromhex(f))
got, end = [], time.monotonic() + wait
while time.monotonic() < end:
    if select.select([s], [], [], max(0, end - time.monotonic()))[0]:
        data, addr = s.recvfrom(65536)
        if addr[2] != socket.PACKET_OUTGOING:
            got.append(data.hex())
print(json.dumps(got))
"""


@pytest.fixture
def pair() -> Iterator[NetnsPair]:
    """A fresh namespace pair per test."""
    with netns_pair() as p:
        yield p


def test_client_and_server_exchange_across_veth(pair: NetnsPair) -> None:
    server = pair.b.popen([PYTHON, "-m", "rawstack", "chao", "serve", "--iface", pair.iface_b])
    (ready,) = wait_ready(server)
    assert ready == {"event": "ready", "peer": "chao", "iface": pair.iface_b, "mac": pair.mac_b}

    out = pair.a.rawstack(
        "chao", "send", "--iface", pair.iface_a, "--to", pair.mac_b, "-c", "3", "-i", "0.05",
        "--json", "ping over chao",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["seq"] for r in result["replies"]] == [1, 2, 3]
    assert {r["from"] for r in result["replies"]} == {pair.mac_b}
    assert all(r["bytes"] == len("ping over chao") and r["rtt_ms"] > 0 for r in result["replies"])
    assert (result["sent"], result["lost"], result["duplicates"]) == (3, [], 0)

    text = pair.a.rawstack("chao", "send", "--iface", pair.iface_a)  # broadcast, seed's message
    assert text.returncode == 0, text.stderr
    assert f"28 bytes from {pair.mac_b}: seq=1" in text.stdout
    assert "Hello, custom chao protocol!" in text.stdout

    code, _, err = stop(server)
    assert code == 0
    assert '"answered": 4' in err


def test_no_server_means_exit_1_and_bad_mac_exit_2(pair: NetnsPair) -> None:
    silent = pair.a.rawstack(
        "chao", "send", "--iface", pair.iface_a, "--to", pair.mac_b, "--timeout", "0.3"
    )
    assert silent.returncode == 1
    assert silent.stderr.strip().splitlines() == [
        f"rawstack: error: no CHAO reply on {pair.iface_a} from {pair.mac_b} within 0.3s"
    ]
    bad = pair.a.rawstack("chao", "send", "--iface", pair.iface_a, "--to", "02:00:00:00:00")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "bad MAC address" in bad.stderr
    nodev = pair.a.rawstack("chao", "serve", "--iface", "rsd-none")
    assert nodev.returncode == 2
    assert nodev.stderr.strip() == "rawstack: error: no such interface: rsd-none"


def test_scapy_frames_only_valid_requests_answered(pair: NetnsPair) -> None:
    scapy_l2 = pytest.importorskip("scapy.layers.l2")
    scapy_packet = pytest.importorskip("scapy.packet")
    ether, raw = scapy_l2.Ether, scapy_packet.Raw

    def chao(seq: int, payload: bytes, *, magic: bytes = b"CHAO", version: int = 1,
             length: int | None = None, cut: int = 0) -> str:  # fmt: skip
        n = len(payload) if length is None else length
        body = magic + bytes([version, 1]) + seq.to_bytes(2, "big") + n.to_bytes(2, "big")
        body += payload
        pkt = ether(dst=pair.mac_b, src=pair.mac_a, type=0x88B5) / raw(load=body)
        wire = bytes(pkt)
        return (wire[:-cut] if cut else wire).hex()

    padded = bytes.fromhex(chao(1, b"pad me")).ljust(60, b"\x00").hex()
    frames = [
        padded,  # valid, padded to the Ethernet minimum: answered with the unpadded payload
        chao(2, b"bad magic", magic=b"CHA0"),
        chao(3, b"truncated", cut=12),  # header cut: fewer than 10 CHAO bytes remain
        chao(4, b"version 2", version=2),
        chao(5, b"short", length=50),  # length larger than the data
        chao(6, b"valid too"),
    ]
    server = pair.b.popen([PYTHON, "-m", "rawstack", "chao", "serve", "--iface", pair.iface_b])
    wait_ready(server)
    out = pair.a.run([PYTHON, "-c", INJECT, pair.iface_a, "1.0", *frames])
    replies = [bytes.fromhex(h) for h in json.loads(out.stdout)]

    decoded = [ether(r) for r in replies]
    assert [(p.src, p.dst, p.type) for p in decoded] == [(pair.mac_b, pair.mac_a, 0x88B5)] * 2
    bodies = [bytes(p.payload) for p in decoded]
    assert [b[6:8] for b in bodies] == [b"\x00\x01", b"\x00\x06"]
    assert bodies[0] == b"CHAO\x01\x02\x00\x01\x00\x06pad me"
    assert bodies[1].endswith(b"valid too")

    # Still serving after the garbage.
    again = pair.a.rawstack("chao", "send", "--iface", pair.iface_a, "--to", pair.mac_b)
    assert again.returncode == 0, again.stderr
    code, _, err = stop(server)
    assert code == 0
    drops = [line for line in err.splitlines() if line.startswith("[chao] dropped ")]
    assert len(drops) == 4, err
    for needle in ("bad magic", "truncated header", "unknown version 2", "payload length 50"):
        assert any(needle in line for line in drops), (needle, drops)
    assert all(pair.mac_a in line for line in drops)


def test_random_frames_never_stop_the_server(pair: NetnsPair) -> None:
    import random

    rng = random.Random(1234)
    header = bytes.fromhex(pair.mac_b.replace(":", "") + pair.mac_a.replace(":", "")) + b"\x88\xb5"
    frames = [
        (header + b"CHAO" + rng.randbytes(rng.randrange(0, 40))).hex() for _ in range(100)
    ] + [(header + rng.randbytes(rng.randrange(0, 60))).hex() for _ in range(100)]
    server = pair.b.popen([PYTHON, "-m", "rawstack", "chao", "serve", "--iface", pair.iface_b])
    wait_ready(server)
    pair.a.run([PYTHON, "-c", INJECT, pair.iface_a, "0.2", *frames])
    after = pair.a.rawstack("chao", "send", "--iface", pair.iface_a, "--to", pair.mac_b)
    assert after.returncode == 0, after.stderr
    assert server.poll() is None
    code, _, err = stop(server)
    assert code == 0
    assert "Traceback" not in err
