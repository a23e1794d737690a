"""rawstack benchmarks: ``python -m bench`` measures, compares and writes docs/benchmarks.md.

Every figure is measured in the run that reports it, next to its baseline measured in the
same run; nothing is hard-coded. All traffic stays inside namespaces the run creates.
"""

from __future__ import annotations
