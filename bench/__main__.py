"""``python -m bench``: run the benchmarks and write the report."""

from __future__ import annotations

import sys

from bench.runner import main

if __name__ == "__main__":
    sys.exit(main())
