"""The pytest plugin (``pytest11: netns``): namespaces, veth pairs and peers as fixtures.

Each pytest process (each xdist worker too) owns one run (the backend's ``open_run``), created
at the first topology, so parallel workers never share names. Fixtures skip, never fail,
when the machine cannot build topologies, naming what is missing.

The backend comes from :func:`rawstack_harness.backends.select_backend`: network namespaces on
Linux, VNET jails on FreeBSD, with the same fixtures and the typed node surface
(:class:`rawstack_harness.Network`, :class:`rawstack_harness.Node`). The report header names it
and who answers ICMP; tests that need ``node.socket()`` can skip with
:func:`skip_without_node_sockets` (jails have no setns). What differs is read from the backend's
capabilities, never from its name.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pytest

from rawstack.errors import UsageError
from rawstack.peers.registry import ALL_PEERS
from rawstack.peers.registry import parse_peers as _parse_peers

if TYPE_CHECKING:
    from rawstack_harness.backends import Backend, Network, Run
    from rawstack_harness.capture import ItemCaptures
    from rawstack_harness.scopes import SharedNetworks, Span
    from rawstack_harness.topology import SpecLike

NETWORKS = pytest.StashKey[list["Network"]]()
REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()
KEPT = pytest.StashKey[list[str]]()
SHARED = pytest.StashKey["SharedNetworks"]()  # module/session topologies (scopes.py)
SPAN = pytest.StashKey["Span"]()  # where a test's part of them begins
CAPTURES = pytest.StashKey["ItemCaptures"]()
CAPTURE_DIR = pytest.StashKey[Path]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("netns", "network namespaces (rawstack harness)")
    group.addoption(
        "--netns-keep-failed",
        action="store_true",
        default=False,
        help="keep a failed test's topology (peers stopped) until `netns-harness down NAME`",
    )
    group.addoption(
        "--netns-peers",
        default=",".join(ALL_PEERS),
        metavar="LIST",
        help="peers the fixtures wait for and probe on each node (serve-all runs all four; "
        "default: http,udp,chao,icmp)",
    )
    group.addoption(
        "--netns-peer-start",
        default="fork",
        choices=("fork", "exec", "shared"),
        help="how the fixtures start serve-all: fork it from the run's warm peer host "
        "(default, Linux), exec a fresh interpreter per node (slower; FreeBSD always does), "
        "or serve every node from one shared process per run (Linux; least memory, but one "
        "process: a crash of it ends every node's peers); rawstack_harness.clients' "
        "commands are exec'ed with exec, forked otherwise",
    )
    group.addoption(
        "--netns-run-dir",
        default=None,
        metavar="DIR",
        help="state directory for runs (default /run/rawstack-harness on Linux, "
        "/var/run/rawstack-harness on FreeBSD)",
    )
    group.addoption(
        "--netns-mode",
        default="auto",
        choices=("auto", "root", "rootless"),
        help="root: the host's namespaces (needs root); rootless: a user namespace of the "
        "run's own, per pytest process, in which the harness is root; auto (default): root "
        "when root, else rootless",
    )
    group.addoption(
        "--netns-capture",
        default="failed",
        metavar="WHEN",
        help="pcap of every link endpoint, written when the test fails (default), always, "
        "or never captured: never|failed|always",
    )
    group.addoption(
        "--netns-capture-dir",
        default=None,
        metavar="DIR",
        help="where pcaps go, one folder per test (default: $RAWSTACK_CI_ARTIFACTS/captures, "
        "else .ci-artifacts/captures under the rootdir)",
    )


def parse_peers(value: str) -> tuple[str, ...]:
    """``--netns-peers`` in serving order; a bad list is a :class:`pytest.UsageError`."""
    try:
        return _parse_peers(value, "--netns-peers")
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "netns: builds network namespaces (Linux) or VNET jails (FreeBSD); needs root "
        "(CAP_NET_ADMIN) or, on Linux, user namespaces (rootless mode); skipped otherwise",
    )
    config.stash[KEPT] = []
    _CONFIG["config"] = config
    parse_peers(config.getoption("--netns-peers"))
    run_dir = config.getoption("--netns-run-dir")
    if run_dir is not None and not Path(run_dir).is_absolute():
        raise pytest.UsageError(f"--netns-run-dir: {run_dir!r} is not an absolute path")
    _configure_capture(config)
    _enter_mode(config)


def _enter_mode(config: pytest.Config) -> None:
    """Enter the namespace mode now, while pytest is single-threaded (before xdist's workers,
    which inherit it). Global capture is suspended so that the process the user started,
    which only waits for the run in rootless mode, keeps the real stdout and stderr."""
    from rawstack_harness.errors import Unsupported, UnsupportedPlatform

    try:
        backend = _backend()
    except UnsupportedPlatform:
        return  # the fixtures skip, naming the platform
    mode = config.getoption("--netns-mode")
    capman = config.pluginmanager.getplugin("capturemanager")
    # Only around a real entry: an inline (pytester) run inside a run must keep capturing.
    suspend = capman is not None and backend.will_enter(mode)
    if suspend:
        capman.suspend_global_capture(in_=True)
    try:
        backend.enter_mode(mode)
    except Unsupported as exc:
        raise pytest.UsageError(f"--netns-mode: {exc}") from None
    finally:
        if suspend:
            capman.resume_global_capture()


def _configure_capture(config: pytest.Config) -> None:
    from rawstack_harness.capture import parse_mode

    try:
        config.option.netns_capture = parse_mode(config.getoption("--netns-capture"))
    except ValueError as exc:
        raise pytest.UsageError(f"--netns-capture: {exc}") from None
    chosen = config.getoption("--netns-capture-dir")
    if chosen is not None:
        config.stash[CAPTURE_DIR] = config.invocation_params.dir / chosen
    else:
        # Where ci/ uploads from on failure, next to failure_logs' ``failures/``.
        artifacts = os.environ.get("RAWSTACK_CI_ARTIFACTS") or ".ci-artifacts"
        config.stash[CAPTURE_DIR] = config.rootpath / artifacts / "captures"


def _skip_reason() -> str | None:
    from rawstack_harness.backends import unavailable_reason

    return unavailable_reason()


def _backend() -> Backend:
    from rawstack_harness.backends import select_backend

    return select_backend()


def skip_without_node_sockets() -> None:
    """Skip the calling test where ``node.socket()`` is unsupported (FreeBSD jails)."""
    from rawstack_harness.errors import UnsupportedPlatform

    try:
        caps = _backend().capabilities
    except UnsupportedPlatform as exc:
        pytest.skip(f"netns: {exc}")
    if not caps.node_sockets:
        pytest.skip(f"netns: {caps.no_node_sockets}")


def pytest_report_header(config: pytest.Config) -> str | list[str]:
    from rawstack_harness.backends import KERNEL
    from rawstack_harness.errors import UnsupportedPlatform

    try:
        backend = _backend()
    except UnsupportedPlatform as exc:
        return f"netns: {exc}"
    caps = backend.capabilities
    icmp = (
        "the kernel's echo (it consumes echo requests before raw sockets see them)"
        if caps.icmp_responder == KERNEL
        else "rawstack's responder where a node declares icmp (kernel echo off there), "
        "the kernel's echo elsewhere"
    )
    lines = [
        f"netns: {backend.name} backend, {backend.description}; icmp peer: {icmp}; "
        f"{backend.impairment()}"
    ]
    mode = config.getoption("--netns-capture")
    if mode != "never" and not caps.node_sockets:
        lines.append(
            f"netns: --netns-capture={mode} ignored: the {backend.name} backend cannot open "
            "sockets inside a node (node.socket() is unsupported), so links are not captured"
        )
    elif mode != "never":
        lines.append(f"netns: pcap per link endpoint ({mode}) in {config.stash[CAPTURE_DIR]}")
    return lines


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("netns") is not None:
        reason = _skip_reason()
        if reason:
            pytest.skip(f"netns: {reason}")
    shared = item.config.stash.get(SHARED, None)
    if shared is not None:
        span: Span
        span, dead = shared.begin(list(getattr(item, "fixturenames", [])))
        item.stash[SPAN] = span
        if dead:  # a peer of a shared topology died after the previous test that used it
            pytest.fail("\n".join(dead), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """A peer that died during the test fails the test with its status and log tail."""
    try:
        result = yield
    except Exception:
        # The test's own failure (a timeout, say) is often just the symptom of the death.
        _check_peers(item)
        raise
    _check_peers(item)
    return result


def _item_networks(item: pytest.Item) -> list[Network]:
    """The test's own networks and the shared ones it uses."""
    shared = item.config.stash.get(SHARED, None)
    used = shared.used_by(list(getattr(item, "fixturenames", []))) if shared else []
    return [*item.stash.get(NETWORKS, []), *(s.net for s in used)]


def _check_peers(item: pytest.Item) -> None:
    dead = [peer for net in _item_networks(item) for peer in net.peers.values() if peer.died()]
    if dead:
        # No traceback: it would only show this hook, not where the peer died. The test's
        # own exception, if any, is still shown above it as the context.
        pytest.fail("\n".join(peer.death_message() for peer in dead), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS, {})[report.when] = report
    if report.failed:
        for net in item.stash.get(NETWORKS, []):
            for name, peer in net.peers.items():
                report.sections.append((f"netns peer log: node {name}", peer.logs()))
            if net.mechanisms():
                report.sections.append(("netns links", "\n".join(net.mechanisms())))
    captures = item.stash.get(CAPTURES, None)
    if captures is not None and report.failed:
        captures.write()  # in setup/call still running: a snapshot; teardown rewrites it
        text = captures.section()
        if text:
            report.sections.append(("netns captures", text))
    shared = item.config.stash.get(SHARED, None)
    if shared is not None and report.failed:
        from rawstack_harness.capture import safe_dirname

        directory = item.config.stash[CAPTURE_DIR] / safe_dirname(item.nodeid)
        fixtures = list(getattr(item, "fixturenames", []))
        report.sections += shared.sections(fixtures, item.stash.get(SPAN, None), directory)
    return report


KEPT_PROPERTY = "netns_kept"
_CONFIG: dict[str, pytest.Config] = {}  # this process's config, for pytest_runtest_logreport


def _note_kept(request: pytest.FixtureRequest, line: str) -> None:
    """For the summary: here, and (as a report property) for an xdist controller."""
    request.config.stash[KEPT].append(line)
    request.node.user_properties.append((KEPT_PROPERTY, line))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Under ``-n`` the keeping happened in a worker: its report carries the line here."""
    config = _CONFIG.get("config")
    if config is None:
        return
    kept = config.stash.setdefault(KEPT, [])
    for name, value in report.user_properties:
        if name == KEPT_PROPERTY and value not in kept:
            kept.append(str(value))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    kept = config.stash.get(KEPT, [])
    if kept:
        terminalreporter.section("netns: kept topologies")
        for line in kept:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def netns_run(request: pytest.FixtureRequest) -> Iterator[Run]:
    """Session scope: this process's harness run (one per pytest process / xdist worker)."""
    reason = _skip_reason()
    if reason:
        pytest.skip(f"netns: {reason}")
    backend = _backend()
    root = request.config.getoption("--netns-run-dir") or backend.default_root
    run = backend.open_run(
        root, "pytest", fork=request.config.getoption("--netns-peer-start") != "exec"
    )
    yield run
    run.close()


@pytest.fixture
def netns_topology(
    request: pytest.FixtureRequest, netns_run: Run
) -> Iterator[Callable[[SpecLike], Network]]:
    """Factory: build any spec (Topology, dict, preset name or YAML path); torn down at test end."""
    from rawstack_harness.topology import load

    backend = _backend()
    built: list[Network] = request.node.stash.setdefault(NETWORKS, [])

    def factory(spec: SpecLike) -> Network:
        from rawstack_harness.errors import MissingFeature

        try:
            net = backend.build(load(spec), netns_run)
        except MissingFeature as exc:
            pytest.skip(f"netns: {exc}")
        built.append(net)
        _start_capture(request, backend, net)
        _start_declared_peers(net, request, netns_run)  # nodes that declare peers
        return net

    yield factory
    reports = request.node.stash.get(REPORTS, {})
    failed = any(r.failed for r in reports.values())
    captures: ItemCaptures | None = request.node.stash.get(CAPTURES, None)
    if captures is not None:
        # Before the topology goes (or is kept): an open socket would pin its namespace.
        captures.stop()
        if failed or request.config.getoption("--netns-capture") == "always":
            captures.write()
    keep = failed and request.config.getoption("--netns-keep-failed")
    for net in reversed(built):
        if keep and not backend.capabilities.keep:
            why = backend.capabilities.no_keep or (
                f"--netns-keep-failed is not supported on the {backend.name} backend yet"
            )
            _note_kept(
                request,
                f"{request.node.nodeid}: not kept: {why} (the topology was removed)",
            )
            net.destroy()
        elif keep:
            kept = backend.keep(net, request.node.name[:40])
            root = "" if netns_run.root == backend.default_root else f" --run-dir {netns_run.root}"
            _note_kept(
                request,
                f"{request.node.nodeid}: kept as {kept.name!r}; enter a node with "
                f"{kept.enter}; remove with `netns-harness{root} down {kept.name}`",
            )
        else:
            net.destroy()


def _start_capture(request: pytest.FixtureRequest, backend: Backend, net: Network) -> None:
    """Capture ``net``'s links for this test, unless ``--netns-capture=never``."""
    if request.config.getoption("--netns-capture") == "never":
        return
    from rawstack_harness.capture import ItemCaptures, safe_dirname

    captures = request.node.stash.get(CAPTURES, None)
    if captures is None:
        directory = request.config.stash[CAPTURE_DIR] / safe_dirname(request.node.nodeid)
        captures = request.node.stash[CAPTURES] = ItemCaptures(directory)
    if backend.capabilities.node_sockets:
        captures.add(net)
    else:
        captures.note(f"not captured: node.socket() is unsupported on the {backend.name} backend")


def _start_declared_peers(net: Network, request: pytest.FixtureRequest, run: Run) -> None:
    """serve-all in every node that declares peers, each awaited and probed (the option
    ``--netns-peers`` narrows what is awaited and probed, not what is served)."""
    from rawstack_harness.supervise import peer_plan, start_peers

    plan = peer_plan(net.topology)
    if not plan:
        return
    awaited = parse_peers(request.config.getoption("--netns-peers"))
    served = {n.name: n.peers for n in net.topology.nodes if n.peers}
    start = request.config.getoption("--netns-peer-start")
    procs = start_peers(
        [(net[n], i, net[p], pi) for n, i, p, pi in plan],
        awaited,
        log_dir=run.dir,
        served=served,
        fork=start != "exec",
        shared=start == "shared",
    )
    for (node, _, _, _), proc in zip(plan, procs):
        net.peers[node] = proc


def _shared_topology(
    request: pytest.FixtureRequest, run: Run, fixture: str
) -> Iterator[Callable[[SpecLike], Network]]:
    from rawstack_harness.scopes import Shared, SharedNetworks, close
    from rawstack_harness.topology import load

    backend = _backend()
    registry: SharedNetworks = request.config.stash.setdefault(SHARED, SharedNetworks())
    mine: list[Shared] = []

    def factory(spec: SpecLike) -> Network:
        from rawstack_harness.capture import start_capture
        from rawstack_harness.errors import MissingFeature

        try:
            net = backend.build(load(spec), run)
        except MissingFeature as exc:
            pytest.skip(f"netns: {exc}")
        shared = Shared(net, fixture)
        mine.append(shared)
        registry.add(shared)
        if (
            request.config.getoption("--netns-capture") != "never"
            and backend.capabilities.node_sockets
        ):
            shared.capture = start_capture(net)
        _start_declared_peers(net, request, run)
        return net

    yield factory
    for shared in reversed(mine):
        registry.remove(shared)
        close(shared)


@pytest.fixture(scope="module")
def netns_topology_module(
    request: pytest.FixtureRequest, netns_run: Run
) -> Iterator[Callable[[SpecLike], Network]]:
    """Module scope: a factory like netns_topology; its networks serve the module's tests."""
    yield from _shared_topology(request, netns_run, "netns_topology_module")


@pytest.fixture(scope="session")
def netns_topology_session(
    request: pytest.FixtureRequest, netns_run: Run
) -> Iterator[Callable[[SpecLike], Network]]:
    """Session scope (per xdist worker): a factory whose networks serve every test."""
    yield from _shared_topology(request, netns_run, "netns_topology_session")


@pytest.fixture
def netns_pair(
    request: pytest.FixtureRequest,
    netns_run: Run,
    netns_topology: Callable[[SpecLike], Network],
) -> Network:
    """Function scope: nodes a (10.0.0.1) and b (10.0.0.2) on one veth, serve-all probed on both."""
    from rawstack_harness.topology import pair

    return netns_topology(pair(peers=ALL_PEERS))


@pytest.fixture
def netns_line3(
    request: pytest.FixtureRequest,
    netns_run: Run,
    netns_topology: Callable[[SpecLike], Network],
) -> Network:
    """Function scope: a (10.0.1.2) - r - b (10.0.2.2), r forwarding; serve-all on a and b."""
    from rawstack_harness.topology import line3

    return netns_topology(line3(peers=ALL_PEERS))
