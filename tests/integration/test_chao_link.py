"""CHAO across the harness's veth pair: our client against our server, and hostile frames
built by scapy (an independent encoder) against ``rawstack chao serve``."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from _peer_logs import assert_drops_rate_limited
from rawstack_harness import Node
from rawstack_harness.clients import rawstack, rawstack_argv
from rawstack_harness.supervise import read_ready

pytestmark = pytest.mark.netns
PYTHON = sys.executable
IFACE = "eth0"  # pair()'s interface on both nodes

# How long a listener stays once the replies it expects are in, for one that should not
# come: the server answers in the order it reads, within milliseconds.
SETTLE = "0.3"

# Runs in node a: send the frames given as hex arguments on IFACE (EtherType 0x88B5
# only, like any CHAO peer), then print the CHAO frames that arrive within WAIT seconds
# (or, once EXPECT of them are in, SETTLE seconds more; EXPECT 0: always WAIT).
INJECT = r"""
import json, select, socket, sys, time
iface, wait, expect, settle = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
frames = sys.argv[5:]
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
            if expect and len(got) == expect:
                end = min(end, time.monotonic() + settle)
print(json.dumps(got))
"""

# Runs in node a: one request through rawstack's packet socket, then print the wall clock
# before the send, the kernel's arrival stamp of the reply and the wall clock after the read.
STAMPED = r"""
import json, select, sys, time
from rawstack.codec import CHAO_REQUEST, ETH_P_CHAO, Chao, Ethernet, mac_to_bytes
from rawstack.sockets.packet import open_packet
link = open_packet(sys.argv[1])
to = mac_to_bytes(sys.argv[2])
frame = Ethernet(to, link.mac, ETH_P_CHAO, Chao(CHAO_REQUEST, 1, b"when").encode()).encode()
sent = time.time_ns()
link.send(frame)
got = []
while not got and select.select([link], [], [], 5)[0]:
    time.sleep(0.05)  # read late on purpose: the stamp must not move with the read
    got = link.recv_frames_timed()
print(json.dumps({"timestamps": link.timestamps, "sent": sent, "read": time.time_ns(),
                  "stamps": [stamp for _, stamp in got]}))
"""


def serve(node: Node) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``rawstack chao serve`` on eth0 in ``node``, returned once its ready line is out."""
    proc = node.popen(
        rawstack_argv("chao", "serve", "--iface", IFACE),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, read_ready(proc, 1, 20)[0]


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM the server; its exit status and stderr."""
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err


def inject(net: Any, wait: str, frames: list[str], expect: int = 0) -> list[str]:
    argv = [PYTHON, "-c", INJECT, IFACE, wait, str(expect), SETTLE, *frames]
    out = net["a"].run(argv, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got: list[str] = json.loads(out.stdout)
    return got


def test_client_and_server_exchange_across_veth(net: Any) -> None:
    a, b = net["a"], net["b"]
    mac_b = b.mac(IFACE)
    server, ready = serve(b)
    assert ready == {"event": "ready", "peer": "chao", "iface": IFACE, "mac": mac_b}

    out = rawstack(
        a, "chao", "send", "--iface", IFACE, "--to", mac_b, "-c", "3", "-i", "0.05",
        "--json", "ping over chao",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert [r["seq"] for r in result["replies"]] == [1, 2, 3]
    assert {r["from"] for r in result["replies"]} == {mac_b}
    assert all(r["bytes"] == len("ping over chao") and r["rtt_ms"] > 0 for r in result["replies"])
    assert (result["sent"], result["lost"], result["duplicates"]) == (3, [], 0)

    text = rawstack(a, "chao", "send", "--iface", IFACE)  # broadcast, seed's message
    assert text.returncode == 0, text.stderr
    assert f"28 bytes from {mac_b}: seq=1" in text.stdout
    assert "Hello, custom chao protocol!" in text.stdout

    code, err = stop(server)
    assert code == 0
    assert '"answered": 4' in err


def test_reply_arrival_is_stamped_by_the_kernel(net: Any) -> None:
    server, _ = serve(net["b"])
    out = net["a"].run(
        [PYTHON, "-c", STAMPED, IFACE, net["b"].mac(IFACE)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen["timestamps"] is True
    (stamp,) = seen["stamps"]
    assert stamp is not None
    # After our send, and well before our deliberately late read.
    assert seen["sent"] < stamp < seen["read"] - 40_000_000
    assert stop(server)[0] == 0


def test_no_server_means_exit_1_and_bad_mac_exit_2(net: Any) -> None:
    a, mac_b = net["a"], net["b"].mac(IFACE)
    silent = rawstack(a, "chao", "send", "--iface", IFACE, "--to", mac_b, "--timeout", "0.3")
    assert silent.returncode == 1
    assert silent.stderr.strip().splitlines() == [
        f"rawstack: error: no CHAO reply on {IFACE} from {mac_b} within 0.3s"
    ]
    bad = rawstack(a, "chao", "send", "--iface", IFACE, "--to", "02:00:00:00:00")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1
    assert "bad MAC address" in bad.stderr
    nodev = rawstack(a, "chao", "serve", "--iface", "rsd-none")
    assert nodev.returncode == 2
    assert nodev.stderr.strip() == "rawstack: error: no such interface: rsd-none"


def test_scapy_frames_only_valid_requests_answered(net: Any) -> None:
    scapy_l2 = pytest.importorskip("scapy.layers.l2")
    scapy_packet = pytest.importorskip("scapy.packet")
    ether, raw = scapy_l2.Ether, scapy_packet.Raw
    mac_a, mac_b = net["a"].mac(IFACE), net["b"].mac(IFACE)

    def chao(seq: int, payload: bytes, *, magic: bytes = b"CHAO", version: int = 1,
             length: int | None = None, cut: int = 0) -> str:  # fmt: skip
        n = len(payload) if length is None else length
        body = magic + bytes([version, 1]) + seq.to_bytes(2, "big") + n.to_bytes(2, "big")
        body += payload
        pkt = ether(dst=mac_b, src=mac_a, type=0x88B5) / raw(load=body)
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
    server, _ = serve(net["b"])
    replies = [bytes.fromhex(h) for h in inject(net, "10", frames, expect=2)]

    decoded = [ether(r) for r in replies]
    assert [(p.src, p.dst, p.type) for p in decoded] == [(mac_b, mac_a, 0x88B5)] * 2
    bodies = [bytes(p.payload) for p in decoded]
    assert [b[6:8] for b in bodies] == [b"\x00\x01", b"\x00\x06"]
    assert bodies[0] == b"CHAO\x01\x02\x00\x01\x00\x06pad me"
    assert bodies[1].endswith(b"valid too")

    # Still serving after the garbage.
    again = rawstack(net["a"], "chao", "send", "--iface", IFACE, "--to", mac_b)
    assert again.returncode == 0, again.stderr
    code, err = stop(server)
    assert code == 0
    drops = [line for line in err.splitlines() if line.startswith("[chao] dropped ")]
    assert len(drops) == 4, err
    for needle in ("bad magic", "truncated header", "unknown version 2", "payload length 50"):
        assert any(needle in line for line in drops), (needle, drops)
    assert all(mac_a in line for line in drops)


def test_random_frames_never_stop_the_server(net: Any) -> None:
    import random

    mac_a, mac_b = net["a"].mac(IFACE), net["b"].mac(IFACE)
    rng = random.Random(1234)
    header = bytes.fromhex(mac_b.replace(":", "") + mac_a.replace(":", "")) + b"\x88\xb5"
    frames = [
        (header + b"CHAO" + rng.randbytes(rng.randrange(0, 40))).hex() for _ in range(100)
    ] + [(header + rng.randbytes(rng.randrange(0, 60))).hex() for _ in range(100)]
    server, _ = serve(net["b"])
    inject(net, "0.2", frames)
    after = rawstack(net["a"], "chao", "send", "--iface", IFACE, "--to", mac_b)
    assert after.returncode == 0, after.stderr
    assert server.poll() is None
    code, err = stop(server)
    assert code == 0
    assert "Traceback" not in err


def test_a_flood_of_bad_frames_is_logged_rate_limited_with_counts(net: Any) -> None:
    mac_a, mac_b = net["a"].mac(IFACE), net["b"].mac(IFACE)
    header = bytes.fromhex(mac_b.replace(":", "") + mac_a.replace(":", "")) + b"\x88\xb5"
    frames = [(header + b"CHA0" + bytes(12)).hex() for _ in range(300)]  # all bad magic
    server, _ = serve(net["b"])
    inject(net, "0.2", frames)
    # Answered after the flood: the server has read every frame before it.
    after = rawstack(net["a"], "chao", "send", "--iface", IFACE, "--to", mac_b)
    assert after.returncode == 0, after.stderr
    code, err = stop(server)
    assert code == 0
    assert_drops_rate_limited(err, "[chao] dropped ")


# Runs in node a: like INJECT (with an EXPECT), but the replies come back with the 802.1Q tag
# the kernel took out of the data and handed over as PACKET_AUXDATA (packet(7)), put back
# where it was on the wire. Written here from packet(7), independently of rawstack's socket
# layer. Bound to ETH_P_ALL: a socket bound to 0x88B5 gets tagged frames with the tag
# metadata already cleared.
INJECT_TAGGED = r"""
import json, select, socket, struct, sys, time
iface, wait, expect, settle = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
frames = sys.argv[5:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
s.setsockopt(263, 8, 1)  # SOL_PACKET, PACKET_AUXDATA
s.bind((iface, 3))  # ETH_P_ALL
for f in frames:
    s.send(bytes.fromhex(f))
got, end = [], time.monotonic() + wait
while time.monotonic() < end:
    if select.select([s], [], [], max(0, end - time.monotonic()))[0]:
        data, anc, _, addr = s.recvmsg(65536, 256)
        if addr[2] == socket.PACKET_OUTGOING or data[12:14] != b"\x88\xb5":
            continue
        for level, kind, aux in anc:
            if (level, kind) == (263, 8):
                status, _, _, _, _, tci, tpid = struct.unpack("@IIIHHHH", aux[:20])
                if status & 0x10:  # TP_STATUS_VLAN_VALID
                    data = data[:12] + struct.pack("!HH", tpid or 0x8100, tci) + data[12:]
        got.append(data.hex())
        if len(got) == expect:
            end = min(end, time.monotonic() + settle)
print(json.dumps(got))
"""


def test_replies_keep_the_requests_vlan_tag(net: Any) -> None:
    scapy_l2 = pytest.importorskip("scapy.layers.l2")
    scapy_packet = pytest.importorskip("scapy.packet")
    ether, dot1q, raw = scapy_l2.Ether, scapy_l2.Dot1Q, scapy_packet.Raw
    mac_a, mac_b = net["a"].mac(IFACE), net["b"].mac(IFACE)

    def request(seq: int, payload: bytes) -> bytes:
        return b"CHAO\x01\x01" + seq.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload

    frames = [
        ether(dst=mac_b, src=mac_a) / dot1q(vlan=100, prio=5, type=0x88B5) / raw(request(1, b"v")),
        ether(dst=mac_b, src=mac_a, type=0x88B5) / raw(request(2, b"untagged")),
        ether(dst="ff:ff:ff:ff:ff:ff", src=mac_a)
        / dot1q(vlan=7, type=0x88B5)
        / raw(request(3, b"b")),
    ]
    server, _ = serve(net["b"])
    out = net["a"].run(
        [PYTHON, "-c", INJECT_TAGGED, IFACE, "10", "3", SETTLE, *(bytes(f).hex() for f in frames)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    replies = sorted((ether(bytes.fromhex(h)) for h in json.loads(out.stdout)),
                     key=lambda p: bytes(p)[-12:])  # fmt: skip
    by_seq = {int.from_bytes(bytes(p.lastlayer())[6:8], "big"): p for p in replies}
    assert sorted(by_seq) == [1, 2, 3], [p.summary() for p in replies]
    tagged, plain, broadcast = by_seq[1], by_seq[2], by_seq[3]
    assert tagged.haslayer(dot1q)
    assert (tagged[dot1q].vlan, tagged[dot1q].prio, tagged[dot1q].type) == (100, 5, 0x88B5)
    assert (tagged.src, tagged.dst) == (mac_b, mac_a)
    assert bytes(tagged[dot1q].payload) == b"CHAO\x01\x02\x00\x01\x00\x01v"
    assert not plain.haslayer(dot1q)
    assert plain.type == 0x88B5
    assert broadcast[dot1q].vlan == 7
    assert stop(server)[0] == 0
