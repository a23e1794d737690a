"""Integration suite wall time with ``-n 1`` and ``-n 2`` (pytest-xdist): the speedup.

Both runs use the same command line except ``-n``; a run that does not finish within
``--suite-timeout`` is killed (its process group) and reported as not measured.
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
from bench.parse import parse_pytest_summary
from bench.report import Row, Section, not_measured

TITLE = "Integration suite wall time"
GROUP = "Harness"
METRICS = ("speedup -n 2 over -n 1", "wall time -n 1", "wall time -n 2")
GOAL = 1.6


def tests_run(counts: dict[str, int]) -> int:
    """Tests pytest reported an outcome for (warnings are not tests)."""
    return sum(v for k, v in counts.items() if k not in ("warnings", "deselected"))


def suite_argv(workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n",
        str(workers),
        "tests/integration",
    ]


def _timed(argv: list[str], timeout: float, log_path: str) -> tuple[float, dict[str, int]]:
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
        counts = parse_pytest_summary(fh.read())
    if not counts:
        raise RuntimeError(f"pytest printed no summary (exit status {proc.returncode})")
    return elapsed, counts


def run(ctx: Context) -> Section:
    results: dict[int, tuple[float, dict[str, int]]] = {}
    failures: dict[int, str] = {}
    for workers in (1, 2):
        try:
            results[workers] = _timed(
                suite_argv(workers), ctx.opts.suite_timeout, str(ctx.path(f"suite-n{workers}.log"))
            )
        except subprocess.TimeoutExpired:
            failures[workers] = f"did not finish in {ctx.opts.suite_timeout:.0f} s"
        except (OSError, RuntimeError) as exc:
            failures[workers] = str(exc)
    rows: list[Row] = []
    one, two = results.get(1), results.get(2)
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
    for workers, metric in ((1, METRICS[1]), (2, METRICS[2])):
        res = results.get(workers)
        if res is None:
            rows.append(not_measured(metric, failures.get(workers, "no result")))
        else:
            rows.append(Row(metric, res[0], "s", ", ".join(f"{v} {k}" for k, v in res[1].items())))
    notes = [
        f"`python {' '.join(suite_argv(1)[1:])}` then the same with `-n 2`, from the repository "
        "root, "
        f"each killed after {ctx.opts.suite_timeout:.0f} s. Failures inside the suite do not "
        "stop the timing; their counts are shown next to the wall time.",
        f"This machine has {os.cpu_count()} cores shared with other jobs whose load differs "
        "between the two runs, so the speedup is noisy; a worker count above the idle cores "
        "cannot speed anything up.",
    ]
    return Section(TITLE, GROUP, rows, notes)
