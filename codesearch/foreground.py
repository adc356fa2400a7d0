"""Queries before background work, within one process (the language server, an agent's server).

A search in flight marks itself (:func:`querying`); the dense backlog of an index run that can
be pre-empted waits for it between two slices of its work (:func:`yield_to_queries`), so a
query does not share the cores with the model's forward passes: on 2 cores a query ran 1.5-2x
slower beside a dense pass. The wait is bounded (``MAX_HOLD_S``), and after one the backlog
works ``MIN_WORK_S`` before it waits again, so queries that never stop (a picker as the user
types, many agents) still leave it half the time. Urgent work (a saved
file) never waits: it is what the next query wants to find.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, TypeVar

MAX_HOLD_S = 0.5  # the longest one slice of background work waits for queries in flight
# after a wait, background work runs this long before it waits again: queries that never stop
# (16 searchers of a load test) leave it at least half the time, not one slice per MAX_HOLD_S
MIN_WORK_S = 0.5

_idle = threading.Condition()
_in_flight = 0
_resumed = float("-inf")  # when background work last resumed after a wait

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def querying() -> Iterator[None]:
    """Mark a query in flight for as long as the block runs."""
    global _in_flight
    with _idle:
        _in_flight += 1
    try:
        yield
    finally:
        with _idle:
            _in_flight -= 1
            if not _in_flight:
                _idle.notify_all()


def foreground(method: F) -> F:
    """A method that answers a query: :func:`querying` while it runs."""

    @wraps(method)
    def marked(*args: Any, **kwargs: Any) -> Any:
        with querying():
            return method(*args, **kwargs)

    return marked  # type: ignore[return-value]


def yield_to_queries(timeout: float | None = None) -> float:
    """Wait until no query is in flight (``timeout``, by default ``MAX_HOLD_S``, at most); the
    seconds waited. No wait within ``MIN_WORK_S`` of the end of the last one."""
    global _resumed
    timeout = MAX_HOLD_S if timeout is None else timeout
    with _idle:
        if not _in_flight or time.monotonic() - _resumed < MIN_WORK_S:
            return 0.0
        started = time.perf_counter()
        _idle.wait_for(lambda: not _in_flight, timeout)
        _resumed = time.monotonic()
        return time.perf_counter() - started
