"""Run the chosen benchmarks, then write the report.

Each benchmark module exposes ``TITLE``, ``GROUP``, ``METRICS`` (the row names it reports,
used for "not measured" rows when it fails as a whole) and ``run(ctx) -> Section``. A
benchmark that raises becomes "not measured: <why>" rows; the others still run. Ctrl-C or
SIGTERM stops at once: the harness run removes everything and no report is written.
"""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType, ModuleType

from bench.context import Context
from bench.machine import machine_info
from bench.options import REPO, Options, parse
from bench.report import Section, not_measured, render_report, render_table, summarize
from rawstack.errors import EXIT_NOPERM

MODULES = {
    "setup": "bench.bench_setup",
    "ready": "bench.bench_ready",
    "clients": "bench.bench_clients",
    "cost": "bench.bench_cost",
    "http": "bench.bench_http",
    "http-memory": "bench.bench_http_memory",
    "udp": "bench.bench_udp",
    "ping": "bench.bench_ping",
    "chao": "bench.bench_chao",
    "scale": "bench.bench_scale",
    "suite": "bench.bench_suite",
}


def rerun_command(opts: Options) -> str:
    """The exact command that reproduces this run, and its tox spelling."""
    args = shlex.join(opts.argv)
    direct = f"sudo .venv/bin/python -m bench {args}".rstrip()
    tox = f"sudo tox -e bench -- {args}".rstrip(" -") if args else "sudo tox -e bench"
    return f"{direct}\n# or: {tox}"


def run_one(module: ModuleType, ctx: Context) -> Section:
    """One benchmark; any failure becomes "not measured" rows naming the error."""
    start = time.monotonic()
    ctx.log(f"{module.TITLE} ...")
    try:
        section: Section = module.run(ctx)
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")[:300]
        ctx.log(f"{module.TITLE} failed: {why}")
        rows = [not_measured(m, why) for m in module.METRICS]
        section = Section(module.TITLE, module.GROUP, rows)
    section.seconds = time.monotonic() - start
    ctx.log(f"{module.TITLE} done in {section.seconds:.1f} s")
    return section


def interrupt_handler(main_pid: int) -> Callable[[int, FrameType | None], None]:
    """SIGINT/SIGTERM: unwind (so every finally runs) in ``main_pid``, exit at once elsewhere."""

    def handler(signum: int, frame: FrameType | None) -> None:
        # A child forked by a library (pyroute2 forks to create namespaces) inherits this;
        # unwinding there would run *our* finally blocks and remove the parent's resources.
        if os.getpid() != main_pid:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    return handler


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step, so an interrupted run never leaves half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def draw_plots(sections: Sequence[Section], report: Path) -> tuple[dict[str, str], str]:
    """Every section's plots as PNGs beside ``report``: (name -> relative path, why not)."""
    from bench import plots

    wanted = [p for s in sections for p in s.plots]
    if not wanted:
        return {}, ""
    try:
        drawn = plots.draw(wanted, plots.image_dir(report))
    except ImportError as exc:
        return {}, f"matplotlib is not installed ({exc}); `pip install .[bench]`"
    return {n: p.relative_to(report.parent).as_posix() for n, p in drawn.items()}, ""


def measure(opts: Options) -> list[Section]:
    """Run every chosen benchmark inside one harness run and one temp dir."""
    from rawstack_harness.backends.linux.runs import LinuxRun

    sections: list[Section] = []
    with tempfile.TemporaryDirectory(prefix="rawstack-bench-") as tmp:
        run = LinuxRun(label="bench")
        try:
            ctx = Context(opts, run, Path(tmp))
            for name in opts.benchmarks:
                sections.append(run_one(importlib.import_module(MODULES[name]), ctx))
        finally:
            run.close()
    return sections


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(sys.argv[1:] if argv is None else argv)
    from rawstack_harness.backends.linux.env import missing_requirement

    reason = missing_requirement()
    if reason:
        print(f"bench: error: {reason}", file=sys.stderr)
        return EXIT_NOPERM
    handler = interrupt_handler(os.getpid())
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    machine = machine_info(str(REPO))
    machine["mode"] = f"{opts.mode} ({', '.join(opts.benchmarks)})"
    start = time.monotonic()
    try:
        sections = measure(opts)
    except KeyboardInterrupt:
        print(
            "bench: interrupted; everything it created was removed, no report written",
            file=sys.stderr,
        )
        return 130
    machine["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    images, no_images = draw_plots(sections, opts.output)
    text = render_report(
        machine,
        rerun_command(opts),
        sections,
        time.monotonic() - start,
        images=images,
        no_images=no_images,
    )
    write_atomically(opts.output, text)
    for section in sections:
        print(f"\n{section.title}\n{render_table(section.rows)}")
    counts = summarize(sections)
    print(f"\nwrote {opts.output}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0
