"""What every benchmark gets: the options, the harness run that owns its resources, a temp dir."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rawstack_harness.backends.linux.runs import LinuxRun

from bench.options import Options


@dataclass
class Context:
    """Shared by the benchmarks of one ``python -m bench`` run."""

    opts: Options
    run: LinuxRun
    tmp: Path

    def log(self, message: str) -> None:
        """Progress on stderr, so a long run shows where it is."""
        stamp = time.strftime("%H:%M:%S")
        print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)

    def path(self, name: str) -> Path:
        """A file in this run's temp dir (removed at the end)."""
        return self.tmp / name
