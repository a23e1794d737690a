"""``netns-harness demo|up|down|status|clean``: the harness from a shell.

Exit status as in :mod:`rawstack.errors`: 0 ok, 1 failed, 2 bad input (a bad spec names the
field, or an OS with no backend), 77 not root.

The backend is :func:`rawstack_harness.backends.select_backend`'s: Linux namespaces or FreeBSD VNET
jails. ``up``/``down`` (kept topologies) are Linux-only for now; on FreeBSD they say so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rawstack.errors import EXIT_FAILED, EXIT_NOPERM, EXIT_USAGE, RawstackError

if TYPE_CHECKING:
    from rawstack_harness.backends import Backend
    from rawstack_harness.clients import Exchange

PROG = "netns-harness"


def _backend() -> Backend:
    from rawstack_harness.backends import select_backend

    return select_backend()


def _root(args: argparse.Namespace) -> str:
    return str(args.run_dir or _backend().default_root)


def _need_root() -> None:
    from rawstack_harness.runstate import NotPrivileged

    reason = _backend().missing_requirement()
    if reason:
        raise NotPrivileged(reason)


def _need_keep(command: str) -> None:
    from rawstack_harness.backends import Unsupported

    backend = _backend()
    if not backend.supports_keep:
        raise Unsupported(
            f"{command} is not supported on the {backend.name} backend yet (kept topologies "
            "need a keeper process; only the Linux one exists)"
        )


def _demo_rows(run: Any) -> tuple[list[Exchange], dict[str, float]]:
    """Build a pair and a line3, run every rawstack client both ways; tear both down."""
    from rawstack_harness.backends import RAWSTACK
    from rawstack_harness.clients import PROTOCOLS, try_client
    from rawstack_harness.supervise import start_peers
    from rawstack_harness.topology import line3, pair

    backend = _backend()
    rows: list[Exchange] = []
    t0 = time.monotonic()
    net = backend.build(pair("demo"), run)
    timings = {"setup_s": time.monotonic() - t0}
    try:
        a, b = net["a"], net["b"]
        if backend.icmp_responder == RAWSTACK:
            # Before serve-all turns kernel echo off: rawstack ping against the kernel. (Where
            # the kernel is the ICMP peer anyway, the rows below already show it.)
            rows += [try_client("icmp", s, d, server="kernel") for s, d in ((a, b), (b, a))]
        t1 = time.monotonic()
        procs = start_peers([(a, "eth0", b, "eth0"), (b, "eth0", a, "eth0")], backend=backend)
        timings["ready_s"] = time.monotonic() - t1
        for src, dst, peer in ((a, b, procs[1]), (b, a, procs[0])):
            rows += [
                try_client(p, src, dst, ready=peer.ready, server=peer.servers[p]) for p in PROTOCOLS
            ]
    finally:
        net.destroy()
    net = backend.build(line3("demo3"), run)
    try:
        a, b, r = net["a"], net["b"], net["r"]
        procs = start_peers(
            [(a, "eth0", r, "eth0"), (b, "eth0", r, "eth1")], ("http", "icmp"), backend=backend
        )
        for src, dst, peer in ((a, b, procs[1]), (b, a, procs[0])):
            for proto in ("icmp", "http"):
                direction = f"{src.name}->r->{dst.name}"
                rows.append(
                    try_client(
                        proto,
                        src,
                        dst,
                        ready=peer.ready,
                        direction=direction,
                        server=peer.servers[proto],
                    )
                )
    finally:
        net.destroy()
    return rows, timings


def cmd_demo(args: argparse.Namespace) -> int:
    _need_root()
    run = _backend().open_run(_root(args), "demo")
    try:
        rows, timings = _demo_rows(run)
    finally:
        run.close()
    ok = all(r.ok for r in rows)
    if args.json:
        out: dict[str, Any] = {"results": [r.row() for r in rows], "run": run.id}
        out.update({k: round(v, 4) for k, v in timings.items()})
        print(json.dumps(out))
    else:
        print(f"{'protocol':<9}{'direction':<11}{'server':<10}{'result':<8}rtt")
        for r in rows:
            rtt = f"{r.rtt_ms:.3f} ms" if r.ok else (r.error or "")
            result = "ok" if r.ok else "FAILED"
            print(f"{r.protocol:<9}{r.direction:<11}{r.server:<10}{result:<8}{rtt}")
        print(
            f"pair built in {timings['setup_s'] * 1000:.1f} ms, "
            f"its peers ready in {timings.get('ready_s', 0) * 1000:.1f} ms; "
            f"{sum(r.ok for r in rows)}/{len(rows)} exchanges ok"
        )
    return 0 if ok else EXIT_FAILED


def cmd_up(args: argparse.Namespace) -> int:
    from rawstack_harness import keeper
    from rawstack_harness.topology import load, to_dict

    topo = load(args.spec)  # validated before anything exists
    _need_keep("netns-harness up")
    _need_root()
    name = args.name or topo.name
    root = _root(args)
    msg = keeper.start(name, "spec", to_dict(topo), root)
    found = keeper.find(name, root)
    info = found[1] if found else {}
    if args.json:
        print(json.dumps({"name": name, "run": msg.get("run"), "topology": info.get("topology")}))
    else:
        print(f"{name}: up (remove with `{PROG} down {name}`)")
        for node, d in info.get("topology", {}).get("nodes", {}).items():
            print(f"  {node}: {_backend().enter_hint(node, d)}  {' '.join(d['addresses'])}")
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from rawstack_harness import keeper

    _need_keep("netns-harness down")
    _need_root()
    if not keeper.stop(args.name, _root(args)):
        print(f"{PROG}: error: no kept topology named {args.name!r}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps({"name": args.name, "down": True}))
    else:
        print(f"{args.name}: down")
    return 0


def _linux_runs(root: str) -> list[dict[str, Any]]:
    from rawstack_harness.runstate import Manifest, owner_alive, run_dirs

    runs = []
    for run_dir in run_dirs(root):
        try:
            owner = json.loads((run_dir / "owner.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            owner = {}
        kept = None
        if (run_dir / "keeper.json").exists():
            kept = json.loads((run_dir / "keeper.json").read_text(encoding="utf-8")).get("name")
        runs.append(
            {
                "run": run_dir.name,
                "label": owner.get("label"),
                "pid": owner.get("pid"),
                "alive": owner_alive(run_dir),
                "name": kept,
                "netns": [
                    e["key"]
                    for e in Manifest(run_dir / "manifest.jsonl").live()
                    if e["kind"] == "netns"
                ],
            }
        )
    return runs


def cmd_status(args: argparse.Namespace) -> int:
    backend = _backend()
    if backend.name == "freebsd":
        from rawstack_harness.backends.freebsd import describe_runs

        runs = describe_runs(_root(args))
    else:
        runs = _linux_runs(_root(args))
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
    status = sub.add_parser("status", help="list runs and kept topologies")
    status.set_defaults(func=cmd_status)
    clean = sub.add_parser("clean", help="remove what dead runs left behind")
    clean.set_defaults(func=cmd_clean)
    for p in (demo, up, down, status, clean):
        p.add_argument("--json", action="store_true", help="print JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from rawstack.cli.stdout import quiet_on_closed_stdout

    return quiet_on_closed_stdout(lambda: _main(argv))


def _main(argv: Sequence[str] | None) -> int:
    from rawstack_harness.backends import Unsupported
    from rawstack_harness.runstate import HarnessError
    from rawstack_harness.topology import SpecError

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except SpecError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unsupported as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (HarnessError, RawstackError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except PermissionError as exc:
        print(f"{PROG}: error: {exc}; run as root", file=sys.stderr)
        return EXIT_NOPERM
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
