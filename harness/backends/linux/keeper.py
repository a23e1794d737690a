"""A detached keeper process owning a kept topology until ``netns-harness down NAME``.

``python -m rawstack_harness.backends.linux.keeper ROOT NAME MODE JSON`` where MODE is
``spec`` (build this topology dict) or ``adopt`` (take over namespaces another run built:
``--netns-keep-failed``). The keeper is a normal run owner (lock, manifest, reaper), so
SIGKILL of the keeper still cleans up; SIGTERM or SIGINT makes it remove everything and
exit 0. It prints one JSON ready line on stdout once it owns the topology.

In rootless mode (``RAWSTACK_HARNESS_NETNS_MODE``, as ``netns-harness --netns-mode`` sets it)
the keeper first enters a run of its own (:mod:`.rootless`); its run directory then lives in
that run's private ``/run``, so it also lists itself in :func:`.rootless.registry` as
``NAME.json`` (the pid and start time of the process ``up`` started, whose ``/proc/PID/ns/*``
are the run's namespaces). ``down`` SIGTERMs that process, which forwards it to the keeper;
a SIGKILL ends the whole run, and the stale listing is removed when next read.
:func:`exec_in` reaches a node in both modes.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rawstack_harness.backends.base import RAWSTACK
from rawstack_harness.backends.linux.runs import (
    DEFAULT_ROOT,
    KEEPER_FILE,
    LinuxRun,
    owner_alive,
    run_dirs,
)
from rawstack_harness.errors import HarnessError, NotPrivileged

if TYPE_CHECKING:
    from rawstack_harness.backends.linux.nodes import LinuxNetwork

MODULE = "rawstack_harness.backends.linux.keeper"  # run with python -m


def _serve(
    run: LinuxRun,
    name: str,
    described: dict[str, Any],
    net: LinuxNetwork | None,
    outer: tuple[int | None, Path] | None = None,
) -> int:
    (run.dir / KEEPER_FILE).write_text(
        json.dumps({"name": name, "pid": os.getpid(), "topology": described}), encoding="utf-8"
    )
    listed = _list_rootless(name, described, outer) if outer is not None else None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    sys.stdout.write(json.dumps({"event": "ready", "name": name, "run": run.id}) + "\n")
    sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    while True:
        sig = signal.sigwait({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
        if sig != signal.SIGHUP:  # the terminal that ran `up` closing is no reason to go
            break
    if net is not None:
        net.destroy()
    run.close()
    if listed is not None:
        listed.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            listed.parent.rmdir()  # the last one out leaves no directory either
    return 0


def _list_rootless(
    name: str, described: dict[str, Any], outer: tuple[int | None, Path]
) -> Path | None:
    """In rootless mode, list this keeper where the host can find it (see the module doc)."""
    from rawstack_harness.backends.linux import rootless

    pid = rootless.outer_pid()
    if pid is None:
        return None
    start, where = outer
    path = rootless.registry(where, create=True) / f"{name}.json"
    info = {"name": name, "pid": pid, "start": start, "topology": described}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**info, "rootless": True}), encoding="utf-8")
    tmp.rename(path)
    return path


def main(argv: list[str]) -> int:
    root, name, mode, payload = argv
    data = json.loads(payload)
    from rawstack_harness.backends.linux import nsutil, rootless

    # Read before entering: this pid becomes the outer process, and the listing's directory
    # is named as the process that runs `netns-harness` sees it.
    outer = (nsutil.proc_start_time(os.getpid()), rootless.registry_dir())
    rootless.begin(rootless.requested(), own=True)  # first, while single-threaded
    refused = rootless.refusal()
    if refused is not None:
        sys.stdout.write(json.dumps({"event": "error", "error": refused, "code": 77}) + "\n")
        sys.stdout.flush()
        return 77
    run = LinuxRun(root, label=f"keeper:{name}", pool=False)  # it builds once, then holds
    try:
        if mode == "spec":
            from rawstack_harness.backends.linux.nodes import build
            from rawstack_harness.topology import from_dict

            net = build(from_dict(data), run)
            return _serve(run, name, net.describe(), net, outer)
        for node in (*data["nodes"].values(), *data.get("hubs", {}).values()):
            run.manifest.add("netns", node["path"], dev_ino=node["dev_ino"])
            if node.get("hosts"):  # its names file (see names.py) is ours to remove now
                run.manifest.add("dir", os.path.dirname(os.path.dirname(node["hosts"])))
                run.manifest.add("dir", os.path.dirname(node["hosts"]))
                run.manifest.add("file", node["hosts"])
        return _serve(run, name, data, None)
    except BaseException as exc:
        sys.stdout.write(json.dumps({"event": "error", "error": str(exc)}) + "\n")
        sys.stdout.flush()
        run.close()
        return 1


def find(name: str, root: str = DEFAULT_ROOT) -> tuple[Path, dict[str, Any]] | None:
    """The live keeper named ``name``: (run dir, keeper.json), or for a rootless keeper
    (its run dir is in its own mount namespace) (its listing, the listing)."""
    listed = _find_rootless(name)
    if listed is not None:
        return listed
    for run_dir in run_dirs(root):
        try:
            info = json.loads((run_dir / KEEPER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if info.get("name") == name and owner_alive(run_dir):
            return run_dir, info
    return None


def rootless_kept() -> list[dict[str, Any]]:
    """This user's live rootless keepers (stale listings of killed ones are removed)."""
    from rawstack_harness.backends.linux import rootless

    try:
        paths = sorted(rootless.registry().glob("*.json"))
    except (OSError, HarnessError):
        return []
    found = []
    for path in paths:
        info = _find_rootless(path.stem)
        if info is not None:
            found.append(info[1])
    return found


def _find_rootless(name: str) -> tuple[Path, dict[str, Any]] | None:
    from rawstack_harness.backends.linux import nsutil, rootless

    try:
        path = rootless.registry() / f"{name}.json"
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, HarnessError):
        return None
    if nsutil.running_start_time(int(info["pid"])) != info.get("start"):
        path.unlink(missing_ok=True)  # its keeper was killed: the run and all it held are gone
        with contextlib.suppress(OSError):
            path.parent.rmdir()
        return None
    return path, info


def exec_in(name: str, node: str, argv: Sequence[str], root: str = DEFAULT_ROOT) -> int:
    """Run ``argv`` in node ``node`` of kept topology ``name``, return its exit status.

    Root mode: enter the node's namespace file. Rootless: first join the keeper's user, mount
    and pid namespaces (``/proc/PID/ns/*``), where that file lives; the command then belongs
    to the keeper's run and dies with it. Call from a single-threaded process."""
    from rawstack_harness.backends.linux import nsutil, userns

    from rawstack.errors import UsageError

    found = find(name, root)
    if found is None:
        raise UsageError(f"no kept topology named {name!r} (see `netns-harness status`)")
    info = found[1]
    nodes = info.get("topology", {}).get("nodes", {})
    if node not in nodes:
        raise UsageError(f"{name} has no node {node!r} (nodes: {', '.join(nodes)})")
    if info.get("rootless"):
        userns.join(int(info["pid"]))
    fd = os.open(nodes[node]["path"], os.O_RDONLY | os.O_CLOEXEC)
    try:
        done = subprocess.run(list(argv), preexec_fn=nsutil.child_preexec(fd), check=False)
    except FileNotFoundError:
        raise UsageError(f"{argv[0]}: command not found") from None
    finally:
        os.close(fd)
    return done.returncode if done.returncode >= 0 else 128 - done.returncode


def start(
    name: str, mode: str, payload: dict[str, Any], root: str = DEFAULT_ROOT
) -> dict[str, Any]:
    """Start a keeper and wait for its ready line; raise HarnessError on failure."""
    if find(name, root) is not None:
        raise HarnessError(f"a kept topology named {name!r} already exists")
    proc = subprocess.Popen(
        [sys.executable, "-m", MODULE, root, name, mode, json.dumps(payload)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # survives the CLI and its terminal
        cwd="/",
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    proc.stdout.close()
    try:
        msg = json.loads(line)
    except ValueError:
        proc.wait()
        raise HarnessError(f"keeper for {name!r} exited with status {proc.returncode}") from None
    if msg.get("event") != "ready":
        proc.wait()
        if msg.get("code") == 77:
            raise NotPrivileged(str(msg.get("error")))
        raise HarnessError(f"keeper for {name!r}: {msg.get('error')}")
    return dict(msg)


def hand_over(net: LinuxNetwork, name: str) -> str:
    """Give a built Network to a new keeper (peers stop); return the kept name."""
    base, n = name, 1
    while find(name, net.run.root) is not None:
        n += 1
        name = f"{base}-{n}"
    for node in net.nodes.values():
        node.stop_processes()
        if node.peers.get("icmp") == RAWSTACK:
            # Its responder is gone with serve-all: the kept node answers pings again, as
            # the kernel's echo (the test's rawstack peers do not outlive it).
            node.sysctl("net.ipv4.icmp_echo_ignore_all", "0")
            node.sysctl("net.ipv6.icmp.echo_ignore_all", "0")
    described = net.describe()
    for key, held in (("nodes", net.nodes), ("hubs", net.hubs)):
        for node_name, node in held.items():
            st = os.stat(node.path)
            described[key][node_name]["dev_ino"] = [st.st_dev, st.st_ino]
    start(name, "adopt", described, net.run.root)
    net.release()
    return name


def stop(name: str, root: str = DEFAULT_ROOT, timeout: float = 10.0) -> bool:
    """SIGTERM the keeper named ``name`` and wait until its run dir is gone."""
    found = find(name, root)
    if found is None:
        return False
    _run_dir, info = found
    pid = int(info["pid"])
    pidfd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGTERM)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            os.kill(pid, signal.SIGKILL)  # its reaper removes what it held
    finally:
        os.close(pidfd)
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
