"""NamespacePool: made ahead in its own thread, as many as the largest build took (within
FIRST..MOST), handed out without waiting, and everything held let go of on close or failure.

A fake maker stands in for ``unshare``: a socketpair per "namespace", so no root is needed and
a closed one is visible."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from rawstack_harness.backends.linux.nspool import FIRST, MOST, Fresh, NamespacePool
from rawstack_harness.errors import HarnessError


def _closed(fresh: Fresh) -> bool:
    return fresh.nl.fileno() == -1


class Maker:
    """Makes fake namespaces; ``gate`` (when set) holds each make until released."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.made: list[Fresh] = []
        self.fail_after = fail_after
        self.gate: threading.Semaphore | None = None
        self.threads: set[str] = set()

    def __call__(self) -> Fresh:
        self.threads.add(threading.current_thread().name)
        if self.gate is not None:
            self.gate.acquire()
        if self.fail_after is not None and len(self.made) >= self.fail_after:
            raise HarnessError("unshare(CLONE_NEWNET): No space left on device")
        a, b = socket.socketpair()
        b.close()
        fresh = Fresh(os.dup(a.fileno()), a)
        self.made.append(fresh)
        return fresh


def _until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_nothing_is_made_before_the_first_refill() -> None:
    maker = Maker()
    pool = NamespacePool(maker)
    time.sleep(0.05)
    assert maker.made == []
    assert pool.take(2) == []  # and taking from an empty pool does not wait
    pool.close()


def test_a_refill_makes_them_in_a_thread_of_its_own_and_a_build_takes_them() -> None:
    maker = Maker()
    pool = NamespacePool(maker)
    pool.refill(1)  # fewer than a pair still holds a pair's
    assert _until(lambda: pool.held() == FIRST)
    assert maker.threads == {"netns-pool"}
    taken = pool.take(3)
    assert taken == maker.made[:FIRST]  # the oldest first, at most what it held
    time.sleep(0.05)
    assert len(maker.made) == FIRST  # refilled only when a build asks
    pool.close()
    assert not any(_closed(f) for f in taken)  # taken ones are the build's, not closed


def test_it_holds_as_many_as_the_largest_build_within_most() -> None:
    maker = Maker()
    pool = NamespacePool(maker)
    pool.refill(5)
    assert _until(lambda: pool.held() == 5)
    pool.take(5)
    pool.refill(2)  # a smaller build does not shrink it
    assert _until(lambda: pool.held() == 5)
    pool.take(5)
    pool.refill(100)
    assert _until(lambda: pool.held() == MOST)
    time.sleep(0.05)
    assert pool.held() == MOST
    assert len(maker.made) == 5 + 5 + MOST
    pool.close()


def test_close_lets_go_of_what_it_holds_and_stops_making() -> None:
    maker = Maker()
    pool = NamespacePool(maker)
    pool.refill(3)
    assert _until(lambda: pool.held() == 3)
    held = list(maker.made)
    pool.close()
    assert all(_closed(f) for f in held)
    pool.refill(3)
    time.sleep(0.05)
    assert len(maker.made) == 3
    assert pool.take(3) == []


def test_one_being_made_while_the_pool_closes_is_let_go_of_too() -> None:
    maker = Maker()
    maker.gate = threading.Semaphore(0)
    pool = NamespacePool(maker)
    pool.refill(2)
    assert _until(lambda: bool(maker.threads))  # the thread waits inside the maker
    closing = threading.Thread(target=pool.close)
    closing.start()
    time.sleep(0.05)
    maker.gate.release()
    closing.join(5)
    assert len(maker.made) == 1
    assert _until(lambda: _closed(maker.made[0]))
    assert pool.take(2) == []


def test_a_failure_stops_the_pool_for_good_and_lets_go_of_what_it_held() -> None:
    maker = Maker(fail_after=2)
    pool = NamespacePool(maker)
    pool.refill(2)
    assert _until(lambda: pool.held() == 2)
    pool.take(1)
    pool.refill(2)  # the next make fails
    assert _until(lambda: pool.failure is not None)
    assert "No space left" in str(pool.failure)
    assert pool.take(2) == []
    assert _closed(maker.made[1])  # the one still held
    assert not _closed(maker.made[0])  # the one taken
    pool.refill(2)
    time.sleep(0.05)
    assert len(maker.made) == 2


@pytest.fixture(autouse=True)
def _no_stray_pool_threads() -> Iterator[None]:
    before = set(threading.enumerate())  # a session's own run may have a pool of its own
    yield
    assert _until(
        lambda: not any(t.name == "netns-pool" for t in set(threading.enumerate()) - before),
        timeout=2,
    ), "a pool thread outlived its pool"
