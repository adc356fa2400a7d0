"""What an index run reports, and how runs exclude each other.

- :class:`IndexStats`: what one run did; :class:`Progress`: the counters callers watch.
- ``progress.json`` in the index folder, so another process (``codesearch status``, a
  language server that is not the writer) sees how far a running ``index`` or ``watch`` got.
- :func:`writer_lock`: one writer per index folder (``writer.lock``: an OS lock through
  ``filelock``, ``flock`` on POSIX and ``msvcrt`` on Windows, so it ends with the process).

The file is written at most every ``WRITE_EVERY_S`` (and at each phase change) with the
writer's pid, and removed when the run ends. A file whose pid is gone was left by a killed run
and is ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from filelock import FileLock, Timeout

from codesearch.errors import IndexLockedError
from codesearch.store.layout import IndexDir, Remote, write_json

PROGRESS = "progress.json"
LOCK_FILE = "writer.lock"
WRITE_EVERY_S = 0.5


@dataclass
class IndexStats:
    """What one ``index`` run did (the ``--json`` object of the CLI)."""

    files: int = 0
    chunks: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    files_skipped: int = 0
    files_changed: int = 0
    files_deleted: int = 0
    files_unchanged: int = 0
    seconds: float = 0.0
    model: str = ""
    model_reason: str = ""  # why this index uses its model (``auto`` says what it found)
    truncated: int = 0
    secrets_redacted: int = 0  # secrets replaced by «redacted KIND» in the files read this run
    skipped: dict[str, int] = field(default_factory=dict)
    index_dir: str = ""
    engine: str = "local"  # or "ray"
    write_seconds: float = 0.0  # spent committing vectors and rows (the single writer's share)
    repaired: str = ""  # the damage this run found and rebuilt the index for ('' when none)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Progress:
    files_total: int
    phase: str = "indexing"  # "indexing": the lexical pass; then "embedding": the dense pass
    files_done: int = 0
    chunks_done: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    started: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProgressFile:
    """Mirrors a run's :class:`Progress` into ``progress.json`` (throttled)."""

    def __init__(self, index_dir: IndexDir) -> None:
        self.path = None if isinstance(index_dir, Remote) else index_dir / PROGRESS  # local only
        self._written = 0.0
        self._phase = ""

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        if self.path is None or (progress.phase == self._phase and now - self._written < WRITE_EVERY_S):
            return
        self._written, self._phase = now, progress.phase
        with contextlib.suppress(OSError):  # progress is a courtesy; it never fails a run
            write_json(self.path, dict(progress.as_dict(), pid=os.getpid(), updated=time.time()))

    def clear(self) -> None:
        self._phase = ""
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)


def read_progress(index_dir: IndexDir) -> dict[str, Any] | None:
    """The progress of the run writing this index now, or ``None`` when none is running (or
    the index is remote: progress files are local)."""
    if isinstance(index_dir, Remote):
        return None
    try:
        data = json.loads((index_dir / PROGRESS).read_text(encoding="utf-8"))
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # left by a killed run
        except PermissionError:
            pass  # alive, another user's
    return dict(data) if isinstance(data, dict) else None


def writer_running(index_dir: IndexDir) -> bool:
    """Whether a process holds the writer lock of ``index_dir`` now (an index run or a watcher,
    perhaps still loading its model before its first commit). Never creates the folder."""
    if isinstance(index_dir, Remote) or not (index_dir / LOCK_FILE).is_file():
        return False
    lock = FileLock(str(index_dir / LOCK_FILE), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    except OSError:  # a lock file this user cannot open: not ours to report
        return False
    lock.release()
    return False


@contextlib.contextmanager
def writer_lock(index_dir: IndexDir) -> Iterator[None]:
    """One writer per index: a second ``index`` on the same folder fails with a clear message.
    An object store has no lock: there, running one writer at a time is the caller's job."""
    if isinstance(index_dir, Remote):
        yield
        return
    index_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # not thread-local: a watcher takes the lock on one thread and may release it on another
    lock = FileLock(str(index_dir / LOCK_FILE), thread_local=False)
    try:
        lock.acquire(timeout=0)  # one try, never wait
    except Timeout as exc:
        raise IndexLockedError(
            f"another codesearch process is writing the index at {index_dir}; wait for it to finish"
        ) from exc
    try:
        yield
    finally:
        lock.release()
