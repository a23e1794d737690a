"""CHAO round trips: ``rawstack chao send`` against ``rawstack chao serve`` over the veth.

There is no other CHAO implementation to compare with, so the same-run reference is the
UDP echo round trip between the same nodes with our own UDP peer and client (``rawstack udp
send``): the cost of one user-space hop each way over the same veth, through the kernel's
UDP stack instead of a packet socket.
"""

from __future__ import annotations

import json

from rawstack_harness.backends.linux.nodes import LinuxNode
from rawstack_harness.clients import rawstack_argv

from bench.context import Context
from bench.netns import (
    B_ADDR,
    BenchError,
    harness_pair,
    missing_command,
    start_ready,
)
from bench.report import Row, Section, not_measured
from bench.stats import Summary

TITLE = "CHAO round trips"
GROUP = "Peers"
METRICS = ("CHAO RTT p50", "CHAO RTT p99")
INTERVAL = 0.005  # well above one RTT, so one request is in flight at a time
UDP_PORT = 9000


def _client(node: LinuxNode, argv: list[str], timeout: float) -> dict[str, object]:
    done = node.run(argv, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not done.stdout.strip():
        raise BenchError(f"{' '.join(argv[3:6])} failed: {done.stderr.strip()[-200:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _rtts(result: dict[str, object]) -> list[float]:
    replies = result.get("replies")
    if not isinstance(replies, list) or not replies:
        raise BenchError("no replies")
    return [float(r["rtt_ms"]) * 1000 for r in replies]


def run(ctx: Context) -> Section:
    for words in (("chao", "serve"), ("chao", "send")):
        why = missing_command(*words)
        if why:
            return Section(TITLE, GROUP, [not_measured(m, why) for m in METRICS])
    count = min(ctx.opts.round_trips, 1000)
    timeout = count * INTERVAL + 60
    with harness_pair(ctx.run, "chao") as net:
        client, server = net["a"], net["b"]
        _, ready = start_ready(
            server,
            rawstack_argv("chao", "serve", "--iface", "eth0"),
            ["chao"],
            ctx.path("chao.log"),
        )
        mac = str(ready["chao"].get("mac") or server.mac("eth0"))
        argv = rawstack_argv(
            "chao",
            "send",
            "--iface",
            "eth0",
            "--to",
            mac,
            "-c",
            str(count),
            "-i",
            str(INTERVAL),
            "--timeout",
            "1",
            "--json",
        )
        chao = _client(client, argv, timeout)
        server.stop_processes()
        udp: Summary | None = None
        udp_why = ""
        try:
            start_ready(
                server,
                rawstack_argv("udp", "serve", "--port", str(UDP_PORT)),
                ["udp"],
                ctx.path("chao-udp.log"),
            )
            udp_argv = rawstack_argv(
                "udp",
                "send",
                B_ADDR,
                str(UDP_PORT),
                "-c",
                str(count),
                "-i",
                str(INTERVAL),
                "--json",
            )
            udp = Summary.of(_rtts(_client(client, udp_argv, timeout)))
        except (BenchError, OSError, ValueError) as exc:
            udp_why = str(exc)
        finally:
            server.stop_processes()
    c = Summary.of(_rtts(chao))
    lost = chao.get("lost")
    n_lost = len(lost) if isinstance(lost, list) else 0
    rows = [
        Row(
            METRICS[0],
            c.p50,
            "us",
            f"UDP echo, same nodes: {udp.p50:.0f} us" if udp else f"UDP not measured: {udp_why}",
        ),
        Row(
            METRICS[1],
            c.p99,
            "us",
            f"UDP echo, same nodes: {udp.p99:.0f} us" if udp else f"UDP not measured: {udp_why}",
        ),
    ]
    notes = [
        f"`rawstack chao send --iface eth0 --to <b's MAC> -c {count} -i {INTERVAL} --json` in "
        f"node a against `rawstack chao serve --iface eth0` in node b: {c.n} replies, "
        f"{n_lost} lost; RTTs as the client reports them.",
        f"Reference: `rawstack udp send 10.0.0.2 {UDP_PORT} -c {count} -i {INTERVAL}` against "
        "`rawstack udp serve` on the same pair. No goal was set for CHAO in the issue.",
    ]
    return Section(TITLE, GROUP, rows, notes)
