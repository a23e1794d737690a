"""The HTTP server's memory under a client that pipelines and never reads (issue: 400 MB
pushed once took the server's RSS from 15 to 395 MB).

The client, in node a, opens one connection, pipelines GETs without reading a byte, sends
one more with ``Connection: close``, then pushes junk until 400 MB are out, the server
stops taking them for 3 s, or it closes. Twice: with a 4 KiB receive buffer (the answers
back up: the server must stop reading), and with the default one (the kernel absorbs the
answers: the server reads and drops during its lingering close, so the client really
pushes). Each server runs alone in node b; its RSS is read from ``/proc/PID/status``
before the attack and its high-water mark (``VmHWM``) after. nginx under the same client is
the same-run baseline.
"""

from __future__ import annotations

import errno
import socket
import time
from dataclasses import dataclass
from typing import Any

from rawstack_harness import Node
from rawstack_harness.clients import rawstack_argv

from bench.bench_http import PORT, nginx_conf
from bench.context import Context
from bench.netns import B_ADDR, BenchError, harness_pair, start_ready, wait_tcp
from bench.report import Row, Section, not_measured

TITLE = "HTTP server memory under a pipelining client that never reads"
GROUP = "Peers"
SERVERS = ("rawstack http serve", "nginx, 1 worker")
MODES = (("answers backed up", 4096), ("answers absorbed", 0))
METRICS = tuple(f"{server}, {mode}: RSS growth" for server in SERVERS for mode, _ in MODES)
PIPELINED = 3000
PUSH_BYTES = 400 << 20
STALL_SECONDS = 3.0


@dataclass
class Attack:
    """What one server went through."""

    rss_before_kib: int
    hwm_after_kib: int
    pushed: int
    seconds: float
    ended: str

    @property
    def growth_mib(self) -> float:
        return (self.hwm_after_kib - self.rss_before_kib) / 1024


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} in /proc/{pid}/status")


def attack(client: Node, pid: int, rcvbuf: int) -> Attack:
    """Pipeline, then push; the server's RSS before and its peak after."""
    before = _status_kib(pid, "VmRSS")
    sock = client.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    pushed, ended, start = 0, "all pushed", time.monotonic()
    try:
        sock.settimeout(10)
        sock.connect((B_ADDR, PORT))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: b\r\n\r\n" * PIPELINED)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        sock.setblocking(False)
        junk = memoryview(b"x" * 65536)
        last = time.monotonic()
        while pushed < PUSH_BYTES:
            try:
                pushed += sock.send(junk)
                last = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - last > STALL_SECONDS:
                    ended = f"server stopped reading ({STALL_SECONDS:g} s without progress)"
                    break
                time.sleep(0.005)
            except OSError as exc:
                ended = f"server closed ({errno.errorcode.get(exc.errno or 0, exc)})"
                break
    finally:
        sock.close()
    seconds = time.monotonic() - start
    return Attack(before, _status_kib(pid, "VmHWM"), pushed, seconds, ended)


def run(ctx: Context) -> Section:
    www = ctx.path("www")
    www.mkdir(exist_ok=True)
    (www / "index.html").write_bytes(b"<h1>hello world</h1>")
    ctx.path("nginx.conf").write_text(nginx_conf(ctx.tmp, PORT), encoding="utf-8")
    results: dict[str, Attack] = {}
    failures: dict[str, str] = {}
    with harness_pair(ctx.run, "httpmem") as net:
        client, server = net["a"], net["b"]
        for name in METRICS:
            try:
                log = ctx.path(f"httpmem-{len(results) + len(failures)}.log")
                rcvbuf = next(size for mode, size in MODES if f", {mode}:" in name)
                if name.startswith(SERVERS[0]):
                    proc: Any
                    proc, _ = start_ready(
                        server, rawstack_argv("http", "serve", "--port", str(PORT)), ["http"], log
                    )
                else:
                    argv = ["nginx", "-p", str(ctx.tmp), "-e", str(log), "-c"]
                    with open(log, "ab") as err:
                        proc = server.popen(
                            [*argv, str(ctx.path("nginx.conf"))], stdout=err, stderr=err
                        )
                    wait_tcp(client, B_ADDR, PORT, proc, timeout=20)
                results[name] = attack(client, proc.pid, rcvbuf)
            except (BenchError, OSError) as exc:
                failures[name] = str(exc)
            finally:
                server.stop_processes()
    return Section(TITLE, GROUP, _rows(results, failures), _notes(results))


def _rows(results: dict[str, Attack], failures: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
    goal = "<= 16 MiB while up to 400 MB are offered"
    half = len(MODES)
    for ours_name, nginx_name in zip(METRICS[:half], METRICS[half:]):
        ours, nginx = results.get(ours_name), results.get(nginx_name)
        if ours is None:
            why = failures.get(ours_name, "no result")
            rows.append(not_measured(ours_name, why, goal=goal))
            continue
        base = f"nginx +{nginx.growth_mib:.1f} MiB" if nginx else "nginx not measured"
        base += f"; {ours.pushed / 1e6:.0f} MB pushed"
        rows.append(Row(ours_name, ours.growth_mib, "MiB", base, goal, ours.growth_mib <= 16))
    for name in METRICS[half:]:
        res = results.get(name)
        if res is None:
            rows.append(not_measured(name, failures.get(name, "no result")))
        else:
            rows.append(Row(name, res.growth_mib, "MiB", f"{res.pushed / 1e6:.0f} MB pushed"))
    return rows


def _notes(results: dict[str, Attack]) -> list[str]:
    notes = [
        f"Client in node a: one connection (SO_RCVBUF 4 KiB or the default), {PIPELINED} pipelined "
        "`GET /` never read, one `GET /` with `Connection: close`, then 64 KiB sends of junk "
        f"until {PUSH_BYTES >> 20} MiB are out, {STALL_SECONDS:g} s pass without progress or "
        "the server closes. Growth = VmHWM after - VmRSS before, of the server process.",
    ]
    for name, res in results.items():
        notes.append(
            f"{name}: RSS {res.rss_before_kib / 1024:.1f} MiB before, peak "
            f"{res.hwm_after_kib / 1024:.1f} MiB; {res.pushed / 1e6:.0f} MB pushed in "
            f"{res.seconds:.1f} s; ended: {res.ended}."
        )
    return notes
