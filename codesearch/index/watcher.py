"""Watching a source tree: keep its index equal to the files on disk while editors and git work.

Owns the event side of a live index. At start the tree is reconciled (whatever was edited while
nothing ran is indexed). Then file-system events (watchdog: inotify, FSEvents, ...) are
debounced and coalesced: a burst (a save, an editor's write-temp-then-rename, a ``git checkout``
rewriting thousands of files, a directory rename) becomes one update. An update is an
incremental :class:`~codesearch.index.Indexer` run (plan by stat, then chunk, embed and write
only what changed), so every event kind converges to exactly what is on disk, in bounded memory.
A burst that goes quiet while an update runs (the first index of a big tree, a checkout) does not
wait for it: the running update takes its paths as urgent work and does them before its backlog
(``Indexer.preempt``); so do files the editor opens (:meth:`Watcher.note_opened`).
The watcher holds the index's writer lock for its whole life. Stopping is cooperative: the
running update ends at its next batch, and the lock is released only once nothing writes. It
watches only the folders a walk enters (:mod:`codesearch.index.observers`: a virtualenv or
``node_modules`` in the tree costs no watches) and drops events that the ignore rules leave out.
When the OS watch limit is exhausted it falls back to polling and says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from codesearch.embedding import Embedder
from codesearch.errors import CodesearchError
from codesearch.files.names import stored_path
from codesearch.files.walk import Folders
from codesearch.heap import bound_heap, release_free_heap
from codesearch.index import observers
from codesearch.index.indexer import Indexer, IndexStats, IndexStopped, Progress, writer_lock
from codesearch.options import IndexOptions
from codesearch.store import Store

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.15  # quiet time that ends a burst of events
# the quiet time after which a running update takes a burst as urgent work: a save's events come
# within milliseconds, and a burst taken early costs one more small round, not a wrong index
URGENT_QUIET_S = 0.05
MAX_WAIT_S = 2.0  # a burst that never goes quiet is still indexed this often
POLL_INTERVAL_S = 1.0
COMPACT_EVERY_S = 60.0  # compaction (LanceDB optimize) after an update at most this often
MAX_PATHS = 256  # a bigger burst is planned by walking the tree
# a change to one of these changes what else is indexed (ignore rules, a checkout, a new
# virtualenv): walk the tree, and watch the folders kept now
_WIDE_NAMES = frozenset({".gitignore", ".codesearchignore", "pyvenv.cfg"})
_WIDE_PATHS = frozenset({".git/HEAD", ".git/info/exclude"})


class _Events(FileSystemEventHandler):
    """Turns watchdog events into changed paths for the debouncer: a file's own event names
    it; anything wider (a folder created, moved or deleted, an ignore file edited, a checkout)
    asks for a walk of the whole tree. Events the ignore rules leave out are dropped."""

    def __init__(self, root: Path, index_dir: Path, signal: Callable[[str | None], None], folders: Folders) -> None:
        self.root = root
        self.index_dir = index_dir.resolve()
        self.signal = signal
        self.folders = folders

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's entries changed: the entries' own events follow
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if not path or not self._relevant(path, event.is_directory):
                continue
            rel = self.folders.rel(path)
            wide = event.is_directory or rel is None or rel in _WIDE_PATHS or rel.rsplit("/", 1)[-1] in _WIDE_NAMES
            self.signal(None if wide or rel is None else stored_path(rel))  # the path as the index stores it

    def _relevant(self, path: str, is_dir: bool) -> bool:
        resolved = Path(path)
        if resolved == self.index_dir or self.index_dir in resolved.parents:
            return False
        rel = self.folders.rel(resolved)
        if rel is None:
            return True  # outside the root (a symlinked folder): let the walk decide
        if rel in _WIDE_PATHS:
            return True  # a checkout (its file events follow) or the repository's own ignore rules
        return self.folders.relevant(rel, is_dir)


class Watcher:
    """Keeps the index of ``root`` in ``index_dir`` current until :meth:`stop`, indexing as
    ``options`` say (single fields may be given as keywords instead, as for the Indexer)."""

    def __init__(
        self,
        root: Path,
        index_dir: Path,
        options: IndexOptions | None = None,
        *,
        embedder: Embedder | None = None,
        load: Callable[[str | None], Embedder] | None = None,
        on_update: Callable[[IndexStats], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        debounce_s: float = DEBOUNCE_S,
        max_wait_s: float = MAX_WAIT_S,
        polling: bool = False,
        **option_fields: Any,
    ) -> None:
        self.root = root.resolve()
        self.index_dir = index_dir
        options = options or IndexOptions()
        self.options = dataclasses.replace(options, **option_fields) if option_fields else options
        self.embedder = embedder
        self.load = load  # how its indexer loads the model (default: its own copy)
        self.on_update = on_update or (lambda stats: None)
        self.on_progress = on_progress
        self.debounce_s = debounce_s
        self.max_wait_s = max_wait_s
        self.polling = polling
        self.rebuild = self.options.rebuild  # the first update only
        # what a walk enters is what is watched (the index folder, when it lies in the tree, is not)
        self.folders = Folders(self.root, self.options.extra_ignores, exclude_dirs=(Path(index_dir),))
        self.updates = 0
        self._busy = False
        self._changed = threading.Event()
        self._stopping = threading.Event()
        self._first_event = 0.0
        self._last_event = 0.0
        self._paths: set[str] = set()
        self._walk = True  # the first update reconciles the whole tree
        self._paths_lock = threading.Lock()
        self._compacted = -COMPACT_EVERY_S  # the reconciling update at start compacts
        self._uncompacted = False
        self._observer: Any = None
        self._thread: threading.Thread | None = None
        self._lock: Any = None
        self._writing = threading.RLock()  # held by an update (on any thread) and by the final compaction
        self._updating = False
        self.error: BaseException | None = None
        self.opened: dict[str, float] = {}  # files open in an editor → when: the dense pass does them first

    def note_opened(self, rel: str) -> None:
        """An editor opened ``rel`` (posix, relative to the root): a running update embeds it at
        its next file or slice, later updates before the rest."""
        self.opened[rel] = time.time()

    def rescan(self) -> None:
        """Walk the whole tree in the next update (a user asked to re-index)."""
        self._signal(None)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> IndexStats:
        """Take the writer lock, reconcile the tree with the index, then start watching. A
        :meth:`stop` from another thread meanwhile ends it with :class:`IndexStopped`."""
        if self._stopping.is_set():
            raise IndexStopped(f"watching {self.root} stopped")
        bound_heap()  # this process runs for hours: its heap must not fragment (codesearch.heap)
        lock = writer_lock(self.index_dir)
        lock.__enter__()
        self._lock = lock
        try:
            self._observer = self._start_observer()  # before reconciling: no edit falls in between
            stats = self._update()
            if self._stopping.is_set():
                raise IndexStopped(f"watching {self.root} stopped")
        except BaseException:
            self.stop()
            raise
        self._thread = threading.Thread(target=self._loop, name="codesearch-watch", daemon=True)
        self._thread.start()
        return stats

    def stop(self, timeout: float | None = None) -> bool:
        """Stop watching: the running update ends at its next batch (what it committed stays,
        the next start resumes), then the index is compacted and the writer lock released.
        Returns once that is done, or ``False`` when ``timeout`` passed first: then the thread
        still writing releases the lock as it ends. Safe to call from any thread, more than once."""
        self._stopping.set()
        self._changed.set()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
        deadline = None if timeout is None else time.monotonic() + timeout
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                return False
        left = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._writing.acquire(timeout=left):  # an update on another thread (start) has not ended yet
            return False
        try:
            self._finish()
        finally:
            self._writing.release()
        return True

    def _finish(self) -> None:
        """Compact what was written since the last compaction and release the writer lock
        (once; the caller holds ``_writing``, so nothing writes now)."""
        if self._lock is None or self._updating:  # a stop from a signal handler, amid an update on this thread
            return
        if self._uncompacted:  # leave the index compacted
            with contextlib.suppress(Exception):
                Store.open(self.index_dir).finish_writes()
            self._uncompacted = False
        lock, self._lock = self._lock, None
        lock.__exit__(None, None, None)

    @property
    def idle(self) -> bool:
        """No event waiting and no update running: the index matches the last events seen."""
        return not self._changed.is_set() and not self._busy

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    def wait(self, timeout: float | None = None) -> None:
        """Block until stopped (Ctrl-C in the CLI) or until an update fails."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> Watcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- events ---------------------------------------------------------------------------------
    def _signal(self, rel: str | None = None) -> None:
        """``rel``: the posix path that changed; None: something wider (walk the tree)."""
        now = time.monotonic()
        with self._paths_lock:
            if rel is None or len(self._paths) >= MAX_PATHS:
                self._walk = True
            else:
                self._paths.add(rel)
            if not self._changed.is_set():
                self._first_event = now
            self._last_event = now
            self._changed.set()

    def _urgent(self) -> list[str]:
        """The paths of a burst that has gone quiet (``URGENT_QUIET_S``, or waited ``max_wait_s``),
        taken for the running update to do before its backlog; none while the burst goes on. A
        burst that also asked for a walk leaves that walk to the next update."""
        with self._paths_lock:
            now = time.monotonic()
            quiet = self._last_event + min(self.debounce_s, URGENT_QUIET_S)
            if not self._paths or now < min(quiet, self._first_event + self.max_wait_s):
                return []
            paths = sorted(self._paths)
            self._paths = set()
            if not self._walk:  # nothing left for the next update
                self._changed.clear()
            return paths

    def _start_observer(self) -> Any:
        handler = _Events(self.root, self.index_dir, self._signal, self.folders)
        if not self.polling:
            try:  # the kernel dropped events: walk the tree
                return observers.start(str(self.root), handler, self.folders, on_overflow=self.rescan)
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EMFILE):
                    raise
                log.warning(
                    "the OS file-watch limit is exhausted (%s; on Linux raise fs.inotify.max_user_watches); "
                    "polling %s every %.0f s instead",
                    exc.strerror,
                    self.root,
                    POLL_INTERVAL_S,
                )
                self.polling = True
        return observers.start(str(self.root), handler, self.folders, polling_interval=POLL_INTERVAL_S)

    def _loop(self) -> None:
        try:
            self._watch()
        finally:
            if self._stopping.is_set():  # a stop that gave up waiting left the lock to this thread
                with self._writing:
                    self._finish()

    def _watch(self) -> None:
        while not self._stopping.is_set():
            self._changed.wait()
            if self._stopping.is_set():
                return
            while True:  # debounce: wait for quiet, but not longer than max_wait
                now = time.monotonic()
                quiet_at = self._last_event + self.debounce_s
                deadline = self._first_event + self.max_wait_s
                if now >= min(quiet_at, deadline) or self._stopping.is_set():
                    break
                time.sleep(min(quiet_at, deadline) - now)
            self._busy = True
            try:
                self._update()
            except IndexStopped:
                return
            except CodesearchError as exc:  # a lasting problem (model, lock, corrupt index): stop with it
                log.error("updating the index failed: %s", exc)
                self.error = exc
                self._stopping.set()
                return
            except Exception as exc:  # anything else may pass (a file system hiccup): retry on the next event
                log.warning("updating the index failed (%s: %s); retrying on the next change", type(exc).__name__, exc)
            finally:
                self._busy = False

    def _update(self) -> IndexStats:
        with self._writing:
            if self._stopping.is_set():
                raise IndexStopped(f"watching {self.root} stopped")
            self._updating = True
            try:
                return self._update_now()
            finally:
                self._updating = False

    def _update_now(self) -> IndexStats:
        with self._paths_lock:  # take the burst; events from now on make the next one
            paths = None if self._walk else sorted(self._paths)
            self._paths, self._walk = set(), False
            self._changed.clear()
        if paths is None and self._observer is not None:  # folders or rules may have changed: watch the kept ones
            observers.resync(self._observer)
        compact = time.monotonic() - self._compacted >= COMPACT_EVERY_S
        indexer = Indexer(
            self.root,
            self.index_dir,
            dataclasses.replace(self.options, rebuild=self.rebuild),
            embedder=self.embedder,
            load=self.load,
            on_progress=self.on_progress,
            compact=compact,
            stop=self._stopping,
            urgent=self._urgent,
        )
        self.rebuild = False
        indexer.opened = self.opened
        try:
            stats = indexer.run(locked=True, paths=paths)
        except BaseException:
            with self._paths_lock:  # not done: the next update walks the tree
                self._walk = True
            raise
        if compact:
            self._compacted = time.monotonic()
            release_free_heap()
        self._uncompacted = not compact and bool(stats.files_changed or stats.files_deleted)
        self.embedder = indexer.embedder or self.embedder  # loaded once, kept for later updates
        self.updates += 1
        self.on_update(stats)
        return stats
