"""Integration suite wall time with ``-n 1`` and ``-n 2`` (pytest-xdist): the speedup.

The runs use the same command line except ``-n``; a run that does not finish within
``--suite-timeout`` is killed (its process group) and reported as not measured. A third run,
``-n 2 --netns-peer-start=exec`` (a fresh interpreter per peer and per client, as before the
peer host), is the same-run baseline for what the peer host saves the suite.

Each run also records every test phase's exact duration (:mod:`bench.suite_durations`):
summed by phase they say how much of the suite's work is fixture setup and teardown, and
so the most that faster fixtures could take off its wall time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

from bench.context import Context
from bench.options import REPO
from bench.parse import failed_tests, parse_pytest_summary, phase_seconds
from bench.report import Row, Section, not_measured

TITLE = "Integration suite wall time"
GROUP = "Harness"
METRICS = (
    "speedup -n 2 over -n 1",
    "-n 2: wall time with peers and clients exec'ed over forked",
    "wall time -n 1",
    "wall time -n 2",
    "wall time -n 2, peers and clients exec'ed",
    "-n 2, peers and clients exec'ed: fixture setup + teardown, share of the summed test time",
    "-n 2: fixture setup + teardown, share of the summed test time",
)
GOAL = 1.8
GOAL_FASTER = 3.0  # issue 14: the suite falls by 3x (it was dominated by populated pairs)


def tests_run(counts: dict[str, int]) -> int:
    """Tests pytest reported an outcome for (warnings are not tests)."""
    return sum(v for k, v in counts.items() if k not in ("warnings", "deselected"))


def suite_argv(workers: int, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "bench.suite_durations",
        "-n",
        str(workers),
        *extra,
        "tests/integration",
    ]


Timed = tuple[float, dict[str, int], list[str], dict[str, float]]


def fixture_share(phases: dict[str, float]) -> float:
    """The share of the summed test time spent in setup and teardown (0..1)."""
    total = sum(phases.values())
    return (phases.get("setup", 0.0) + phases.get("teardown", 0.0)) / total if total else 0.0


def fixtures_free_ceiling(phases: dict[str, float]) -> float:
    """How many times faster the suite's work would be if every fixture took no time."""
    call = phases.get("call", 0.0)
    return sum(phases.values()) / call if call else float("inf")


def phases_text(phases: dict[str, float]) -> str:
    return (
        f"setup {phases.get('setup', 0.0):.1f} s + teardown {phases.get('teardown', 0.0):.1f} s"
        f" of {sum(phases.values()):.1f} s (call {phases.get('call', 0.0):.1f} s)"
    )


def _timed(argv: list[str], timeout: float, log_path: str, durations_path: str) -> Timed:
    with open(log_path, "w", encoding="utf-8") as log:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        finally:
            # The whole group: xdist workers and whatever they started must not outlive us.
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        elapsed = time.monotonic() - t0
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    counts = parse_pytest_summary(text)
    if not counts:
        raise RuntimeError(f"pytest printed no summary (exit status {proc.returncode})")
    with open(durations_path, encoding="utf-8") as fh:
        phases = phase_seconds(fh.read())
    return elapsed, counts, failed_tests(text), phases


def run(ctx: Context) -> Section:
    results: dict[str, Timed] = {}
    failures: dict[str, str] = {}
    plan = {"1": (1,), "2": (2,), "2-exec": (2, "--netns-peer-start=exec")}
    for key, (workers, *extra) in plan.items():
        durations = str(ctx.path(f"suite-n{key}.durations.jsonl"))
        try:
            results[key] = _timed(
                suite_argv(int(workers), *map(str, extra), f"--bench-durations={durations}"),
                ctx.opts.suite_timeout,
                str(ctx.path(f"suite-n{key}.log")),
                durations,
            )
        except subprocess.TimeoutExpired:
            failures[key] = f"did not finish in {ctx.opts.suite_timeout:.0f} s"
        except (OSError, RuntimeError) as exc:
            failures[key] = str(exc)
    rows: list[Row] = []
    one, two, execed = results.get("1"), results.get("2"), results.get("2-exec")
    goal = f">= {GOAL}x on 2 cores"
    if one and two:
        speedup = one[0] / two[0]
        base = f"-n 1 {one[0]:.1f} s, -n 2 {two[0]:.1f} s"
        if tests_run(one[1]) != tests_run(two[1]):
            base += " (the two runs collected different tests: the tree changed in between)"
        rows.append(Row(METRICS[0], speedup, "x", base, goal, passed=speedup >= GOAL))
    else:
        why = "; ".join(f"-n {k}: {v}" for k, v in failures.items())
        rows.append(not_measured(METRICS[0], why, goal))
    goal = f">= {GOAL_FASTER:.0f}x"
    if two and execed:
        faster = execed[0] / two[0]
        base = f"-n 2: exec'ed {execed[0]:.1f} s, forked {two[0]:.1f} s"
        rows.append(Row(METRICS[1], faster, "x", base, goal, passed=faster >= GOAL_FASTER))
    else:
        why = "; ".join(f"-n {k}: {v}" for k, v in failures.items())
        rows.append(not_measured(METRICS[1], why, goal))
    for key, metric in (("1", METRICS[2]), ("2", METRICS[3]), ("2-exec", METRICS[4])):
        res = results.get(key)
        if res is None:
            rows.append(not_measured(metric, failures.get(key, "no result")))
        else:
            rows.append(Row(metric, res[0], "s", ", ".join(f"{v} {k}" for k, v in res[1].items())))
    rows += _fixture_rows(results, failures)
    notes = [
        f"`python {' '.join(suite_argv(1)[1:])}`, then the same with `-n 2`, then with `-n 2 "
        "--netns-peer-start=exec`, from the repository root, "
        f"each killed after {ctx.opts.suite_timeout:.0f} s. Failures inside the suite do not "
        "stop the timing; their counts are shown next to the wall time.",
        f"This machine has {os.cpu_count()} cores shared with other jobs whose load differs "
        "between the two runs, so the speedup is noisy; a worker count above the idle cores "
        "cannot speed anything up.",
        "Summed test time: every test's setup, call and teardown as pytest reports them "
        "(exact, from `-p bench.suite_durations`), added up over both workers. With every "
        "fixture taking no time at all, the suite's work could fall at most to its call time: "
        "the ceiling is (setup + call + teardown) / call.",
    ]
    for key, res in results.items():
        if res[2]:  # which, so that a flaky test can be found again
            notes.append(f"Failed in the -n {key} run: " + ", ".join(f"`{t}`" for t in res[2]))
    return Section(TITLE, GROUP, rows, notes)


def _fixture_rows(results: dict[str, Timed], failures: dict[str, str]) -> list[Row]:
    rows: list[Row] = []
    for key, metric in (("2-exec", METRICS[5]), ("2", METRICS[6])):
        res = results.get(key)
        if res is None:
            rows.append(not_measured(metric, failures.get(key, "no result")))
            continue
        phases = res[3]
        base = phases_text(phases)
        base += f"; fixtures free: at most {fixtures_free_ceiling(phases):.2f}x faster"
        rows.append(Row(metric, fixture_share(phases) * 100, "%", base))
    return rows
