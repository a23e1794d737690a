"""``netns-harness demo|up|down|exec|status|clean``: the harness from a shell.

Exit status as in :mod:`rawstack.errors`: 0 ok, 1 failed, 2 bad input (a bad spec names the
field, or an OS with no backend), 77 not root.

The backend is :func:`rawstack_harness.backends.select_backend`'s: Linux namespaces or FreeBSD VNET
jails. ``up``/``down`` need a backend that can keep topologies (``capabilities.keep``: the
Linux one for now); elsewhere they say so. Every failure is a
:class:`rawstack_harness.errors.HarnessError` (or another ``RawstackError``): one line, its code.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rawstack.errors import EXIT_FAILED, EXIT_USAGE, RawstackError, UsageError

if TYPE_CHECKING:
    from rawstack_harness.backends import Backend, Capabilities, Network, Peer, Run
    from rawstack_harness.clients import Exchange

PROG = "netns-harness"


def _backend() -> Backend:
    from rawstack_harness.backends import select_backend

    return select_backend()


def _root(args: argparse.Namespace) -> str:
    return str(args.run_dir or _backend().default_root)


def _need_root() -> None:
    from rawstack_harness.errors import NotPrivileged

    reason = _backend().missing_requirement()
    if reason:
        raise NotPrivileged(reason)


def _need_keep(command: str) -> None:
    from rawstack_harness.errors import Unsupported

    backend = _backend()
    if not backend.capabilities.keep:
        raise Unsupported(
            f"{command} is not supported on the {backend.name} backend yet (kept topologies "
            "need a keeper process; only the Linux one exists)"
        )


@dataclass(frozen=True)
class DemoExchange:
    """One row of the demo: a client run in ``src`` against ``dst``, and who answers it."""

    protocol: str
    src: str
    dst: str
    direction: str
    server: str
    version: int = 4  # the IP version the client speaks (6: to the node's IPv6 address)

    @property
    def label(self) -> str:
        """The protocol column: ``icmp6``, ``http6``, ``udp6`` for the IPv6 rows."""
        return f"{self.protocol}6" if self.version == 6 else self.protocol


# The line3 rows go through r: the peers that route (CHAO is one link only, UDP adds nothing).
LINE3_PEERS = ("http", "icmp")
# The IPv6 rows, on the pair and through r: every peer that speaks IP.
IPV6_PEERS = ("icmp", "http", "udp")


def demo_plan(caps: Capabilities) -> tuple[list[DemoExchange], ...]:
    """The demo's rows: (pair before serve-all, pair with serve-all, line3 with serve-all).

    Before serve-all turns the kernel's echo off, rawstack's ping runs against the kernel;
    where the kernel is the ICMP peer anyway the later rows show it, so there are none.
    """
    from rawstack_harness.backends import KERNEL, RAWSTACK
    from rawstack_harness.clients import PROTOCOLS

    both = (("a", "b"), ("b", "a"))
    before = [
        DemoExchange("icmp", s, d, f"{s}->{d}", KERNEL)
        for s, d in both
        if caps.icmp_responder == RAWSTACK
    ]
    served = caps.servers(PROTOCOLS)
    with_peers = [DemoExchange(p, s, d, f"{s}->{d}", served[p]) for s, d in both for p in PROTOCOLS]
    with_peers += [
        DemoExchange(p, s, d, f"{s}->{d}", served[p], 6) for s, d in both for p in IPV6_PEERS
    ]
    routed = [
        DemoExchange(p, s, d, f"{s}->r->{d}", caps.servers(LINE3_PEERS)[p])
        for s, d in both
        for p in LINE3_PEERS
    ]
    routed += [
        DemoExchange(p, s, d, f"{s}->r->{d}", served[p], 6) for s, d in both for p in IPV6_PEERS
    ]
    return before, with_peers, routed


def _demo_rows(
    run: Run, on_row: Callable[[Exchange], None] = lambda row: None
) -> tuple[list[Exchange], dict[str, float]]:
    """Build a pair and a line3, run every rawstack client both ways (``on_row`` sees each
    row as it is done); tear both down."""
    from rawstack_harness.clients import try_client
    from rawstack_harness.supervise import start_peers
    from rawstack_harness.topology import line3, pair

    backend = _backend()
    before, with_peers, routed = demo_plan(backend.capabilities)
    rows: list[Exchange] = []

    def run_rows(net: Network, plan: list[DemoExchange], procs: Mapping[str, Peer]) -> None:
        for x in plan:
            ready = procs[x.dst].ready if x.dst in procs else None
            row = try_client(
                x.protocol,
                net[x.src],
                net[x.dst],
                ready=ready,
                direction=x.direction,
                server=x.server,
                host=net[x.dst].addr(x.version, "eth0"),
            )
            rows.append(replace(row, protocol=x.label))
            on_row(rows[-1])

    t0 = time.monotonic()
    net = backend.build(pair("demo"), run)
    timings = {"setup_s": time.monotonic() - t0}
    try:
        a, b = net["a"], net["b"]
        run_rows(net, before, {})
        t1 = time.monotonic()
        procs = start_peers(
            [(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")], log_dir=run.dir, backend=backend
        )
        timings["ready_s"] = time.monotonic() - t1
        run_rows(net, with_peers, {"a": procs[0], "b": procs[1]})
    finally:
        net.destroy()
    net = backend.build(line3("demo3"), run)
    try:
        a, b, r = net["a"], net["b"], net["r"]
        procs = start_peers(
            [(a, "eth0", r, "eth0"), (b, "eth0", r, "eth1")],
            tuple(dict.fromkeys(LINE3_PEERS + IPV6_PEERS)),
            log_dir=run.dir,
            backend=backend,
        )
        run_rows(net, routed, {"a": procs[0], "b": procs[1]})
    finally:
        net.destroy()
    return rows, timings


def _enter_mode(args: argparse.Namespace) -> None:
    """Enter ``--netns-mode`` (rootless: this process's own namespaces) before any thread."""
    _backend().enter_mode(args.netns_mode)


def cmd_demo(args: argparse.Namespace) -> int:
    _enter_mode(args)
    _need_root()
    run = _backend().open_run(_root(args), "demo")

    def show(r: Exchange) -> None:
        rtt = f"{r.rtt_ms:.3f} ms" if r.ok else (r.error or "")
        result = "ok" if r.ok else "FAILED"
        print(f"{r.protocol:<9}{r.direction:<11}{r.server:<10}{result:<8}{rtt}", flush=True)

    try:
        if args.json:
            rows, timings = _demo_rows(run)
        else:
            # Row by row as the exchanges are done, as ping prints its replies (so
            # `demo | head -1` ends, and cleans up, at once).
            print(f"{'protocol':<9}{'direction':<11}{'server':<10}{'result':<8}rtt", flush=True)
            rows, timings = _demo_rows(run, show)
    finally:
        run.close()
    ok = all(r.ok for r in rows)
    if args.json:
        out: dict[str, Any] = {"results": [r.row() for r in rows], "run": run.id}
        out.update({k: round(v, 4) for k, v in timings.items()})
        print(json.dumps(out))
    else:
        print(
            f"pair built in {timings['setup_s'] * 1000:.1f} ms, "
            f"its peers ready in {timings.get('ready_s', 0) * 1000:.1f} ms; "
            f"{sum(r.ok for r in rows)}/{len(rows)} exchanges ok"
        )
    return 0 if ok else EXIT_FAILED


def cmd_up(args: argparse.Namespace) -> int:
    from rawstack_harness.topology import load

    topo = load(args.spec)  # validated before anything exists
    _need_keep("netns-harness up")
    _need_root()
    name = args.name or topo.name
    backend = _backend()
    kept = backend.keep_spec(name, topo, _root(args))
    if args.json:
        print(json.dumps({"name": name, "run": kept.get("run"), "topology": kept.get("topology")}))
    else:
        print(f"{name}: up (remove with `{PROG} down {name}`)")
        print(f"  run a command in a node: `{PROG} exec {name} NODE -- COMMAND...`")
        for node, d in (kept.get("topology") or {}).get("nodes", {}).items():
            print(f"  {node}: {backend.enter_hint(node, d)}  {' '.join(d['addresses'])}")
    return 0


def cmd_exec(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise UsageError("exec: no command given (netns-harness exec NAME NODE -- COMMAND...)")
    _need_keep("netns-harness exec")
    return _backend().exec_in(args.name, args.node, argv, _root(args))


def cmd_down(args: argparse.Namespace) -> int:
    _need_keep("netns-harness down")
    _need_root()
    if not _backend().unkeep(args.name, _root(args)):
        print(f"{PROG}: error: no kept topology named {args.name!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"name": args.name, "down": True}))
    else:
        print(f"{args.name}: down")
    return 0


def cmd_event(args: argparse.Namespace) -> int:
    """``link``, ``impair``, ``member``: change a kept topology's links at run time."""
    _need_keep(f"netns-harness {args.command}")
    _need_root()
    line = _backend().change_kept(args.name, _root(args), args.command, list(args.args))
    if args.json:
        print(json.dumps({"name": args.name, "changed": line}))
    else:
        print(line)
    return 0


def _args_call(args: argparse.Namespace) -> int:
    """Run the command; a refusal from the OS becomes one NotPrivileged line (exit 77)."""
    from rawstack_harness.errors import NotPrivileged

    try:
        code: int = args.func(args)
    except PermissionError as exc:
        raise NotPrivileged(f"{exc}; run as root") from None
    return code


def cmd_status(args: argparse.Namespace) -> int:
    runs = _backend().describe_runs(_root(args))
    if args.json:
        print(json.dumps({"runs": runs}))
    elif not runs:
        print("no harness runs")
    else:
        for r in runs:
            state = "alive" if r["alive"] else "DEAD (run `netns-harness clean`)"
            print(f"{r['run']} {r['name'] or r['label']} pid {r['pid']} {state}")
            for ns in r.get("netns", r.get("jails", [])):
                print(f"  {ns}")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    _need_root()
    reaped = _backend().reap_dead_runs(_root(args))
    if args.json:
        print(json.dumps({"reaped": reaped}))
    else:
        print(f"reaped {len(reaped)} dead run(s)" + (f": {' '.join(reaped)}" if reaped else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Network namespaces (Linux) or VNET jails (FreeBSD) for rawstack."
    )
    # Default: the backend's (known only once a command runs, so --help works anywhere).
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--netns-mode",
        choices=("auto", "root", "rootless"),
        default="auto",
        help="root: the host's namespaces (needs root); rootless: user namespaces of the "
        "command's own (demo) or of the keeper's (up); auto (default): root when root",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    demo = sub.add_parser(
        "demo", help="build a pair and a line3, run every rawstack client both ways"
    )
    demo.set_defaults(func=cmd_demo)
    up = sub.add_parser("up", help="build a topology from a YAML spec and keep it")
    up.add_argument("spec", help="a preset name (pair, line3) or a YAML/JSON topology file")
    up.add_argument("--name", help="name to refer to it (default: the spec's name)")
    up.set_defaults(func=cmd_up)
    down = sub.add_parser("down", help="remove a kept topology")
    down.add_argument("name")
    down.set_defaults(func=cmd_down)
    ex = sub.add_parser(
        "exec",
        help="run a command in a node of a kept topology (root or rootless)",
        description="Run COMMAND in node NODE of the topology kept as NAME (by `up` or "
        "--netns-keep-failed); exit with its status. Rootless, the command joins the "
        "keeper's user namespace and dies with it.",
    )
    ex.add_argument("name")
    ex.add_argument("node")
    ex.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND...")
    ex.set_defaults(func=cmd_exec)
    status = sub.add_parser("status", help="list runs and kept topologies")
    status.set_defaults(func=cmd_status)
    clean = sub.add_parser("clean", help="remove what dead runs left behind")
    clean.set_defaults(func=cmd_clean)
    events = []
    for command, usage, text in (
        ("link", "A [B] up|down", "take a kept topology's link (both ends) down or up"),
        ("impair", "A [B] SPEC|clear", "change or clear a link's impairment ('{delay: 5ms}')"),
        ("member", "SEGMENT NODE up|down", "take a segment member's interface down or up"),
    ):
        ev = sub.add_parser(command, help=text, usage=f"{PROG} {command} NAME {usage}")
        ev.add_argument("name", help="the kept topology (netns-harness status lists them)")
        ev.add_argument(
            "args", nargs="+", metavar="ARG", help=usage + " (a link end: node or node:ifname)"
        )
        ev.set_defaults(func=cmd_event)
        events.append(ev)
    for p in (demo, up, down, status, clean, *events):
        p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rawstack.cli.stdout import quiet_on_closed_stdout

    return quiet_on_closed_stdout(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    # The keeper `up` starts, and any run a command starts, inherit the mode asked for.
    os.environ["RAWSTACK_HARNESS_NETNS_MODE"] = args.netns_mode
    try:
        code = _args_call(args)
    except RawstackError as exc:  # every harness error too (rawstack_harness.errors)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
