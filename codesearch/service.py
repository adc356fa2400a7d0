"""Serving indexes to an editor: the library side of the language server.

Owns a :class:`Workspace` of :class:`Project` s, one per workspace folder. A project indexes its
folder in the background (then keeps it current with the :class:`~codesearch.index.watcher.Watcher`,
unless watching is off), reports progress through a callback, and answers queries from whatever
is committed so far, saying when that is partial. When another process already writes the
folder's index (a ``codesearch watch``, a second editor), the project only reads it. The
workspace ranks the results of all folders on one scale, finds code like a selection, and loads each
model once for the whole process: the queries and the indexers of every folder share it
(:class:`~codesearch.embedding.SharedModels`). Nothing here knows about LSP; ``lsp`` converts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesearch.config import default_index_dir
from codesearch.embedding import Embedder, SharedModels, loaded_models
from codesearch.errors import CodesearchError, IndexCorruptError, IndexLockedError, UsageError
from codesearch.files.names import disk_file, stored_path
from codesearch.index import Indexer, IndexStats, Progress
from codesearch.index.indexer import IndexStopped
from codesearch.options import IndexOptions
from codesearch.search import Searcher, SearchResult, check_filters, index_status
from codesearch.store import Hit, fuse, read_meta, score_bounds

log = logging.getLogger(__name__)

# a hybrid query in two steps (see Workspace._each): a folder's candidates, then its results of them fused
Stages = tuple[
    Callable[[Searcher], list[list[Hit]] | None],
    Callable[[Searcher, list[Hit]], list[SearchResult]],
]


@dataclass(frozen=True)
class ProjectOptions(IndexOptions):
    """How a workspace indexes its folders (the language server's initialization options): the
    indexing options every engine takes, and how the server keeps them (index folder, watching)."""

    index_dir: Path | None = None  # one folder only; default: the per-user data folder per root
    watch: bool = True


@dataclass(frozen=True)
class Found:
    """A search result and the workspace folder it belongs to."""

    root: Path
    result: SearchResult

    @property
    def file(self) -> Path:
        return disk_file(self.root, self.result.path)  # the stored path maps back to the real name


@dataclass
class Answer:
    """Results, and whether they come from an index still being built (``partial``)."""

    results: list[Found] = field(default_factory=list)
    partial: bool = False
    notes: list[str] = field(default_factory=list)  # why it is partial, per folder


class Project:
    """One workspace folder: its index, kept current in the background, and its searcher."""

    def __init__(
        self,
        root: Path,
        options: ProjectOptions,
        query_model: Callable[[str | None], Embedder],
        on_progress: Callable[[Project, Progress], None] | None = None,
        on_done: Callable[[Project, IndexStats | None], None] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.options = options
        self.index_dir = options.index_dir or default_index_dir(self.root)
        self.state = "starting"  # indexing, ready, reading (another process writes), failed, closed
        self.error = ""
        self.failure: CodesearchError | None = None  # why indexing failed, to answer queries with
        self.progress: Progress | None = None
        self._query_model = query_model
        self._on_progress = on_progress or (lambda project, progress: None)
        self._on_done = on_done or (lambda project, stats: None)
        self._watcher: Any = None
        self._searcher: Searcher | None = None
        self._lock = threading.Lock()
        self._opened: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()  # set by close: the writer stops at its next batch

    # -- indexing -------------------------------------------------------------------------------
    def start(self) -> None:
        """Index in the background (then watch); returns at once."""
        self.state = "indexing"
        self._thread = threading.Thread(target=self._index, name=f"codesearch-index-{self.root.name}", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> None:
        """Until the background indexing (not the watching after it) is over."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _index(self) -> None:
        stats: IndexStats | None = None
        try:
            if self.options.watch:
                from codesearch.index.watcher import Watcher

                watcher = Watcher(
                    self.root, self.index_dir, self.options, load=self._query_model, on_progress=self._progress
                )
                watcher.opened.update(self._opened)
                self._opened = watcher.opened
                with self._lock:  # known before its first update: close() stops that one too
                    if self._stop.is_set():
                        raise IndexStopped(f"indexing {self.root} stopped")
                    self._watcher = watcher
                stats = watcher.start()
            else:
                indexer = Indexer(
                    self.root,
                    self.index_dir,
                    self.options,
                    load=self._query_model,
                    on_progress=self._progress,
                    stop=self._stop,
                )
                indexer.opened.update(self._opened)
                self._opened = indexer.opened  # shared: a file opened now jumps the running run's queue
                stats = indexer.run()
            self.state = "ready" if self.state != "closed" else "closed"
        except IndexStopped:  # closed: what was committed stays, the next run resumes
            log.info("%s: indexing stopped", self.root)
        except IndexLockedError as exc:
            self.state, self.error = "reading", str(exc)
            log.info("%s: %s; serving what it has written", self.root, exc)
        except CodesearchError as exc:
            self.state, self.error, self.failure = "failed", str(exc), exc
            log.error("indexing %s failed: %s", self.root, exc)
        except Exception as exc:  # a bug or an OS failure: the server keeps serving other folders
            self.state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("indexing %s failed", self.root)
        if self.state == "closed" and self._watcher is not None:
            self._watcher.stop()
        self._on_done(self, stats)

    def _progress(self, progress: Progress) -> None:
        self.progress = progress
        self._on_progress(self, progress)

    @property
    def watching(self) -> bool:
        return self._watcher is not None and bool(self._watcher.running)

    def reindex(self) -> bool:
        """Walk the tree again: the watcher does it as its next update; else a new background
        run starts (then ``True``: the caller may show its progress)."""
        if self.watching:
            self._watcher.rescan()
            return False
        if self.state == "indexing":
            return False
        self.error, self.failure = "", None
        self.start()
        return True

    def note_opened(self, rel: str) -> None:
        self._opened[rel] = time.time()

    # -- reading --------------------------------------------------------------------------------
    def searcher(self) -> Searcher | None:
        """The searcher, once the index exists (``None`` before its first commit)."""
        with self._lock:
            if self._searcher is None:
                try:
                    read_meta(self.index_dir)
                except (OSError, ValueError):
                    return None
                self._searcher = Searcher(self.index_dir, load=self._query_model)
            return self._searcher

    def lost_index(self) -> None:
        """The index went away while in use: the next query reopens it, and a watching project
        walks the tree again, which rebuilds it."""
        with self._lock:
            self._searcher = None
        if self.watching:
            self.reindex()

    def partial_note(self) -> str:
        """Why results from this folder may be incomplete ('' when they are not)."""
        if self.state == "failed":
            return f"{self.root.name}: indexing failed: {self.error}"
        if self.state in ("starting", "indexing"):
            progress = self.progress
            if progress is None:
                return f"{self.root.name}: indexing, results so far"
            if progress.phase == "indexing":
                return (
                    f"{self.root.name}: indexing {progress.files_done} of {progress.files_total} files, results so far"
                )
            return f"{self.root.name}: embedding {progress.files_done} of {progress.files_total} files"
        return ""

    def status(self) -> dict[str, Any]:
        found: dict[str, Any] = dict(root=str(self.root), index_dir=str(self.index_dir), state=self.state)
        if self.error:
            found["error"] = self.error
        if self.progress is not None and self.state == "indexing":
            found["progress"] = self.progress.as_dict()
        try:
            found.update(index=index_status(self.index_dir))
        except CodesearchError as exc:
            found.update(index=None, index_error=str(exc))
        return found

    def close(self, timeout: float | None = None) -> bool:
        """Stop indexing and watching: the writer stops at its next batch, then the index is
        compacted and unlocked. Returns once that is done, or ``False`` when ``timeout`` passed
        first (``0``: only ask; the writing thread unlocks the index as it ends)."""
        with self._lock:
            self.state = "closed"
            self._stop.set()
            watcher = self._watcher
        deadline = None if timeout is None else time.monotonic() + timeout
        done = watcher is None or bool(watcher.stop(timeout))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            done = done and not thread.is_alive()
        return done


class Workspace:
    """The folders an editor has open, each with its :class:`Project`."""

    def __init__(
        self,
        options: ProjectOptions | None = None,
        on_progress: Callable[[Project, Progress], None] | None = None,
        on_done: Callable[[Project, IndexStats | None], None] | None = None,
    ) -> None:
        self.options = options or ProjectOptions()
        self.projects: dict[Path, Project] = {}
        self._on_progress = on_progress
        self._on_done = on_done
        self.models = SharedModels(self.options.device, self.options.dtype)  # queries and indexers alike
        self._closing: list[threading.Thread] = []  # folders removed, stopping in the background

    def add_folder(self, root: Path, start: bool = True) -> Project:
        root = root.resolve()
        if root in self.projects:
            return self.projects[root]
        if not root.is_dir():
            raise UsageError(f"cannot index {root}: not a folder")
        if self.options.index_dir is not None and self.projects:
            raise UsageError("an explicit index folder serves one workspace folder only")
        project = Project(root, self.options, self._query_model, self._on_progress, self._on_done)
        self.projects[root] = project
        if start:
            project.start()
        return project

    def remove_folder(self, root: Path) -> None:
        """Forget a folder. Its writer stops in the background (at its next batch: the caller,
        an event loop, is not held up), then its index is unlocked."""
        project = self.projects.pop(root.resolve(), None)
        if project is not None:
            closing = threading.Thread(target=project.close, name=f"codesearch-close-{root.name}", daemon=True)
            self._closing.append(closing)
            closing.start()

    def project_for(self, path: Path) -> Project | None:
        """The project whose folder holds ``path`` (the innermost one)."""
        path = path.resolve()
        best: Project | None = None
        for root, project in self.projects.items():
            inside = path == root or root in path.parents
            if inside and (best is None or len(root.parts) > len(best.root.parts)):
                best = project
        return best

    def _query_model(self, name: str | None) -> Embedder:
        return self.models.load(name)  # one copy per model for every folder's queries and indexer

    # -- queries ----------------------------------------------------------------------------------
    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        languages: list[str] | None = None,
        path_glob: str | None = None,
    ) -> Answer:
        """The best ``k`` of all folders. A hybrid query fuses the candidates of every folder on one
        scale (each folder's best is not 1 unless it is the best of all), so a folder that holds no
        answer does not crowd out one that does. Bad filters are a :class:`UsageError` even while
        no folder has an index yet."""
        check_filters(languages, path_glob)
        stages: Stages | None = None
        if mode == "hybrid":
            stages = (
                lambda searcher: searcher.candidates(query, k, languages, path_glob),
                lambda searcher, fused: searcher.best_definitions(fused, k, query),
            )
        return self._each(lambda searcher: searcher.search(query, k, mode, languages, path_glob), k, stages)

    def similar(self, file: Path, start_line: int, end_line: int, k: int = 10) -> Answer:
        """Code like lines ``start_line``..``end_line`` (1-based, inclusive) of ``file``."""
        project = self.project_for(file)
        if project is None:
            raise UsageError(f"{file} is not inside a workspace folder")
        try:
            lines = file.read_text(encoding="utf-8", errors="replace").split("\n")
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from exc
        if not 1 <= start_line <= end_line or start_line > len(lines):
            raise UsageError(f"lines {start_line}-{end_line} are not in {file} ({len(lines)} lines)")
        code = "\n".join(lines[start_line - 1 : end_line])
        rel = stored_path(file.resolve().relative_to(project.root).as_posix())

        def excluded(searcher: Searcher) -> tuple[str, int, int] | None:
            own = searcher.index_dir == project.index_dir
            return (rel, start_line, end_line) if own else None  # the selection, in its own folder

        stages: Stages = (
            lambda searcher: searcher.candidates(code, k + 3, code=True),
            lambda searcher, fused: searcher.best_similar(fused, k, excluded(searcher)),
        )
        return self._each(lambda searcher: searcher.similar(code, k, exclude=excluded(searcher)), k, stages)

    def _each(self, query: Callable[[Searcher], list[SearchResult]], k: int, stages: Stages | None = None) -> Answer:
        """``query`` asked of every folder, results merged by score. ``stages``: a hybrid query in
        two steps, candidates, then results of the candidates fused on one scale over all folders
        (a folder that ranks by words alone answers ``query`` instead)."""
        answer = Answer()
        failures: list[CodesearchError] = []
        answered = False
        ready: list[tuple[Project, Searcher]] = []
        for project in list(self.projects.values()):
            note = project.partial_note()
            if note:
                answer.partial = True
                answer.notes.append(note)
            try:
                searcher = project.searcher()  # opens the index read-only
            except IndexCorruptError as exc:  # a table missing or unreadable: its writer repairs it
                project.lost_index()
                failures.append(exc)
                continue
            if searcher is None:
                if project.failure is not None:
                    failures.append(project.failure)
                else:  # not written yet, or being rebuilt
                    answer.partial = True
                    answer.notes.append(f"{project.root.name}: no index to search yet")
                continue
            ready.append((project, searcher))
        candidates: dict[Path, list[list[Hit]]] = {}
        lost: set[Path] = set()
        if stages is not None:
            for project, searcher in ready:
                try:
                    found_candidates = stages[0](searcher)
                except IndexCorruptError as exc:  # deleted or damaged under us: reopen and rebuild
                    project.lost_index()
                    failures.append(exc)
                    lost.add(project.root)
                    continue
                if found_candidates is not None:
                    candidates[project.root] = found_candidates
        # one scale: each kind of ranking (dense, lexical) normalised over every folder's candidates
        bounds = [score_bounds([rankings[kind] for rankings in candidates.values()]) for kind in range(2)]
        for project, searcher in ready:
            if project.root in lost:
                continue
            try:
                if stages is not None and project.root in candidates:
                    rankings = candidates[project.root]
                    found = stages[1](searcher, fuse(rankings, sum(len(r) for r in rankings), bounds=bounds))
                else:
                    found = query(searcher)
            except IndexCorruptError as exc:  # deleted or damaged under us: reopen and rebuild
                project.lost_index()
                failures.append(exc)
                continue
            answered = True
            answer.results.extend(Found(project.root, r) for r in found)
            if searcher.words_only:
                answer.partial = True
                answer.notes.append(f"{project.root.name}: ranked by words alone: {searcher.words_only}")
            elif project.state in ("starting", "indexing") or searcher.dense_coverage() < 1.0:
                answer.partial = True
        if failures and not answered:  # nothing to search at all: say why, and what to do
            raise failures[0]
        answer.results.sort(key=lambda found: found.result.score, reverse=True)
        del answer.results[k:]
        return answer

    def note_opened(self, file: Path) -> None:
        """An editor opened ``file``: its folder embeds it before the rest."""
        project = self.project_for(file)
        if project is not None:
            project.note_opened(stored_path(file.resolve().relative_to(project.root).as_posix()))

    def status(self) -> list[dict[str, Any]]:
        return [project.status() for project in self.projects.values()]

    @staticmethod
    def models_loaded() -> list[dict[str, str]]:
        """The models this process holds (one entry per copy: name, device, dtype)."""
        return loaded_models()

    def close(self, timeout: float | None = None) -> bool:
        """Stop every folder's writer (all at once), as :meth:`Project.close`; ``False`` when
        ``timeout`` passed before they all ended."""
        projects = list(self.projects.values())
        self.projects.clear()
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        for project in projects:
            project.close(timeout=0)  # ask them all first: they stop in parallel
        done = [project.close(left()) for project in projects]
        for closing in self._closing:
            closing.join(left())
            done.append(not closing.is_alive())
        return all(done)
