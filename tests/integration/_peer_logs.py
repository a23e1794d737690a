"""What the integration tests check in a raw peer's stderr after SIGTERM."""

from __future__ import annotations

import json
import re
from typing import Any


def stopped_stats(err: str) -> dict[str, Any]:
    """The counters of the peer's ``[name] stopped {...}`` line."""
    stats: dict[str, Any] = json.loads(err.split("] stopped ", 1)[1].splitlines()[0])
    return stats


def assert_drops_rate_limited(err: str, prefix: str) -> None:
    """Drop lines (starting with ``prefix``) are rate-limited and every drop is accounted for."""
    drops = [line for line in err.splitlines() if line.startswith(prefix)]
    # A burst, then the rest counted instead of written: far fewer lines than drops...
    assert 1 <= len(drops) < 100, len(drops)
    suppressed = sum(int(n) for n in re.findall(r"(\d+) similar lines? suppressed", err))
    assert suppressed > 0
    # ...and none unaccounted for. The socket buffer may overflow under a burst (the kernel
    # drops those before the peer sees them), so count against what the peer itself dropped.
    dropped = stopped_stats(err)["dropped"]
    assert dropped > 100
    assert len(drops) + suppressed == dropped
