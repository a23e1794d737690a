"""Command-line options of ``python -m bench``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rawstack.cli._options import at_least, positive_float

# Run order: cheap harness figures first, the slow suite last.
BENCHMARKS = (
    "setup",
    "ready",
    "clients",
    "cost",
    "http",
    "http-memory",
    "udp",
    "ping",
    "chao",
    "scale",
    "suite",
)
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "docs" / "benchmarks.md"


@dataclass(frozen=True)
class Options:
    """Parsed options, with the quick/full defaults already applied."""

    quick: bool
    benchmarks: tuple[str, ...]
    output: Path
    pairs: int
    pair_checkpoints: tuple[int, ...]
    http_seconds: float
    http_connections: int
    http_threads: int
    iterations: int
    round_trips: int
    suite: bool
    suite_timeout: float
    argv: tuple[str, ...]

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full"


def _names(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown benchmark {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    return names


_count = at_least(1)  # "must be >= 1", the message the bench has always printed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure rawstack and its harness against same-run baselines and write "
        "a Markdown report. Needs root (it builds network namespaces).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke mode: few iterations, 2 pairs, short wrk runs, no suite timing",
    )
    p.add_argument(
        "--only",
        type=_names,
        default=None,
        metavar="NAMES",
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    p.add_argument(
        "--skip", type=_names, default=(), metavar="NAMES", help="benchmarks to leave out"
    )
    p.add_argument(
        "--output",
        "-o",
        type=Path,
        default=DEFAULT_OUTPUT,
        help="report path (default docs/benchmarks.md in the repository)",
    )
    p.add_argument(
        "--pairs",
        type=_count,
        default=None,
        metavar="N",
        help="pairs alive at once in the scale benchmark (default 100, quick 2)",
    )
    p.add_argument(
        "--http-seconds",
        type=positive_float,
        default=None,
        metavar="S",
        help="wrk duration per server (default 5, quick 1)",
    )
    p.add_argument("--connections", type=_count, default=32, help="wrk connections")
    p.add_argument("--threads", type=_count, default=2, help="wrk threads")
    p.add_argument(
        "--iterations",
        type=_count,
        default=None,
        metavar="N",
        help="repetitions of setup/ready timings (default 30, quick 3)",
    )
    p.add_argument(
        "--round-trips",
        type=_count,
        default=None,
        metavar="N",
        help="UDP/ping/CHAO round trips per target (default 2000, quick 50)",
    )
    suite = p.add_mutually_exclusive_group()
    suite.add_argument(
        "--suite",
        dest="suite",
        action="store_true",
        default=None,
        help="time the integration suite with -n 1 and -n 2 (default in full mode)",
    )
    suite.add_argument("--no-suite", dest="suite", action="store_false", help="do not")
    p.add_argument(
        "--suite-timeout",
        type=positive_float,
        default=900.0,
        metavar="S",
        help="give up on one suite run after S seconds (default 900)",
    )
    return p


def checkpoints(pairs: int) -> tuple[int, ...]:
    """Pair counts at which setup time is reported: 1, 10, 50, 100, ... up to ``pairs``."""
    marks = [1, 10, 50, 100, 200, 500, 1000]
    return tuple(sorted({m for m in marks if m <= pairs} | {pairs}))


def parse(argv: Sequence[str] | None = None) -> Options:
    """Parse ``argv``; bad values exit 2 with one line on stderr (argparse)."""
    args = build_parser().parse_args(argv)
    quick = bool(args.quick)
    named = set(args.only or BENCHMARKS)
    suite = args.suite if args.suite is not None else (not quick or args.only is not None)
    chosen = named - set(args.skip)
    if args.suite:
        chosen.add("suite")
    if not suite:
        chosen.discard("suite")
    pairs = args.pairs or (2 if quick else 100)
    return Options(
        quick=quick,
        benchmarks=tuple(b for b in BENCHMARKS if b in chosen),
        output=args.output,
        pairs=pairs,
        pair_checkpoints=checkpoints(pairs),
        http_seconds=args.http_seconds or (1.0 if quick else 5.0),
        http_connections=args.connections,
        http_threads=args.threads,
        iterations=args.iterations or (3 if quick else 30),
        round_trips=args.round_trips or (50 if quick else 2000),
        suite="suite" in chosen,
        suite_timeout=args.suite_timeout,
        argv=tuple(argv) if argv is not None else (),
    )
