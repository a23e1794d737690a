"""``rawstack ping`` vs iputils ``ping``: RTT to the same host over the same veth.

Both ping node b's kernel (which answers echo requests itself) from node a at the same
interval, in alternating rounds so load from other jobs hits both alike. RTTs are the
``time=`` values each tool prints (iputils' format, microsecond resolution).
"""

from __future__ import annotations

from rawstack_harness.backends.linux.nodes import LinuxNode
from rawstack_harness.clients import rawstack_argv

from bench.context import Context
from bench.netns import B_ADDR, BenchError, harness_pair, missing_command
from bench.parse import parse_ping_times
from bench.report import Row, Section, not_measured
from bench.stats import Summary

TITLE = "ping RTT"
GROUP = "Peers"
METRICS = ("rawstack ping: RTT p50", "rawstack ping: RTT p99")
INTERVAL = 0.01
ROUNDS = 2
GOAL_US = 50.0


def _times(node: LinuxNode, argv: list[str], count: int) -> list[float]:
    done = node.run(argv, capture_output=True, text=True, timeout=count * INTERVAL + 60)
    times = parse_ping_times(done.stdout)
    if not times:
        raise BenchError(
            f"{' '.join(argv[:4])}: no replies (status {done.returncode}): "
            f"{(done.stderr or done.stdout).strip()[-200:]}"
        )
    return times


def run(ctx: Context) -> Section:
    count = max(min(ctx.opts.round_trips, 1000) // ROUNDS, 5)
    iputils = ["ping", "-n", "-c", str(count), "-i", str(INTERVAL), "-W", "1", B_ADDR]
    ours_argv = rawstack_argv("ping", "-c", str(count), "-i", str(INTERVAL), B_ADDR)
    why = missing_command("ping")
    ours: list[float] = []
    base: list[float] = []
    ours_why = why or ""
    with harness_pair(ctx.run, "ping") as net:
        client = net["a"]
        for _ in range(ROUNDS):
            base += _times(client, iputils, count)
            if why is None:
                try:
                    ours += _times(client, ours_argv, count)
                except BenchError as exc:
                    ours_why = str(exc)
    b = Summary.of(base).scaled(1000)
    baseline = [f"iputils ping {b.p50:.0f} us", f"iputils ping {b.p99:.0f} us"]
    goal = f"<= iputils p50 + {GOAL_US:.0f} us"
    if not ours:
        rows = [
            not_measured(METRICS[0], ours_why, goal, baseline[0]),
            not_measured(METRICS[1], ours_why, baseline=baseline[1]),
        ]
    else:
        o = Summary.of(ours).scaled(1000)
        rows = [
            Row(
                METRICS[0],
                o.p50,
                "us",
                f"{baseline[0]}: +{o.p50 - b.p50:.0f} us",
                goal,
                passed=o.p50 <= b.p50 + GOAL_US,
            ),
            Row(METRICS[1], o.p99, "us", baseline[1]),
        ]
    notes = [
        f"`{' '.join(iputils)}` and `rawstack ping -c {count} -i {INTERVAL} {B_ADDR}` in node a, "
        f"{ROUNDS} alternating rounds each ({len(base)} iputils and {len(ours)} rawstack replies); "
        "node b's kernel answers.",
    ]
    return Section(TITLE, GROUP, rows, notes)
