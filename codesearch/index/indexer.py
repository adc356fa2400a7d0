"""Indexing a source tree: plan what changed, then chunk, embed and write it in bounded batches.

The vocabulary, written down once:

- **file record**: path, size, mtime_ns, content hash, chunk ids (``chunk_id``: path, lines and
  vector key), whether all its vectors are in: the catalog of what is indexed.
- **vector key**: hash of (model id, revision, pooling, exact text embedded). Equal keys mean
  an equal vector, so a cached vector is reused instead of computed. The embedded text holds
  no file path: a renamed file, a branch switched back, or an unchanged tree embeds nothing.
- **plan**: files to (re)chunk, files whose stat changed but whose bytes did not (touch only),
  and paths to delete. Planning reads stats only; doing reads the changed files.
- **batch**: up to ``BATCH_CHUNKS`` chunks of whole files, committed together. A file's catalog
  record is written only after its chunk rows are committed. A run given a ``stop`` event
  checks it between batches and ends there (``IndexStopped``); the next run resumes.
- **two passes**: the *lexical* pass chunks every changed file and commits its rows at once,
  with the cached vectors where there are some and ``embedded = false`` elsewhere, so a fresh
  tree is searchable by words within seconds. The *dense* pass then embeds the files whose
  catalog record says ``dense = false`` (open files, work in progress and recent commits first:
  ``priority.dense_order``) and rewrites their rows with vectors. Dense search only sees
  embedded rows; a killed run resumes the dense pass.
- **pre-emption**: a run given an ``urgent`` callback (a watcher's quiet burst of saved files)
  and files newly opened in an editor (``note_opened``) do those first. Between two files and
  between the slices of a batch being embedded (``SLICE_S`` of work each), the run plans those
  paths alone and commits their rows on the same store (``preempt``), with the vectors of what
  the edit changed (its texts that are not among the file's old rows, about ``URGENT_S`` of
  work): the edit is found by words and by meaning at once. Whatever of those files still lacks
  vectors goes to the **front** of the dense backlog (embedded next, a file opened in an editor
  too); then the backlog resumes. A file so re-done is dropped from the backlog's pending batch
  and later records (its rows in the backlog would be stale), so nothing older is committed
  over it. A pre-emptible run whose lexical pass wrote many rows compacts before its dense
  pass, so words queries during that pass use the full-text index, and again now and then during
  that pass (the rows it embeds leave that index: ``MAINTAIN_DUTY``).
- **stat snapshot** (``store.layout``): the stats a complete run saw. A re-index whose walk
  finds the same stats stops there, without opening the tables.
- **row policy** (``codesearch.options``): what shaped a file's rows besides its bytes (chunker
  version, secrets mode, redaction patterns), kept in its record. A file whose policy is not
  the current one is read again like a changed file: when its new rows equal its old ones only
  its record changes, else its rows are replaced (vectors reused where a text is unchanged). When
  the old rows may hold a secret the new policy keeps out, the run ends with a purge
  (``Store.purge``) that leaves no byte of them on disk.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codesearch.chunking import Chunk, chunk_file
from codesearch.embedding import Embedder, TokenSizer, load_embedder, load_token_counter, moved_model, resolve_model
from codesearch.errors import ModelMismatchError, StorageFullError, UsageError
from codesearch.files import SkipStats, SourceFile, check_path, load, walk
from codesearch.files.names import disk_file
from codesearch.foreground import yield_to_queries
from codesearch.index.priority import dense_order
from codesearch.index.repair import open_or_empty, stored_model
from codesearch.index.runs import LOCK_FILE, IndexStats, Progress, ProgressFile, writer_lock
from codesearch.options import IndexOptions, exposes
from codesearch.store import (
    FORMAT_VERSION,
    META,
    FileRecord,
    IndexDir,
    Snapshot,
    StoredRows,
    chunk_id,
    damage_note,
    lexical_terms,
    read_meta,
    read_snapshot,
    write_snapshot,
)

if TYPE_CHECKING:
    from codesearch.store import Store

log = logging.getLogger(__name__)

BATCH_CHUNKS = 256
SLICE_S = 0.15  # a batch is embedded in slices of about this much work: urgent files wait at most one
FIRST_SLICE_CHARS = 4_000  # the first slice of a run, before its embedding rate is known
# a pre-emptible run (readers expected) whose lexical pass wrote this many rows compacts before its
# dense pass: words queries meanwhile use the full-text index instead of scanning every new row
INDEX_WORDS_ROWS = 4 * BATCH_CHUNKS
URGENT_S = 0.2  # urgent work embeds what its edits added, about this much work (the rest: the front)
COMPACT_SMALL_EVERY = 32  # a pre-emptible run compacts the catalog and vector cache after this many commits
# A pre-emptible run's dense pass rewrites every row it embeds: rows the full-text index no longer
# covers, which a words query scans one by one (Django's first pass: words queries went from 0.3 s
# to 1.2 s by 4% of the rows embedded). Once it has rewritten INDEX_WORDS_ROWS rows it compacts and
# brings the indexes up to date, as a watcher does, at most once per MAINTAIN_MIN_S and so that
# this work takes at most MAINTAIN_DUTY of the run's time (4-6 s at Django's 84k rows).
MAINTAIN_MIN_S = 60.0
MAINTAIN_DUTY = 0.1
PURGE_PENDING = "purge_pending"  # in the meta from the first write a purge must follow until that purge


class IndexStopped(Exception):
    """A run stopped between two batches because its ``stop`` event was set: what it committed
    stays committed, and the next run resumes from there (as after a killed run)."""


def _disk_full(exc: BaseException) -> bool:
    """ENOSPC or EDQUOT, raised by Python or reported in the text of a LanceDB error."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(exc) or "Disk quota exceeded" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def chunk_source(sizer: TokenSizer, rel: str, text: str, language: str) -> list[Chunk]:
    """Chunks sized for a model, lines counted with its own tokenizer (an embedder, or its
    tokenizer alone where the model is not loaded)."""
    budget = min(sizer.spec.chunk_tokens, sizer.max_tokens)
    return chunk_file(rel, text, language, budget, count_lines=lambda lines: sizer.count_tokens(lines, special=False))


@dataclass
class Plan:
    changed: list[SourceFile]
    unchanged: list[SourceFile]
    deleted: list[str]
    catalog: dict[str, FileRecord]  # what was indexed when the plan was made


class Indexer:
    """Brings the index of ``root`` in ``index_dir`` up to date with the files on disk, as
    ``options`` say (single fields may be given as keywords instead: ``Indexer(root, dir, model=m)``)."""

    def __init__(
        self,
        root: Path,
        index_dir: IndexDir,
        options: IndexOptions | None = None,
        *,
        embedder: Embedder | None = None,
        load: Callable[[str | None], Embedder] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_lexical_done: Callable[[IndexStats], None] | None = None,
        compact: bool = True,
        stop: threading.Event | None = None,
        urgent: Callable[[], Collection[str]] | None = None,
        **option_fields: Any,
    ) -> None:
        if not root.is_dir():
            raise UsageError(f"cannot index {root}: not a readable folder")
        options = options or IndexOptions()
        self.options = dataclasses.replace(options, **option_fields) if option_fields else options
        self.root = root.resolve()
        self.index_dir = index_dir
        model = self.options.model
        self.model = None if model in (None, "auto") else model  # auto: a new index picks; an old one keeps its
        self._embedder = embedder
        self.device = self.options.device
        self.dtype = self.options.dtype
        # how the model is loaded when a run needs it (a server shares one copy with its queries)
        self._load = load or (lambda name: load_embedder(name, device=self.device, dtype=self.dtype))
        self.policy = self.options.policy  # recorded with every file's rows
        self.rebuild = self.options.rebuild
        self._rebuild_asked = self.rebuild  # ``--rebuild`` (maybe for a new model) drops the vector cache too
        self._exposed: set[str] = set()  # files whose rows may hold a secret the current policy keeps out
        self._purge = False  # whether such rows were replaced or deleted (the run ends with Store.purge)
        self.on_progress = on_progress or (lambda progress: None)
        self.on_lexical_done = on_lexical_done or (lambda stats: None)
        self.compact = compact  # compact tables and indexes after writing (a watcher does it now and then)
        self.skips = SkipStats()
        self.skips_dense = SkipStats()  # files that changed or vanished between the passes
        self._lexical_paths: set[str] = set()
        self._lexical_ready = False
        self._wrote = False  # whether this run changed the tables (then they are compacted)
        self._sizer: TokenSizer | None = None
        self.repaired = ""  # why this run found the index damaged and rebuilt it ('' when it did not)
        self._load_skipped: dict[str, list[Any]] = {}  # walked files left out: [size, mtime_ns, reason]
        self._progress_file = ProgressFile(index_dir)
        self.opened: dict[str, float] = {}  # files open in an editor → when (their vectors come first)
        self.stop = stop  # set: the run raises IndexStopped before its next batch (or slice)
        self.urgent = urgent  # posix paths to do now, before the backlog (a watcher's saved files)
        self._opened_seen: dict[str, float] = {}  # opened files this run has put first already
        self._preempting = False  # doing urgent paths amid the backlog (that reports no progress)
        self._redone: set[str] = set()  # files urgent work rewrote: the backlog's rows of them are stale
        self._front: set[str] = set()  # urgent files the dense pass takes next (what they still lack)
        self._exposed_keys: set[str] = set()  # vector keys of rows that may hold a secret (purged at the end)
        self._chars_per_s = 0.0  # the embedding rate seen so far (sizes the slices)
        self._preempted = 0  # rounds of urgent work so far
        self._commits = 0  # batches committed so far
        self._rewritten = 0  # rows the dense pass rewrote since the indexes were last brought up to date
        self._maintained = time.monotonic()  # when that last ended
        self._maintain_s = 0.0  # and how long it took

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise IndexStopped(f"indexing {self.root} stopped")

    def note_opened(self, rel: str) -> None:
        """An editor opened ``rel`` (posix, relative to the root): embed it before the rest (a
        running run does it at its next file or slice)."""
        self.opened[rel] = time.time()

    # -- entry point --------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder | None:
        """The model, once a run needed it (a watcher keeps it for its next updates)."""
        return self._embedder

    def run(self, locked: bool = False, dense: bool = True, paths: Collection[str] | None = None) -> IndexStats:
        """Bring the index up to date. ``locked``: the caller already holds the writer lock.
        ``dense=False`` stops after the lexical pass (a later run computes the vectors).
        ``paths``: only these posix paths changed (a watcher's events); else the tree is walked."""
        with contextlib.nullcontext() if locked else writer_lock(self.index_dir):
            try:
                return self._run(dense, paths)
            except (OSError, RuntimeError, ValueError) as exc:
                if not _disk_full(exc):
                    raise
                raise StorageFullError(
                    f"no space left writing the index at {self.index_dir}; free some space (or use another "
                    "--index-dir) and run the same command again: it resumes where it stopped"
                ) from exc
            finally:
                self._progress_file.clear()

    def _run(self, dense: bool, paths: Collection[str] | None) -> IndexStats:
        started = time.perf_counter()
        self._load_skipped = {}
        self._exposed, self._exposed_keys, self._purge = set(), set(), False
        self._redone, self._front, self._opened_seen = set(), set(), dict(self.opened)  # open now: first
        walked: list[SourceFile] | None = None
        local = self.index_dir if isinstance(self.index_dir, Path) else None
        if paths is not None and local is not None and (not (local / META).is_file() or damage_note(local)):
            paths = None  # the index is gone or damaged (under a watcher): only a walk rebuilds all of it
        if paths is None:
            walked = self._walk()
            unchanged = self._unchanged(walked, dense)
            if unchanged is not None:
                unchanged.seconds = round(time.perf_counter() - started, 3)
                return unchanged
        store = self._open_store()
        plan = self.plan(store, walked) if paths is None else self.plan_paths(store, paths)
        self._expose(store, plan)
        stats = IndexStats(
            model=str(store.meta.get("model_name")),
            model_reason=str(store.meta.get("model_reason", "")),
            index_dir=str(self.index_dir),
            files_unchanged=len(plan.unchanged),
            files_deleted=len(plan.deleted),
            repaired=self.repaired,
        )
        self.apply(store, plan, stats, dense)
        self.conclude(store, stats, started, snapshot=paths is None and dense)
        return stats

    # -- the stages of a run --------------------------------------------------------------------
    def apply(self, store: Store, plan: Plan, stats: IndexStats, dense: bool) -> None:
        """Do ``plan``: delete what went, chunk and commit what changed (the lexical pass), then
        embed what lacks vectors (the dense pass)."""
        if plan.deleted:
            self._will_purge(store, plan.deleted)
            store.delete_files(plan.deleted)
            self._wrote = True
        progress = Progress(files_total=len(plan.changed))
        self._lexical_pass(store, plan, stats, progress, embed_new=self._preempting)  # urgent: words and meaning
        if not (self._preempting and self._lexical_ready):  # urgent work adds to an index of words made already
            store.ensure_lexical_index()
        if not self._preempting:
            self.on_lexical_done(stats)
            if dense and self.compact and self.urgent is not None and progress.chunks_done >= INDEX_WORDS_ROWS:
                self._maintain(store)
        if dense:
            self._check_stop()
            self._dense_pass(store, stats, progress)

    def _maintain(self, store: Store) -> None:
        """Compact and bring the indexes up to date amid a pre-emptible run (queries are expected):
        words queries then use the full-text index, not a scan of the rows written since."""
        started = time.monotonic()
        store.finish_writes(compact=True)
        self._rewritten, self._maintained = 0, time.monotonic()
        self._maintain_s = self._maintained - started
        log.debug("compacted %s amid the run in %.1f s", self.index_dir, self._maintain_s)

    def preempt(self, store: Store, stats: IndexStats) -> None:
        """Do the urgent paths (the ``urgent`` callback's, and files opened since the run began)
        now: their rows with the vectors of what changed (``_lexical_pass``); what they still
        lack goes to the front of the dense backlog. Called between two files and between two
        slices of a batch; urgent work never pre-empts itself."""
        if self._preempting:
            return
        paths = self._urgent_paths()
        if not paths:
            return
        self._preempting = True
        try:
            while paths:
                began = time.perf_counter()
                plan = self.plan_paths(store, paths)
                self._expose(store, plan)
                stats.files_deleted += len(plan.deleted)
                self._redone.update(plan.deleted, (source.rel for source in plan.changed))
                self.apply(store, plan, stats, dense=False)
                self._front.update(paths)
                self._preempted += 1
                log.debug(
                    "did %d urgent path(s) before the backlog in %.3f s: %s",
                    len(paths),
                    time.perf_counter() - began,
                    paths[:5],
                )
                paths = self._urgent_paths()
        finally:
            self._preempting = False

    def conclude(self, store: Store, stats: IndexStats, started: float, snapshot: bool) -> None:
        """End a run: compact (or index the new words), purge rows that held secrets, count, and
        record the run in the meta (``snapshot``: a complete walk, whose stats are kept)."""
        if self._wrote:  # files that are skipped again (binary, too large) wrote nothing
            store.finish_writes(compact=self.compact)
        if self._purge or store.meta.get(PURGE_PENDING):  # this run's, or one a killed run left
            log.info("removing the rows that held secrets from %s", self.index_dir)
            store.purge(self._exposed_keys)
            store.meta.pop(PURGE_PENDING, None)
        stats.files = store.count_files()
        stats.chunks = store.count_chunks()
        stats.skipped = self.skips.as_dict()
        stats.files_skipped = self.skips.total
        stats.truncated = self._embedder.truncated if self._embedder is not None else 0
        stats.seconds = round(time.perf_counter() - started, 3)
        stats.write_seconds = round(stats.write_seconds, 3)
        store.write_meta(updated=time.time(), files=stats.files, chunks=stats.chunks, last_run=stats.as_dict())
        if snapshot and not self.skips_dense.total:
            self._write_snapshot(store)

    def _expose(self, store: Store, plan: Plan) -> None:
        """Note the files of ``plan`` whose rows may hold a secret the current policy keeps out,
        and those rows' vector keys (purged at the end when the rows are replaced)."""
        exposed = {rel for rel, record in plan.catalog.items() if exposes(record.policy, self.policy)}
        if exposed - self._exposed:
            self._exposed_keys |= store.vector_keys(sorted(exposed - self._exposed))
            self._exposed |= exposed

    def _urgent_paths(self) -> list[str]:
        """The ``urgent`` callback's paths, and files opened in an editor since the run began
        (or since they were last put first)."""
        paths = set(self.urgent()) if self.urgent is not None else set()
        for rel, at in dict(self.opened).items():  # a copy: an editor's thread adds to it
            if self._opened_seen.get(rel) != at:
                self._opened_seen[rel] = at
                paths.add(rel)
        return sorted(paths)

    def _stale(self, rel: str) -> bool:
        """Whether the backlog's view of ``rel`` is older than what urgent work committed."""
        return rel in self._redone and not self._preempting

    # -- the no-change fast path --------------------------------------------------------------
    def _options(self) -> str:
        """What decides which files are indexed, besides the tree itself."""
        return json.dumps(
            [str(self.root), self.options.max_file_bytes, sorted(self.options.extra_ignores), self.policy]
        )

    def _unchanged(self, walked: list[SourceFile], dense: bool) -> IndexStats | None:
        """The stats of a run with nothing to do, when the walk found exactly the stats of
        the last complete run (its snapshot); else ``None`` (plan and do as usual)."""
        if self.rebuild or not dense or damage_note(self.index_dir):
            return None
        snapshot = read_snapshot(self.index_dir)
        if snapshot is None or snapshot.options != self._options():
            return None
        try:
            meta = read_meta(self.index_dir)
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT_VERSION or self.model not in (None, meta.get("model_name")):
            return None
        if meta.get(PURGE_PENDING):
            return None  # a killed run left rows to purge
        if moved_model(meta.get("model_name"), meta.get("model_id"), meta.get("cache_key")):
            return None  # the model's weights changed: re-embedded by _open_store
        if snapshot.stats() != {source.rel: (source.size, source.mtime_ns) for source in walked}:
            return None
        for rel, (_size, _mtime, reason) in snapshot.skipped.items():
            self.skips.skip(str(reason), rel)
        return IndexStats(
            files=int(meta.get("files", len(snapshot.files))),
            chunks=int(meta.get("chunks", 0)),
            files_unchanged=len(snapshot.files),
            files_skipped=self.skips.total,
            skipped=self.skips.as_dict(),
            model=str(meta.get("model_name")),
            model_reason=str(meta.get("model_reason", "")),
            index_dir=str(self.index_dir),
        )

    def _write_snapshot(self, store: Store) -> None:
        """Record the stats of a complete run (every file indexed has all its vectors)."""
        catalog = store.file_catalog()
        if not all(record.dense for record in catalog.values()):
            return
        files = {path: [record.size, record.mtime_ns] for path, record in catalog.items()}
        write_snapshot(self.index_dir, Snapshot(str(self.root), self._options(), files, self._load_skipped))

    # -- planning -----------------------------------------------------------------------------
    def _local_index_dirs(self) -> tuple[Path, ...]:
        """The index folder, when it lies in the tree, is never indexed itself."""
        return (self.index_dir,) if isinstance(self.index_dir, Path) else ()

    def _walk(self) -> list[SourceFile]:
        return list(
            walk(
                self.root,
                stats=self.skips,
                max_file_bytes=self.options.max_file_bytes,
                extra_ignores=self.options.extra_ignores,
                exclude_dirs=self._local_index_dirs(),
                secrets=self.options.secrets,
            )
        )

    def plan(self, store: Store, walked: list[SourceFile] | None = None) -> Plan:
        """Compare the walked tree (walked now unless given) with the catalog."""
        catalog = store.file_catalog()
        changed: list[SourceFile] = []
        unchanged: list[SourceFile] = []
        seen: set[str] = set()
        for source in self._walk() if walked is None else walked:
            seen.add(source.rel)
            if self._same_stat(catalog.get(source.rel), source):
                unchanged.append(source)
            else:
                changed.append(source)
        deleted = sorted(set(catalog) - seen)
        return Plan(changed=changed, unchanged=unchanged, deleted=deleted, catalog=catalog)

    def plan_paths(self, store: Store, paths: Collection[str]) -> Plan:
        """The plan for a few known paths: each is (re)checked against the ignore rules and
        its stat, with no walk of the tree."""
        catalog = store.file_catalog(paths=sorted(set(paths)))
        changed: list[SourceFile] = []
        unchanged: list[SourceFile] = []
        deleted: list[str] = []
        for rel in sorted(set(paths)):
            source = check_path(
                self.root,
                rel,
                max_file_bytes=self.options.max_file_bytes,
                extra_ignores=self.options.extra_ignores,
                exclude_dirs=self._local_index_dirs(),
                secrets=self.options.secrets,
            )
            record = catalog.get(rel)
            if source is None:
                if record is not None:
                    deleted.append(rel)
            elif self._same_stat(record, source):
                unchanged.append(source)
            else:
                changed.append(source)
        return Plan(changed=changed, unchanged=unchanged, deleted=deleted, catalog=catalog)

    def _same_stat(self, record: FileRecord | None, source: SourceFile) -> bool:
        """Whether a file's rows stand as they are: the stat of its record, made under the current policy."""
        return (
            record is not None
            and (record.size, record.mtime_ns) == (source.size, source.mtime_ns)
            and record.policy == self.policy
        )

    # -- doing --------------------------------------------------------------------------------
    def _lexical_pass(
        self, store: Store, plan: Plan, stats: IndexStats, progress: Progress, embed_new: bool = False
    ) -> None:
        """Chunk and write the changed files, with cached vectors only (nothing is embedded; but
        urgent work, ``embed_new``, computes the vectors of what it changed for the same commit:
        ``_embed_now``)."""
        self._report(progress)
        catalog = plan.catalog
        pending: list[tuple[FileRecord, list[Chunk]]] = []
        pending_chunks = 0
        touched: list[FileRecord] = []
        for source in plan.changed:
            self._check_stop()
            self.preempt(store, stats)
            if self._stale(source.rel):  # urgent work read it more recently
                progress.files_done += 1
                continue
            loaded = load(source, self.skips, self.options.max_file_bytes, self.options.secrets)
            if loaded is None:
                self._left_out(store, catalog, source.rel, [source.size, source.mtime_ns, self.skips.last], progress)
                continue
            old = catalog.get(source.rel)
            record = FileRecord(
                source.rel, loaded.size, loaded.mtime_ns, loaded.content_hash, source.language, 0, policy=self.policy
            )
            if old is not None and old.file_hash == loaded.content_hash and old.policy == self.policy:
                touched.append(self._same_bytes(record, old, stats, progress))
                continue
            sizer = self._sizer_for(store)
            chunks = self._chunk(sizer, source.rel, loaded.text, source.language)
            keys = sizer.spec.document_keys([chunk.embedding_text() for chunk in chunks])
            if old is not None and self._same_rows(old, record, chunks, keys):
                touched.append(self._same_bytes(record, old, stats, progress))
                continue
            self._will_purge(store, [source.rel])
            stats.secrets_redacted += loaded.secrets
            pending.append((FileRecord(**{**record.__dict__, "chunks": len(chunks)}), chunks))
            pending_chunks += len(chunks)
            stats.files_changed += 1
            if pending_chunks >= BATCH_CHUNKS:
                self._flush(store, sizer, pending, stats, progress, embed=False, embed_new=embed_new)
                pending, pending_chunks = [], 0
        if pending:
            self._check_stop()
            self._flush(store, self._sizer_for(store), pending, stats, progress, embed=False, embed_new=embed_new)
        self._touch(store, touched, progress)

    # shared by the passes of every engine
    def _left_out(
        self, store: Store, catalog: dict[str, FileRecord], rel: str, stat: list[Any], progress: Progress
    ) -> None:
        """A file that cannot be indexed now (binary, huge, unreadable, holding a secret...):
        its ``[size, mtime_ns, reason]`` goes to the snapshot, and rows it had go."""
        self._load_skipped[rel] = stat
        if rel in catalog:
            self._will_purge(store, [rel])
            store.delete_files([rel])
            self._wrote = True
        progress.files_done += 1

    def _will_purge(self, store: Store, paths: Collection[str]) -> None:
        """The rows of ``paths`` are about to be replaced or deleted: when any may hold a secret the
        current policy keeps out, the run ends with a purge, and the meta says so first (a run
        killed before the purge leaves it to the next one)."""
        if not self._purge and not self._exposed.isdisjoint(paths):
            self._purge = True
            store.write_meta(**{PURGE_PENDING: True})

    @staticmethod
    def _same_rows(old: FileRecord, record: FileRecord, chunks: list[Chunk], keys: list[str]) -> bool:
        """Whether the rows of ``chunks`` (with vector ``keys``) are exactly those ``old`` lists, for
        the same bytes: a file read again for a new policy that changes nothing in it."""
        if old.file_hash != record.file_hash or len(chunks) != len(old.chunk_ids):
            return False
        ids = (chunk_id(record.path, c.start_line, c.end_line, key) for c, key in zip(chunks, keys, strict=True))
        return all(new == was for new, was in zip(ids, old.chunk_ids, strict=True))

    @staticmethod
    def _same_bytes(record: FileRecord, old: FileRecord, stats: IndexStats, progress: Progress) -> FileRecord:
        """A file with a new stat but the bytes of ``old``: its new record keeps the old rows."""
        stats.files_unchanged += 1
        progress.files_done += 1
        return FileRecord(**{**record.__dict__, "chunks": old.chunks, "dense": old.dense, "chunk_ids": old.chunk_ids})

    def _touch(self, store: Store, touched: list[FileRecord], progress: Progress) -> None:
        touched = [record for record in touched if not self._stale(record.path)]
        if touched:
            store.touch_files(touched)
            self._wrote = True
            self._report(progress)

    def _dense_pass(self, store: Store, stats: IndexStats, progress: Progress) -> int:
        """Embed the files whose rows lack vectors, in ``dense_order``, urgent work's first (the
        front, taken again before each file). A file that changed since its lexical pass is
        left to the next run (its stat no longer matches), or to urgent work."""
        queue = deque(dense_order(list(store.file_catalog(where="dense = false").values()), self.root, self.opened))
        self._redone.clear()  # the records just read are newer than anything urgent work did before
        if not queue and not self._front:
            return 0
        embedder = self._embedder_for(store)
        progress.phase, progress.files_total, progress.files_done = "embedding", len(queue), 0
        self._report(progress)
        pending: list[tuple[FileRecord, list[Chunk]]] = []
        pending_chunks = 0
        done = 0
        while True:
            self._check_stop()
            self.preempt(store, stats)
            yield_to_queries()  # reading and chunking the next file takes the CPU (and the GIL) too
            if self._front:
                pending_chunks = self._take_front(store, queue, pending, progress)
            if not queue:
                if not pending:
                    return done
                self._flush(store, embedder, pending, stats, progress, embed=True)  # urgent work may add a front
                pending, pending_chunks = [], 0
                continue
            record = queue.popleft()
            done += 1
            if self._stale(record.path):  # urgent work rewrote it: this record is older than its rows
                progress.files_done += 1
                continue
            if record.policy != self.policy:  # rows of another policy: the next walk reads the file again
                progress.files_done += 1
                continue
            loaded = load(self._source(record), self.skips_dense, self.options.max_file_bytes, self.options.secrets)
            if loaded is None or loaded.content_hash != record.file_hash:
                progress.files_done += 1
                continue
            chunks = self._chunk(embedder, record.path, loaded.text, record.language)
            pending.append((record, chunks))
            pending_chunks += len(chunks)
            if pending_chunks >= BATCH_CHUNKS:
                self._flush(store, embedder, pending, stats, progress, embed=True)
                pending, pending_chunks = [], 0

    def _take_front(
        self, store: Store, queue: deque[FileRecord], pending: list[tuple[FileRecord, list[Chunk]]], progress: Progress
    ) -> int:
        """Put the files urgent work did (or an editor opened) at the head of the dense ``queue``,
        as the catalog has them now (those still lacking vectors; the queue's and ``pending``'s
        older views of them go). Returns the chunks left pending."""
        paths, self._front = self._front, set()
        fresh = [r for r in store.file_catalog(paths=sorted(paths)).values() if not r.dense]
        kept = [record for record in queue if record.path not in paths]
        progress.files_done += len(queue) - len(kept)
        queue.clear()
        queue.extend(sorted(fresh, key=lambda r: -self.opened.get(r.path, 0.0)))  # opened last, first
        queue.extend(kept)
        progress.files_total += len(fresh)
        progress.files_done += sum(1 for record, _chunks in pending if record.path in paths)
        pending[:] = [(record, chunks) for record, chunks in pending if record.path not in paths]
        self._redone -= paths  # the backlog now holds only their current records
        return sum(len(chunks) for _record, chunks in pending)

    def _source(self, record: FileRecord) -> SourceFile:
        path = disk_file(self.root, record.path)
        return SourceFile(
            path=path, rel=record.path, size=record.size, mtime_ns=record.mtime_ns, language=record.language
        )

    def _flush(
        self,
        store: Store,
        sizer: TokenSizer,
        pending: list[tuple[FileRecord, list[Chunk]]],
        stats: IndexStats,
        progress: Progress,
        embed: bool,
        embed_new: bool = False,
    ) -> None:
        """Write the rows of whole files. ``embed``: compute missing vectors (the dense pass);
        else rows without a cached vector are written unembedded (the lexical pass), unless
        ``embed_new`` (urgent work): those of what it changed (``_embed_now``)."""
        texts = [chunk.embedding_text() for _record, chunks in pending for chunk in chunks]
        keys = sizer.spec.document_keys(texts)
        vectors = store.cached_vectors(keys)
        missing = list({key: i for i, key in enumerate(keys) if key not in vectors}.values())  # each text once
        stored = store.stored_rows([record.path for record, _chunks in pending]) if embed_new else None
        now = missing if embed else self._embed_now(stored, keys, texts, missing) if stored is not None else []
        if now:
            preempted = self._preempted
            computed = self._embed(store, [texts[i] for i in now], stats)
            fresh = {keys[i]: computed[row] for row, i in enumerate(now)}
            if self._preempted != preempted:  # urgent work meanwhile may have cached some of these
                already = store.cached_vectors(list(fresh))
                fresh = {key: vector for key, vector in fresh.items() if key not in already}
                vectors.update(already)
            started = time.perf_counter()
            store.cache_vectors(fresh)  # before the chunk rows: a crash in between loses nothing
            stats.write_seconds += time.perf_counter() - started
            vectors.update(fresh)
        self._commit(store, pending, keys, vectors, missing, stats, progress, embed, len(now), stored)

    def _embed_now(self, stored: StoredRows, keys: list[str], texts: list[str], missing: list[int]) -> list[int]:
        """Of the ``missing`` vectors of urgent work's batch, those computed for its commit: of the
        texts its files' rows did not hold before (``stored``: what the edits changed), in file
        order, about ``URGENT_S`` of work (one at least). The rest wait at the front of the dense
        backlog."""
        budget = self._chars_per_s * URGENT_S if self._chars_per_s else FIRST_SLICE_CHARS
        now: list[int] = []
        chars = 0
        for i in sorted(missing):
            if keys[i] in stored.vkeys:
                continue
            if now and chars + len(texts[i]) > budget:
                break
            now.append(i)
            chars += len(texts[i])
        return now

    def _embed(self, store: Store, texts: list[str], stats: IndexStats) -> np.ndarray:
        """The vectors of ``texts``. A run that can be stopped or pre-empted embeds them in slices
        of about ``SLICE_S`` of work (longest first, so a slice pads little) and, between two
        slices, stops or does urgent work, and lets a query in flight in this process go first
        (:func:`~codesearch.foreground.yield_to_queries`); a plain run embeds them at once."""
        embedder = self._embedder_for(store)
        if self.stop is None and self.urgent is None:
            return embedder.embed_documents(texts)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.zeros((len(texts), embedder.dimension), dtype=np.float32)
        done = 0
        while done < len(order):
            if done:
                self._check_stop()
                self.preempt(store, stats)
            if not self._preempting:  # the backlog: a query in flight in this process goes first
                yield_to_queries()
            budget = self._chars_per_s * SLICE_S if self._chars_per_s else FIRST_SLICE_CHARS
            end, chars = done + 1, len(texts[order[done]])
            while end < len(order) and chars + len(texts[order[end]]) <= budget:
                chars += len(texts[order[end]])
                end += 1
            part = order[done:end]
            started = time.perf_counter()
            out[part] = embedder.embed_documents([texts[i] for i in part])
            rate = chars / max(time.perf_counter() - started, 1e-6)
            if not self._preempting:  # a few urgent texts say little about the rate
                self._chars_per_s = 0.5 * (self._chars_per_s + rate) if self._chars_per_s else rate
            done = end
        return out

    def _commit(
        self,
        store: Store,
        pending: list[tuple[FileRecord, list[Chunk]]],
        keys: list[str],
        vectors: dict[str, np.ndarray],
        missing: list[int],
        stats: IndexStats,
        progress: Progress,
        embed: bool,
        computed: int,
        stored: StoredRows | None = None,
    ) -> None:
        """Write the chunk rows and file records of ``pending`` (vectors of ``keys`` where there
        are some; ``missing``: rows whose vector was not cached before this batch, ``computed``
        of them now; ``embed``: the dense pass; ``stored``: the files' rows, read since the last write)."""
        reused = len(keys) - len(missing)
        zero = np.zeros(store.dimension, dtype=np.float32)
        rows: list[dict[str, Any]] = []
        records: list[FileRecord] = []
        positions: list[int] = []  # each row's position in ``keys``
        position = 0
        for record, chunks in pending:
            if self._stale(record.path):  # urgent work committed newer rows while this batch embedded
                position += len(chunks)
                continue
            first = position
            for chunk in chunks:
                rows.append(
                    dict(
                        id=chunk_id(record.path, chunk.start_line, chunk.end_line, keys[position]),
                        vkey=keys[position],
                        path=record.path,
                        start_line=chunk.start_line,
                        end_line=chunk.end_line,
                        symbol=chunk.symbol,
                        kind=chunk.kind,
                        language=chunk.language,
                        text=chunk.text,
                        terms=lexical_terms(f"{chunk.symbol}\n{record.path}\n{chunk.text}"),
                        file_hash=record.file_hash,
                        embedded=keys[position] in vectors,
                        vector=vectors.get(keys[position], zero),
                    )
                )
                positions.append(position)
                position += 1
            dense = all(row["embedded"] for row in rows[first:])
            ids = tuple(row["id"] for row in rows[first:])
            records.append(FileRecord(**{**record.__dict__, "chunks": len(chunks), "dense": dense, "chunk_ids": ids}))
        started = time.perf_counter()
        if records:
            store.replace_files(records, rows, stored)
            self._commits += 1
            if self.urgent is not None and self._commits % COMPACT_SMALL_EVERY == 0:  # fast catalog reads
                store.compact_small_tables()
            if embed and self.urgent is not None and self.compact:
                self._rewritten += len(rows)
                wait_s = max(MAINTAIN_MIN_S, self._maintain_s / MAINTAIN_DUTY)
                if self._rewritten >= INDEX_WORDS_ROWS and time.monotonic() - self._maintained >= wait_s:
                    self._maintain(store)
        stats.write_seconds += time.perf_counter() - started
        self._wrote = True
        if self._preempting:  # newer than anything the backlog holds of these files
            self._redone.update(record.path for record in records)
        if not embed and not self._lexical_ready:  # the first commit: words find it from now on
            store.ensure_lexical_index()
            self._lexical_ready = True
        if embed:  # reuse was counted in this run's lexical pass, except for files a killed run left
            resumed = {r.path for r, _ in pending} - self._lexical_paths
            fresh_rows = set(missing)
            reused = sum(1 for at, row in zip(positions, rows) if row["path"] in resumed and at not in fresh_rows)
        else:
            self._lexical_paths.update(r.path for r, _ in pending)
        stats.chunks_embedded += computed
        stats.chunks_reused += reused
        progress.files_done += len(pending)
        progress.chunks_done += 0 if embed else len(rows)
        progress.chunks_embedded += computed
        progress.chunks_reused += reused
        self._report(progress)

    def _report(self, progress: Progress) -> None:
        if self._preempting:  # urgent work: the progress shown stays the backlog's
            return
        self._progress_file.update(progress)  # first: a caller that reads it sees this step
        self.on_progress(progress)

    # -- model and store ------------------------------------------------------------------------
    def _chunk(self, sizer: TokenSizer, rel: str, text: str, language: str) -> list[Chunk]:
        return chunk_source(sizer, rel, text, language)

    def _open_store(self) -> Store:
        from codesearch.store import Store  # lancedb: a no-change run never gets here

        upgrade = Store.outdated(self.index_dir)
        if upgrade:  # same model, new layout: rebuilt from the files, computed vectors kept
            log.warning("the index at %s was written by an older codesearch; rebuilding it", self.index_dir)
            with contextlib.suppress(OSError, ValueError):
                self.model = self.model or Store.read_meta(self.index_dir).get("model_name")
            self.rebuild = True
        elif not self.rebuild and Store.exists(self.index_dir):
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                meta = Store.read_meta(self.index_dir)
                same_name = self.model in (None, meta.get("model_name"))
                stored = (meta.get("model_name"), meta.get("model_id"), meta.get("cache_key"))
                now = moved_model(*stored) if same_name else ""  # or a local checkpoint retrained in place
                if now:  # a preset updated with codesearch: its old vectors do not fit the new queries
                    log.warning(
                        "model %r is now %s, the index at %s holds %s vectors: re-embedding it",
                        meta["model_name"], now, self.index_dir, meta["model_id"],
                    )  # fmt: skip
                    self.model, self.rebuild = str(meta["model_name"]), True
        if Store.exists(self.index_dir) and self.rebuild:
            log.info("rebuilding the index at %s", self.index_dir)
            Store.clear(self.index_dir, keep=(LOCK_FILE,), keep_cache=upgrade and not self._rebuild_asked)
        if Store.exists(self.index_dir):
            model = self.model or stored_model(self.index_dir)
            found, self.repaired = open_or_empty(self.index_dir)
            if found is None:  # damaged, and emptied: rebuilt below with the model it had
                self.model = model
                return self._open_store()
            store = found
            if self.model is not None and resolve_model(self.model).model_id != store.meta.get("model_id"):
                raise ModelMismatchError(
                    f"the index at {self.index_dir} was built with model {store.meta.get('model_name')!r}; "
                    f"add --rebuild to re-index it with {self.model!r}"
                )
            return store
        embedder = self._embedder_for(None)
        return Store.create(
            self.index_dir,
            root=str(self.root),
            model_name=embedder.spec.name,
            model_id=embedder.spec.model_id,
            cache_key=embedder.spec.cache_key,
            model_reason=embedder.spec.reason,
            dimension=embedder.dimension,
        )

    def _sizer_for(self, store: Store) -> TokenSizer:
        """What sizes chunks: the model once loaded, else its tokenizer alone. The lexical pass
        needs no weights, so a model that fails to load still leaves the words indexed."""
        if self._embedder is not None:
            return self._embedder
        if self._sizer is None:
            self._sizer = load_token_counter(self.model or store.meta.get("model_name"))
        return self._sizer

    def _embedder_for(self, store: Store | None) -> Embedder:
        if self._embedder is None:
            name = self.model if store is None else self.model or store.meta.get("model_name")
            self._embedder = self._load(name)
        return self._embedder
