"""Write tests/durations.json, each test module's wall time, from pytest JUnit XML reports.

    python ci/durations.py REPORT.xml [REPORT.xml ...]

tests/conftest.py reads the file when pytest-xdist runs more than one worker and hands the
slowest modules out first, so that the run does not end with one worker still busy on a
long module while the others idle. A stale file only makes that order worse, never a
result wrong; refresh it from a full run (CI writes $RAWSTACK_CI_ARTIFACTS/junit.xml) when
the suite has changed a lot.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "tests" / "durations.json"


def module_of(classname: str, root: Path = REPO) -> str | None:
    """The module file (repository-relative) of a JUnit ``classname``, or None.

    A classname is the test's dotted module path, then its classes if any
    (``tests.unit.test_x.TestY``): the longest prefix that names a file is the module.
    """
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = "/".join(parts[:end]) + ".py"
        if (root / path).is_file():
            return path
    return None


def module_seconds(reports: Iterable[Path], root: Path = REPO) -> dict[str, float]:
    """Seconds per module file over every test case in the reports, slowest first."""
    seconds: dict[str, float] = {}
    for report in reports:
        for case in ET.parse(report).iter("testcase"):
            module = module_of(case.get("classname", ""), root)
            if module is not None:
                seconds[module] = seconds.get(module, 0.0) + float(case.get("time", "0"))
    ranked = sorted(seconds.items(), key=lambda kv: (-kv[1], kv[0]))
    return {module: round(s, 2) for module, s in ranked}


def main(argv: Sequence[str], out: Path = OUT, root: Path = REPO) -> int:
    if not argv:
        print("usage: python ci/durations.py REPORT.xml [REPORT.xml ...]", file=sys.stderr)
        return 2
    try:
        seconds = module_seconds([Path(a) for a in argv], root)
    except (OSError, ET.ParseError) as exc:
        print(f"ci/durations.py: {exc}", file=sys.stderr)
        return 1
    if not seconds:
        print("ci/durations.py: no test case in those reports names a module here", file=sys.stderr)
        return 1
    out.write_text(json.dumps(seconds, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: {len(seconds)} modules, {sum(seconds.values()):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
