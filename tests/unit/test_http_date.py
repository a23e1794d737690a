"""The server's Date formatter matches email.utils.formatdate(usegmt=True)."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from rawstack.peers.http_server import http_date

# Epoch, leap days, month and year edges, the 2038 rollover and the RFC 9110 example.
EDGES = [0, 784111777, 951782400, 951868799, 1709164800, 1704067199, 1704067200, 2147483647]


@pytest.mark.parametrize("seconds", EDGES)
def test_edges_match_formatdate(seconds: int) -> None:
    assert http_date(seconds) == formatdate(seconds, usegmt=True)


def test_rfc9110_example() -> None:
    assert http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT"


def test_many_random_seconds_match_formatdate() -> None:
    rng = random.Random(9110)
    for _ in range(20000):
        seconds = rng.randrange(0, 253402300800)  # up to the end of year 9999
        assert http_date(seconds) == formatdate(seconds, usegmt=True), seconds


def test_every_day_of_one_leap_year_matches() -> None:
    start = 1704067200  # 2024-01-01T00:00:00Z
    for day in range(367):
        seconds = start + day * 86400 + day * 3599 % 86400
        assert http_date(seconds) == formatdate(seconds, usegmt=True), seconds
