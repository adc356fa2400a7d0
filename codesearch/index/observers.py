"""File-system observers that watch only the folders a walk of the tree enters.

watchdog's recursive watch puts an inotify watch on every folder below the root: with a
virtualenv or ``node_modules`` in the tree that is thousands of watches, a kernel queue that
overflows while pip or npm writes there, and events for files that are never indexed. On Linux
:func:`start` returns an inotify observer whose watch group adds a watch only for the folders
:class:`~codesearch.files.walk.Folders` keeps: at start, for each folder created or moved in (its
ignored subfolders are never listed), and at :func:`resync` (after an ignore file changed or a
folder moved, which also drops the watches of folders no longer kept). It reports a queue
overflow, after which the watcher walks the tree. FSEvents (macOS) and ReadDirectoryChangesW
(Windows) watch a whole tree through one handle, so there the plain recursive observer runs and
the watcher drops events under ignored folders. The polling fallback never lists ignored folders.

The inotify side builds on watchdog's own inotify classes (7.0 and later); with an older
watchdog it falls back to the plain recursive observer and says so once.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserverVFS
from watchdog.version import VERSION_STRING as _version

from codesearch.files.walk import Folders

log = logging.getLogger(__name__)

# watched although ignored: .git/HEAD (a checkout) and .git/info/exclude (ignore rules) live there
_GIT_FOLDERS = (b".git", b".git/info")

try:  # Linux, watchdog >= 7: one inotify descriptor, watch groups that add their own watches
    from watchdog.observers.api import BaseObserver
    from watchdog.observers.inotify import InotifyEmitter, InotifyWatchGroup
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD, Mask

    _PRUNED = all(hasattr(InotifyWatchGroup, name) for name in ("_add_all_callbacks", "_recursive_simulate"))
except (ImportError, OSError):  # another platform (no inotify), or an older watchdog
    _PRUNED = False


if _PRUNED:

    @dataclass
    class _KeptWatchGroup(InotifyWatchGroup):
        """A recursive watch group that watches only kept folders."""

        folders: Folders | None = None
        on_overflow: Callable[[], None] | None = None

        def _kept_under(self, path: bytes) -> list[bytes]:
            assert self.folders is not None
            rel = self.folders.rel(os.fsdecode(path))
            kept = [] if rel is None else [os.fsencode(folder) for folder in self.folders.under(rel)]
            if path == self.path:  # the root, always; and the repository's folders that hold HEAD and exclude
                kept = [
                    path,
                    *(os.path.join(path, d) for d in _GIT_FOLDERS if os.path.isdir(os.path.join(path, d))),
                ] + [folder for folder in kept if folder != path]
            return kept

        def _add_all_callbacks(self, path: bytes) -> None:
            for folder in self._kept_under(path):
                self._add_callback(folder)

        def _recursive_simulate(self, src_path: bytes) -> list[InotifyEvent]:
            """Creation events for what a new folder already holds, kept folders only."""
            events = []
            for folder in self._kept_under(src_path):
                wd = self._active_callbacks_by_path.get(folder)
                if wd is None:
                    continue
                try:
                    with os.scandir(folder) as it:
                        entries = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in it]
                except OSError:
                    continue
                for name, is_dir in entries:
                    mask = InotifyConstants.IN_CREATE | (InotifyConstants.IN_ISDIR if is_dir else 0)
                    events.append(InotifyEvent(wd, Mask(mask), 0, name))
            return events

        def on_queue_overflow(self) -> None:
            super().on_queue_overflow()
            if self.on_overflow is not None:
                self.on_overflow()

        def resync(self) -> None:
            """Watch exactly the kept folders again (the rules or the folders changed)."""
            assert self.folders is not None
            with self._lock:
                if not self.is_active:
                    return
                self.folders.reset()
                kept = set(self._kept_under(self.path))
                stale = [wd for path, wd in self._active_callbacks_by_path.items() if path not in kept]
                if stale:
                    self._remove_callbacks(stale)
                for folder in sorted(kept - set(self._active_callbacks_by_path)):
                    self._add_callback(folder)

        @property
        def watched(self) -> int:
            return len(self._active_callbacks_by_path)

    class _KeptEmitter(InotifyEmitter):
        def __init__(
            self, *args: Any, folders: Folders, on_overflow: Callable[[], None] | None = None, **kwargs: Any
        ) -> None:
            self.folders = folders
            self.on_overflow = on_overflow
            super().__init__(*args, **kwargs)

        def on_thread_start(self) -> None:
            self._inotify = _KeptWatchGroup(
                self._inotify_fd,
                os.fsencode(self.watch.path),
                is_recursive=True,
                event_mask=self.get_event_mask_from_filter(),
                follow_symlink=self.watch.follow_symlink,
                folders=self.folders,
                on_overflow=self.on_overflow,
            )

    class _KeptObserver(BaseObserver):
        """watchdog's inotify observer, with :class:`_KeptEmitter` s."""

        def __init__(self, folders: Folders, on_overflow: Callable[[], None] | None) -> None:
            self._inotify_fd = InotifyFD()
            self._inotify_fd.start()
            super().__init__(_KeptEmitter, inotify_fd=self._inotify_fd, folders=folders, on_overflow=on_overflow)

        def on_thread_stop(self) -> None:
            super().on_thread_stop()
            self._inotify_fd.stop()
            self._inotify_fd.join()

        def groups(self) -> list[_KeptWatchGroup]:
            groups = (getattr(emitter, "_inotify", None) for emitter in list(self.emitters))
            return [group for group in groups if isinstance(group, _KeptWatchGroup)]


def start(
    root: str,
    handler: FileSystemEventHandler,
    folders: Folders,
    *,
    polling_interval: float | None = None,
    on_overflow: Callable[[], None] | None = None,
) -> Any:
    """A started observer of ``root`` sending its events to ``handler``: polling every
    ``polling_interval`` seconds when given, else the OS's own notifications. Raises
    :class:`OSError` when the OS cannot watch (the inotify watch or instance limit)."""
    if polling_interval is not None:
        observer: Any = PollingObserverVFS(os.stat, folders.scandir, polling_interval=polling_interval)
    else:
        observer = native(folders, on_overflow)
    observer.schedule(handler, root, recursive=True)
    try:
        observer.start()
    except BaseException:
        observer.stop()  # its own threads (inotify's reader) end too
        raise
    return observer


def native(folders: Folders, on_overflow: Callable[[], None] | None = None) -> Any:
    """The OS's own observer (not started): on Linux one that watches kept folders only."""
    if _PRUNED:
        return _KeptObserver(folders, on_overflow)
    if sys.platform.startswith("linux"):
        log.warning("watchdog %s watches every folder of the tree, ignored ones too (7.0 or later does not)", _version)
    return Observer()


def resync(observer: Any) -> None:
    """Watch exactly the folders kept now (after ignore rules or folders changed)."""
    if _PRUNED and isinstance(observer, _KeptObserver):
        for group in observer.groups():
            group.resync()


def watched_folders(observer: Any) -> int | None:
    """How many folders ``observer`` watches one by one, or None when it does not count them."""
    if _PRUNED and isinstance(observer, _KeptObserver):
        return sum(group.watched for group in observer.groups())
    return None
