"""How a process that runs for hours uses the C heap: glibc's malloc parameters and trimming
(elsewhere, musl or macOS, nothing here does anything).

Owns the heap policy of the long-lived processes (a watcher, so the language server and
``codesearch watch``, and the query service):

- **Why.** Measured with ``mallinfo2`` through a watcher absorbing thousands of one-file edits
  (``benchmarks/watcher_memory.py``): the bytes in use stayed flat while the arenas' free space
  grew by ~20 MiB per 1,000 edits, and RSS with it. glibc's mmap threshold is dynamic: it rises to
  the size of the largest mapped block freed (torch frees tensors of several MiB), after which
  the medium buffers of the native libraries under an update (LanceDB, Arrow) are carved from the
  arenas between long-lived blocks, and their space is never whole again.
- :func:`bound_heap` fixes the threshold at :data:`SMALL` (256 KiB): larger blocks are mapped on
  their own and unmapped when freed. RSS stayed flat over 2,500 edits. But torch's forward pass
  then maps and faults every activation afresh: embedding ran at half speed. So
  :func:`roomy_heap` lifts the threshold to :data:`ROOMY` for the length of an embedding call (the
  tensors reuse heap pages from batch to batch) and puts it back after; the embedder wraps its
  forward passes in it.
- :func:`release_free_heap` gives the free pages back to the system (``malloc_trim``), as the
  watcher does after each compaction.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
import threading
from collections.abc import Iterator
from typing import Any

SMALL = 256 * 1024  # blocks from this size up are mapped on their own while the heap is bounded
ROOMY = 32 * 1024 * 1024  # glibc's own ceiling for its dynamic threshold
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)

_lock = threading.Lock()
_bounded = False
_roomy = 0  # embedding calls in flight (any thread)


@functools.cache  # loaded once: an embedding call (a query's included) sets the thresholds twice
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc
        return None


def _thresholds(mmap: int) -> None:
    libc = _libc()
    if libc is not None:
        libc.mallopt(_M_MMAP_THRESHOLD, mmap)
        libc.mallopt(_M_TRIM_THRESHOLD, 2 * mmap)  # what glibc pairs with it when it moves it itself


def bound_heap() -> None:
    """From now on, blocks of :data:`SMALL` and more are mapped on their own (once per process;
    a no-op where the C library is not glibc)."""
    global _bounded
    with _lock:
        if _bounded or _libc() is None:
            return
        _bounded = True
        if not _roomy:
            _thresholds(SMALL)


def bounded() -> bool:
    """Whether :func:`bound_heap` has taken effect in this process."""
    return _bounded


@contextlib.contextmanager
def roomy_heap() -> Iterator[None]:
    """For its duration (in any thread), large blocks come from the heap again and its top is
    kept: a forward pass reuses its pages instead of faulting fresh ones (nothing changes where
    the heap is not bounded)."""
    global _roomy
    with _lock:
        _roomy += 1
        if _roomy == 1 and _bounded:
            _thresholds(ROOMY)
    try:
        yield
    finally:
        with _lock:
            _roomy -= 1
            if _roomy == 0 and _bounded:
                _thresholds(SMALL)


def release_free_heap() -> None:
    """Give the free pages of the C heap back to the system (glibc's ``malloc_trim``): the native
    libraries under an update free most of what they allocated, but glibc keeps those pages in
    its arenas."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
