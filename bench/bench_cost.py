"""Per-test cost: what a test pays for its fixture, setup + teardown, as pytest times them.

A generated test file is run by pytest (in a subprocess, as a user runs it) with a small
conftest that records every setup and teardown duration pytest reports. Three fixtures:

* ``bare``: ``netns_topology(pair())`` built in the fixture (no peers);
* ``pair``: ``netns_pair``, serve-all on both nodes with all four peers probed, forked from
  the run's warm peer host (the default);
* ``pair-exec``: the same with ``--netns-peer-start=exec`` (a fresh interpreter per node, as
  before the peer host), in a second pytest run: the baseline;
* ``pair-shared``: the same with ``--netns-peer-start=shared`` (every node's serve-all a
  tenant of one process per run), in a third pytest run of the whole file (bare and pair
  alternating, as many tests as the first), so its "above a bare pair" compares tests of
  that run only.

Tests of the first and third runs alternate bare/pair, so both fixtures see the same
machine load. Each test does nothing itself: its cost is its fixture's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from bench.context import Context
from bench.plots import BARS, Plot, Series
from bench.report import Row, Section, not_measured
from bench.stats import Summary

TITLE = "Per-test cost"
GROUP = "Harness"
METRICS = (
    "netns_pair (4 peers probed): setup + teardown, p50",
    "netns_pair above a bare pair, p50",
    "bare netns_topology(pair()): setup + teardown, p50",
    "netns_pair, shared peers: setup + teardown, p50",
    "netns_pair, shared peers, above a bare pair, p50",
)
GOAL_PAIR_MS = 20.0
GOAL_ABOVE_MS = 15.0
GOAL_BARE_MS = 5.0

CONFTEST = """
import json, os
import pytest
from rawstack_harness.topology import pair

def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.callspec.params["i"])  # bare, pair, bare, pair, ...

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        with open(os.environ["BENCH_COST_OUT"], "a", encoding="utf-8") as fh:
            fh.write(json.dumps([report.nodeid, report.when, report.duration]) + "\\n")

@pytest.fixture
def bare(netns_topology):
    return netns_topology(pair())
"""

TESTS = """
import pytest

N = {n}

@pytest.mark.parametrize("i", range(N))
def test_bare(bare, i):
    pass

@pytest.mark.parametrize("i", range(N))
def test_pair(netns_pair, i):
    pass
"""


def pytest_argv(test_file: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, str(test_file)]


def read_costs(path: Path) -> dict[str, list[float]]:
    """Test kind (``bare``/``pair``) -> setup + teardown in ms, one per test."""
    per_test: dict[str, float] = defaultdict(float)
    for line in path.read_text(encoding="utf-8").splitlines():
        nodeid, _, seconds = json.loads(line)
        per_test[nodeid] += float(seconds) * 1000
    kinds: dict[str, list[float]] = defaultdict(list)
    for nodeid, ms in per_test.items():
        kinds[nodeid.split("::")[1].split("[")[0].removeprefix("test_")].append(ms)
    return dict(kinds)


def read_phases(path: Path) -> dict[tuple[str, str], list[float]]:
    """(kind, "setup"/"teardown") -> durations in ms."""
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        nodeid, when, seconds = json.loads(line)
        kind = nodeid.split("::")[1].split("[")[0].removeprefix("test_")
        out[(kind, when)].append(float(seconds) * 1000)
    return dict(out)


def _run(ctx: Context, name: str, n: int, *extra: str) -> Path:
    folder = ctx.path(f"cost-{name}")
    folder.mkdir()
    (folder / "conftest.py").write_text(CONFTEST, encoding="utf-8")
    test_file = folder / "test_cost.py"
    test_file.write_text(TESTS.format(n=n), encoding="utf-8")
    out = folder / "durations.jsonl"
    done = subprocess.run(
        pytest_argv(test_file, *extra),
        cwd=folder,
        env={**os.environ, "BENCH_COST_OUT": str(out)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0 or not out.exists():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise RuntimeError(f"pytest exited {done.returncode}: {' / '.join(tail)}")
    return out


def run(ctx: Context) -> Section:
    n = max(ctx.opts.iterations, 5)
    fork_out = _run(ctx, "fork", n)
    costs = read_costs(fork_out)
    phases = read_phases(fork_out)
    exec_costs: list[float] = []
    exec_phases: dict[tuple[str, str], list[float]] = {}
    why_exec = ""
    try:
        exec_out = _run(ctx, "exec", max(n // 3, 3), "--netns-peer-start=exec", "-k", "pair")
        exec_costs = read_costs(exec_out).get("pair", [])
        exec_phases = read_phases(exec_out)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        why_exec = str(exc)
    shared_costs: dict[str, list[float]] = {}
    shared_phases: dict[tuple[str, str], list[float]] = {}
    why_shared = ""
    try:
        shared_out = _run(ctx, "shared", n, "--netns-peer-start=shared")
        shared_costs = read_costs(shared_out)
        shared_phases = read_phases(shared_out)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        why_shared = str(exc)
    pair, bare = Summary.of(costs["pair"]), Summary.of(costs["bare"])
    above = pair.p50 - bare.p50
    execed = Summary.of(exec_costs) if exec_costs else None
    base_exec = (
        f"peers exec'ed: {execed.p50:.1f} ms ({execed.p50 / pair.p50:.1f}x)"
        if execed is not None
        else f"exec'ed peers not measured: {why_exec}"
    )
    rows = [
        Row(
            METRICS[0],
            pair.p50,
            "ms",
            f"p99 {pair.p99:.1f} ms; {base_exec}",
            f"<= {GOAL_PAIR_MS:.0f} ms",
            passed=pair.p50 <= GOAL_PAIR_MS,
        ),
        Row(
            METRICS[1],
            above,
            "ms",
            f"bare pair {bare.p50:.1f} ms in the same run",
            f"<= {GOAL_ABOVE_MS:.0f} ms",
            passed=above <= GOAL_ABOVE_MS,
        ),
        Row(
            METRICS[2],
            bare.p50,
            "ms",
            f"p99 {bare.p99:.1f} ms",
            f"<= {GOAL_BARE_MS:.0f} ms",
            passed=bare.p50 <= GOAL_BARE_MS,
        ),
    ]
    if exec_costs:
        rows.append(
            Row(
                "netns_pair, peers exec'ed (before the peer host), p50",
                Summary.of(exec_costs).p50,
                "ms",
                f"{len(exec_costs)} tests, a second pytest run",
            )
        )
    rows += shared_rows(shared_costs, pair.p50, why_shared)

    def p50(table: dict[tuple[str, str], list[float]], kind: str, when: str) -> float:
        return Summary.of(table[(kind, when)]).p50 if table.get((kind, when)) else 0.0

    # Two-line names: four bars' one-line names run into each other under the bars.
    labels = ["bare pair", "netns_pair\n(fork)"]
    setups = [p50(phases, "bare", "setup"), p50(phases, "pair", "setup")]
    teardowns = [p50(phases, "bare", "teardown"), p50(phases, "pair", "teardown")]
    if exec_costs:
        labels.append("netns_pair\n(exec)")
        setups.append(p50(exec_phases, "pair", "setup"))
        teardowns.append(p50(exec_phases, "pair", "teardown"))
    if shared_costs.get("pair"):
        labels.append("netns_pair\n(shared)")
        setups.append(p50(shared_phases, "pair", "setup"))
        teardowns.append(p50(shared_phases, "pair", "teardown"))
    plot = Plot(
        "cost-by-fixture",
        "Per-test cost by fixture (p50 of each phase)",
        "fixture",
        "ms per test",
        (
            Series("setup", tuple(labels), tuple(setups)),
            Series("teardown", tuple(labels), tuple(teardowns)),
        ),
        kind=BARS,
        goal=GOAL_PAIR_MS,
        goal_label=f"netns_pair goal ({GOAL_PAIR_MS:.0f} ms)",
    )
    notes = [
        f"`python {' '.join(pytest_argv(Path('test_cost.py'))[1:])}` on a generated file of "
        f"{n} tests per fixture, alternating bare/pair; a conftest hook records the setup and "
        "teardown durations pytest reports (the call does nothing). Pcap capture is on (the "
        "default, `--netns-capture=failed`), as in a user's run.",
        "Setup p50: bare "
        f"{p50(phases, 'bare', 'setup'):.1f} ms, netns_pair {p50(phases, 'pair', 'setup'):.1f} ms; "
        f"teardown p50: bare {p50(phases, 'bare', 'teardown'):.1f} ms, netns_pair "
        f"{p50(phases, 'pair', 'teardown'):.1f} ms.",
        "netns_pair forks serve-all from the run's warm peer host (started by the first "
        "populated test, whose cost includes it); the exec baseline is a second pytest run "
        "with `--netns-peer-start=exec -k pair`.",
    ]
    if shared_costs:
        notes.append(
            "Shared peers: a third pytest run of the same file with "
            f"`--netns-peer-start=shared` ({n} tests per fixture, alternating bare/pair; the "
            "first netns_pair's cost includes forking the shared process). Setup p50: bare "
            f"{p50(shared_phases, 'bare', 'setup'):.1f} ms, netns_pair "
            f"{p50(shared_phases, 'pair', 'setup'):.1f} ms; teardown p50: bare "
            f"{p50(shared_phases, 'bare', 'teardown'):.1f} ms, netns_pair "
            f"{p50(shared_phases, 'pair', 'teardown'):.1f} ms."
        )
    return Section(TITLE, GROUP, rows, notes, plots=[plot])


def shared_rows(costs: dict[str, list[float]], fork_p50: float, why: str) -> list[Row]:
    """The shared run's rows: its netns_pair, and that above its own bare pairs.

    ``costs`` is that run's :func:`read_costs`; ``fork_p50`` the first run's netns_pair p50
    (the same-run baseline); ``why`` says why there are no costs, if so.
    """
    goal_pair, goal_above = f"<= {GOAL_PAIR_MS:.0f} ms", f"<= {GOAL_ABOVE_MS:.0f} ms"
    if not costs.get("pair") or not costs.get("bare"):
        why = why or "the shared run recorded no netns_pair or no bare test"
        return [not_measured(METRICS[3], why, goal_pair), not_measured(METRICS[4], why, goal_above)]
    pair, bare = Summary.of(costs["pair"]), Summary.of(costs["bare"])
    above = pair.p50 - bare.p50
    ratio = f" ({pair.p50 / fork_p50:.2f}x)" if fork_p50 > 0 else ""
    return [
        Row(
            METRICS[3],
            pair.p50,
            "ms",
            f"p99 {pair.p99:.1f} ms; forked peers {fork_p50:.1f} ms{ratio}, the first run",
            goal_pair,
            passed=pair.p50 <= GOAL_PAIR_MS,
        ),
        Row(
            METRICS[4],
            above,
            "ms",
            f"bare pair {bare.p50:.1f} ms in the same (shared) run",
            goal_above,
            passed=above <= GOAL_ABOVE_MS,
        ),
    ]
