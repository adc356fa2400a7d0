"""Queries before background work in one process (codesearch.foreground): the dense backlog of a
pre-emptible run waits for searches in flight, never longer than MAX_HOLD_S per slice."""

from __future__ import annotations

import threading
import time

import pytest

from codesearch import foreground
from codesearch.foreground import querying, yield_to_queries


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(foreground, "_resumed", float("-inf"))  # no wait ended just before


def test_no_query_in_flight_no_wait() -> None:
    assert yield_to_queries(5.0) == 0.0


def test_background_work_waits_until_the_last_query_ends() -> None:
    release = threading.Event()
    entered = threading.Barrier(3)

    def query() -> None:
        with querying():
            entered.wait()
            release.wait(10)

    threads = [threading.Thread(target=query) for _ in range(2)]
    for thread in threads:
        thread.start()
    entered.wait()
    threading.Timer(0.3, release.set).start()
    waited = yield_to_queries(10.0)
    for thread in threads:
        thread.join()
    assert 0.2 < waited < 5.0, waited


def test_queries_that_never_stop_leave_background_work_half_the_time(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A wait ends after MAX_HOLD_S; then the work runs MIN_WORK_S before it waits again (a load
    of 16 searchers held a 5,000-file burst 0.5 s per file before)."""
    monkeypatch.setattr(foreground, "MAX_HOLD_S", 0.2)
    monkeypatch.setattr(foreground, "MIN_WORK_S", 0.4)
    with querying():
        started = time.perf_counter()
        waited = yield_to_queries()
        assert waited > 0.15 and time.perf_counter() - started < 2.0
        assert sum(yield_to_queries() for _ in range(1000)) == 0.0, "no wait right after one"
        time.sleep(0.45)
        assert yield_to_queries() > 0.15, "the next wait, once the work has run MIN_WORK_S"


def test_a_failing_query_leaves_no_mark() -> None:
    try:
        with querying():
            raise ValueError("the query failed")
    except ValueError:
        pass
    assert yield_to_queries(5.0) == 0.0
