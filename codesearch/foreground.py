"""Queries before background work, within one process (the language server, an agent's server).

A search in flight marks itself (:func:`querying`); the dense backlog of an index run that can
be pre-empted waits for it between two slices of its work (:func:`yield_to_queries`), so a
query does not share the cores with the model's forward passes: on 2 cores a query ran 1.5-2x
slower beside a dense pass. The wait is bounded (``MAX_HOLD_S``), so queries that never stop
(a picker as the user types) still leave the backlog a slice at a time. Urgent work (a saved
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

_idle = threading.Condition()
_in_flight = 0

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
    seconds waited."""
    timeout = MAX_HOLD_S if timeout is None else timeout
    with _idle:
        if not _in_flight:
            return 0.0
        started = time.perf_counter()
        _idle.wait_for(lambda: not _in_flight, timeout)
        return time.perf_counter() - started
