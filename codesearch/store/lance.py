"""The LanceDB store of an index: chunk rows with vectors, the file catalog, the embedding
cache, and queries.

Owns the on-disk layout of an index folder (``meta.json``, tables ``chunks``, ``files`` and
``vectors``: the embedding cache, vectors by key, kept when chunks go so a file renamed or a
branch switched back finds its vectors again; it is pruned oldest-unused-first when it grows
past ``2 x chunks + CACHE_SLACK``),
the schema, the native full-text index over identifier-split terms (``rows.lexical_terms``),
the vector index of a big table and the scalar indexes beside it (``Store.ensure_vector_index``),
and the two query kinds: dense (cosine over normalised vectors: through the vector index where
there is one, exact below it) and lexical (BM25); their fusion is ``rows.fuse``. A reader keeps
the layout (rows without text) of the files it read for merging, at one version of its view.

Readers (a search, a status) open an index read-only (``Store.open``): they never create,
drop or change a table, and a table that is missing is :class:`IndexCorruptError` for the next
writer to repair. Writers (the indexer, a repair, a watcher; they hold the writer lock) open it
with ``writable=True``, which creates what is missing; ``Store.check`` then finds the index that
no longer matches its file catalog, and a repair rebuilds it.

A reader never sees a half-applied update: replacing a batch of files is one commit of the
chunk table (a ``merge_insert`` keyed by chunk id that deletes the batch's other rows: a join
of the whole table; an upsert when no row goes, as in a dense pass; an append for the files of
a first index), then one of the catalog (keyed by path); deleting files is one commit per
table, rows first. A writer's open corrects counts a killed run left behind. No
query counts rows: the writer keeps the counts (``files``, ``chunks``, ``chunks_embedded``)
and ``dense_complete`` in the meta after each commit, ``dense_complete`` set false before rows
without vectors become visible (``Store.counts``; a reader re-reads ``meta.json`` when it
changed). A dense query told "complete" runs unfiltered and, when a row without a vector comes
back anyway (its view of the table is newer than the meta it read), again with the filter.

Old table versions stay on disk for ``VERSION_GRACE_S`` (readers may still hold them), except
after :meth:`Store.purge`: rows that held a secret the current policy keeps out leave no byte
behind. The cache holds keys and vectors only, never a chunk's text.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import threading
import time
import warnings
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("LANCEDB_LOG", "error")
# Arrow's own allocator (mimalloc in its wheels) keeps what a long-lived process freed in a region
# of its own: a watcher's grew ~15 MiB per 1,000 updates with no Arrow buffer alive, and neither
# malloc_trim nor Arrow's release_unused gave it back. The C heap (a watcher trims it after each
# compaction) serves Arrow's few allocations here as well. Read when pyarrow first makes its pool;
# a value the user set stands.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")

import contextlib

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import FTS, IvfFlat

from codesearch.errors import IndexCorruptError, IndexNotFoundError, ModelMismatchError
from codesearch.files.secrets import MARK as REDACTED_MARK
from codesearch.store.layout import (
    DAMAGED,
    FORMAT_VERSION,
    META,
    SNAPSHOT,
    TABLES,
    IndexDir,
    Remote,
    clear_snapshot,
    mark_damaged,
    read_meta,
    write_json,
)
from codesearch.store.rows import FileRecord, Hit, StoredRows, lexical_terms, sql_in, sql_str

CHUNKS, FILES, VECTORS = TABLES  # "chunks", "files", "vectors": each a ``NAME.lance`` folder
META_TABLE = "meta"  # a remote index's meta.json: one row, the JSON text
CACHE_SLACK = 20_000  # cached vectors kept beyond twice the live chunks
READ_CONSISTENCY_S = 0.5
DENSE_COMPLETE = "dense_complete"  # in the meta: every chunk row has its vector (``Store.counts``)
VERSION_GRACE_S = 600  # old table versions are deleted by compaction only after this long
PURGE_WAIT_S = 5.0  # a purge deletes old versions this long after its last commit (queries in flight end)
# what codesearch writes in a local index folder (the lock and progress files: ``index.runs``)
OWNED_NAMES = frozenset(
    {
        *(f"{table}.lance" for table in (CHUNKS, FILES, VECTORS)),
        *(name + suffix for name in (META, SNAPSHOT, "progress.json") for suffix in ("", ".tmp")),
        DAMAGED,
        "writer.lock",
    }
)
FTS_MEMORY_MIB = 512  # build memory of the full-text index (LanceDB defaults to far more)
# LanceDB's caches, per connection (each Store has one): table metadata (manifests, fragment and
# deletion files) and index pages, keyed by table version. Its defaults (1 GiB and 6 GiB) let a
# long-lived connection keep every version it ever read: a language server's reader grew ~0.07 MiB
# per watcher update (table metadata), a long index run ~1 MiB per write batch, up to those limits.
METADATA_CACHE_MIB = 32
INDEX_CACHE_MIB = 128
# Within those bounds, a long-lived connection still fills its caches with versions no query
# reads again (each commit is a new version: a watcher's reader gained ~20 entries, ~0.08 MiB, per
# update). A Store whose caches hold more than RENEW_CACHE_MIB starts a new connection (empty
# caches) when its view moves to a new version, at most once per RENEW_MIN_S: its memory stays
# near what the latest version needs.
RENEW_CACHE_MIB = 24
RENEW_MIN_S = 60.0
# The vector index (ANN). A chunk table of ANN_MIN_ROWS rows or more gets one when its dense pass
# is done: IVF partitions of about sqrt(rows) rows each, trained on the vectors; a query scans the
# partitions nearest to it (ANN_PROBE_SHARE of them) and every row written since the index was
# trained (a compaction adds those to the index without training it again). Vectors are exact
# within a partition (IVF_FLAT). Measured on the Django index (84k chunks, benchmarks/ann_recall.py),
# recall@10 against exact search: code queries reach 0.98 at 10% of the partitions, but natural-
# language queries sit apart from the code they find, and need half of them: 0.913 at 10%, 0.958
# at 30%, 0.983 at 50%; the dense query is then ~3x faster than exact. Trained again when the
# table has grown ANN_RETRAIN times over. Scalar indexes on the columns queries filter on (path,
# embedded, language) come as soon as a table has ANN_MIN_ROWS rows, before its dense pass.
ANN_MIN_ROWS = 20_000
ANN_PROBE_SHARE = 0.5  # of the partitions, scanned by a query
ANN_MIN_PROBES = 8
ANN_RETRAIN = 2.0
LAYOUT_CACHE_ROWS = 200_000  # chunk rows (no text) a reader keeps of the files its queries merged
SCALAR_INDEXES = (("path", "BTREE"), ("embedded", "BITMAP"), ("language", "BITMAP"))  # of a big chunk table
ANN = "ann"  # in the meta: {"rows": rows trained on, "partitions": n} (readers size their probes by it)
REPAIR_HINT = "; run codesearch index to repair it"
log = logging.getLogger(__name__)


def chunk_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string()),  # chunk id: hash(path, lines, vector key); the catalog lists them
            pa.field("vkey", pa.string()),  # vector key: hash(model setup, exact text embedded)
            pa.field("path", pa.string()),
            pa.field("start_line", pa.int32()),
            pa.field("end_line", pa.int32()),
            pa.field("symbol", pa.string()),
            pa.field("kind", pa.string()),
            pa.field("language", pa.string()),
            pa.field("text", pa.string()),
            pa.field("terms", pa.string()),
            pa.field("file_hash", pa.string()),
            pa.field("embedded", pa.bool_()),  # false: written by the lexical pass, vector not yet computed
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ]
    )


def vector_schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("key", pa.string()),
            pa.field("created", pa.float64()),
            pa.field("vector", pa.list_(pa.float32(), dimension)),
        ]
    )


FILE_SCHEMA = pa.schema(
    [
        pa.field("path", pa.string()),
        pa.field("size", pa.int64()),
        pa.field("mtime_ns", pa.int64()),
        pa.field("file_hash", pa.string()),
        pa.field("language", pa.string()),
        pa.field("chunks", pa.int32()),
        pa.field("dense", pa.bool_()),  # every chunk of the file has its vector
        pa.field("chunk_ids", pa.list_(pa.string())),  # ids of its chunk rows, in file order
        pa.field("policy", pa.string()),  # the row policy its rows were made under (codesearch.options)
    ]
)


_HIT_COLUMNS = ["path", "start_line", "end_line", "symbol", "kind", "language", "text"]


class Store:
    """An index folder. ``Store.create`` makes one; ``Store.open`` reads an existing one (and,
    with ``writable=True``, under the writer lock, writes it)."""

    def __init__(self, directory: IndexDir, meta: dict[str, Any], writable: bool = True) -> None:
        self.directory = directory
        self.meta = meta
        self.writable = writable
        self._live = meta  # a reader's latest meta (``_live_meta``), and what it saw of it
        self._meta_seen: tuple[float, int, int] | None = None
        self._unembedded: int | None = None  # a writer's count of rows without vectors (None: count them)
        self._counts_pending = False  # counts not yet in a remote index's meta table
        self._written: set[str] | None = None  # tables this writer created: the paths it wrote to them
        # a reader's layout of files (``_layout``): rows without text by path, at one view of the table
        self._layout_files: dict[str, list[Hit]] = {}
        self._layout_view: tuple[Any, Any] | None = None
        self._layout_rows = 0
        self._layout_lock = threading.Lock()
        self._session = _session()
        self._db = _connect(directory, self._session)
        self._connected = time.monotonic()
        self.dimension = int(meta["dimension"])
        names = set(self._db.list_tables().tables)
        missing = [name for name in TABLES if name not in names]
        if missing and not writable:  # a reader never creates it: the next writer repairs the index
            raise IndexCorruptError(f"the index at {directory} has no {missing[0]} table{REPAIR_HINT}")
        self.created = tuple(missing)  # tables this writer made: a catalog without its chunks is no index
        if not writable:
            self.chunks, self.files, self.vectors = (self._db.open_table(name) for name in TABLES)
            return
        self.chunks = (
            self._db.open_table(CHUNKS)
            if CHUNKS in names
            else self._db.create_table(CHUNKS, schema=chunk_schema(self.dimension))
        )
        self.files = self._db.open_table(FILES) if FILES in names else self._db.create_table(FILES, schema=FILE_SCHEMA)
        if VECTORS in names and self._db.open_table(VECTORS).schema != vector_schema(self.dimension):
            self._db.drop_table(VECTORS)  # a cache kept from an index of another shape
            names.discard(VECTORS)
        self.vectors = (
            self._db.open_table(VECTORS)
            if VECTORS in names
            else self._db.create_table(VECTORS, schema=vector_schema(self.dimension))
        )
        self._settle_counts()

    def _settle_counts(self) -> None:
        """A writer's open makes the counts in the meta true again (a run killed between a commit
        and its meta write left them behind). The rows without vectors are counted only when the
        meta does not say there are none (it says so only when true: it is written false before
        any such row is committed)."""
        complete = self.meta.get(DENSE_COMPLETE) is True
        self._unembedded = 0 if complete else self.chunks.count_rows("embedded = false")
        chunks = self.chunks.count_rows()
        counts = {
            "files": self.files.count_rows(),
            "chunks": chunks,
            "chunks_embedded": chunks - self._unembedded,
            DENSE_COMPLETE: self._unembedded == 0,
        }
        if any(self.meta.get(key) != value for key, value in counts.items()):
            self.write_meta(**counts)

    # -- lifecycle ----------------------------------------------------------------------------
    @staticmethod
    def exists(directory: IndexDir) -> bool:
        if isinstance(directory, Remote):
            return META_TABLE in _connect(directory).list_tables().tables
        return (directory / META).is_file()

    @staticmethod
    def read_meta(directory: IndexDir, db: Any = None) -> dict[str, Any]:
        """The index's meta (``meta.json``, or a remote index's meta table, through ``db`` when
        connected already)."""
        if not isinstance(directory, Remote):
            return read_meta(directory)
        try:
            text = (db or _connect(directory)).open_table(META_TABLE).to_arrow().column("json")[0].as_py()
        except (IndexError, KeyError) as exc:
            raise ValueError(f"{directory} has an empty meta table") from exc
        meta = json.loads(text)
        if not isinstance(meta, dict):
            raise ValueError(f"the meta of {directory} is not a JSON object")
        return meta

    @staticmethod
    def clear(directory: IndexDir, keep: Collection[str] = (), keep_cache: bool = False) -> None:
        """Empty an index folder for a rebuild, except the files named in ``keep`` and, with
        ``keep_cache``, the embedding cache (its keys name the model, so it stays valid)."""
        if isinstance(directory, Remote):
            db = _connect(directory)
            for name in db.list_tables().tables:
                if not (keep_cache and name == VECTORS):
                    db.drop_table(name)
            return
        kept = {*keep, f"{VECTORS}.lance"} if keep_cache else set(keep)
        for child in directory.iterdir():
            if child.name not in kept:
                shutil.rmtree(child) if child.is_dir() else child.unlink()

    @staticmethod
    def outdated(directory: IndexDir) -> bool:
        """An index written by an older codesearch (re-indexing rebuilds it)."""
        try:
            meta = Store.read_meta(directory)
        except (OSError, ValueError, RuntimeError):
            return False
        return isinstance(meta.get("format"), int) and meta["format"] < FORMAT_VERSION

    @classmethod
    def open(
        cls, directory: IndexDir, model_id: str | None = None, dimension: int | None = None, *, writable: bool = False
    ) -> Store:
        """The existing index. Read-only unless ``writable`` (only a writer holding the writer
        lock asks): a reader never creates or drops a table, and a missing one raises
        :class:`IndexCorruptError`, as an unreadable one does."""
        try:
            found = cls.exists(directory)
        except (OSError, ValueError, RuntimeError) as exc:  # an object store that cannot be reached
            raise IndexNotFoundError(f"cannot reach the index at {directory}: {_one_line(exc)}") from exc
        if not found:
            raise IndexNotFoundError(f"no index at {directory}")
        try:
            meta = cls.read_meta(directory)
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexCorruptError(f"cannot read the meta of {directory}: {_one_line(exc)}{REPAIR_HINT}") from exc
        if meta.get("format") != FORMAT_VERSION:
            older = isinstance(meta.get("format"), int) and meta["format"] < FORMAT_VERSION
            fix = (
                "written by an older codesearch; run codesearch index to upgrade it (computed vectors are kept)"
                if older
                else "written by a newer codesearch: upgrade, or re-create it with codesearch index --rebuild"
            )
            raise IndexCorruptError(
                f"index at {directory} has format {meta.get('format')}, expected {FORMAT_VERSION}: {fix}"
            )
        if model_id is not None and (
            meta.get("model_id") != model_id or (dimension is not None and meta.get("dimension") != dimension)
        ):
            raise ModelMismatchError(
                f"the index at {directory} was built with model {meta.get('model_name') or meta.get('model_id')!r}, "
                f"not {model_id!r}: search with --model {meta.get('model_name')}, or re-index with "
                f"codesearch index --rebuild --model ..."
            )
        try:
            return cls(directory, meta, writable=writable)
        except (OSError, ValueError, RuntimeError) as exc:
            mark_damaged(directory, _one_line(exc))  # the next run checks it, though its files look unchanged
            raise IndexCorruptError(f"cannot open the index at {directory}: {_one_line(exc)}{REPAIR_HINT}") from exc

    @classmethod
    def create(
        cls,
        directory: IndexDir,
        *,
        root: str,
        model_name: str,
        model_id: str,
        cache_key: str,
        dimension: int,
        model_reason: str = "",
    ) -> Store:
        if isinstance(directory, Path):
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        now = time.time()
        meta = dict(
            format=FORMAT_VERSION,
            root=root,
            model_name=model_name,
            model_id=model_id,
            cache_key=cache_key,
            model_reason=model_reason,
            dimension=dimension,
            created=now,
            updated=now,
        )
        store = cls(directory, meta)  # counts its tables (empty, unless a killed clear left some)
        if store.meta["chunks"] == 0 and store.meta["files"] == 0:
            store._written = set()  # a path not written since has no row or record to replace
        store.write_meta()
        return store

    def write_meta(self, **updates: Any) -> None:
        if self._counts_pending:  # a remote index's counts, with its other news
            self.meta[DENSE_COMPLETE] = self._unembedded == 0
            self._counts_pending = False
        self.meta.update(updates)
        if isinstance(self.directory, Remote):  # one object put: readers see the old row or the new
            data = pa.table({"json": [json.dumps(self.meta, sort_keys=True)]})
            self._db.create_table(META_TABLE, data, mode="overwrite")
            return
        write_json(self.directory / META, self.meta, indent=2)

    # -- catalog ------------------------------------------------------------------------------
    def file_catalog(self, paths: Sequence[str] | None = None, where: str | None = None) -> dict[str, FileRecord]:
        """Catalog records: all, those of ``paths``, or those matching ``where``. A watcher's
        update reads only its paths' records: the catalog of a big tree takes a while to read."""
        if paths is not None:
            found: dict[str, FileRecord] = {}
            for start in range(0, len(paths), 500):
                found.update(self.file_catalog(where=sql_in("path", paths[start : start + 500])))
            return found
        table = self.files.to_arrow() if where is None else _scan(self.files, FILE_SCHEMA.names, where)
        return {r["path"]: FileRecord(**{**r, "chunk_ids": tuple(r["chunk_ids"])}) for r in table.to_pylist()}

    def chunk_rows(self) -> list[tuple[str, int, int, str, str, str, bool]]:
        """(path, start_line, end_line, symbol, chunk id, vector key, embedded) of every chunk row, sorted."""
        table = _scan(self.chunks, ["path", "start_line", "end_line", "symbol", "id", "vkey", "embedded"])
        columns = [table.column(name).to_pylist() for name in table.column_names]
        return sorted(zip(*columns, strict=True))

    def count_files(self) -> int:
        return self.files.count_rows()

    def count_chunks(self) -> int:
        return self.chunks.count_rows()

    def count_embedded(self) -> int:
        """Chunks with their vector (the rest await the dense pass)."""
        return self.chunks.count_rows("embedded = true")

    def count_redacted(self) -> int:
        """Chunks whose text had a secret replaced by ``«redacted KIND»``. The full-text index
        finds the candidates (the word "redacted"): a LIKE scan of every text takes seconds."""
        total = self.chunks.count_rows()
        if total == 0:
            return 0
        try:
            query = self.chunks.search("redacted", query_type="fts", fts_columns="terms")
            texts = query.select(["text"]).limit(total).to_arrow().column("text").to_pylist()
        except (ValueError, RuntimeError):  # no full-text index yet
            return self.chunks.count_rows(f"text LIKE {sql_str('%' + REDACTED_MARK + '%')}")
        return sum(1 for text in texts if REDACTED_MARK in text)

    def size_bytes(self) -> int | None:
        """Bytes on disk (``None`` for a remote index: listing an object store is not worth it)."""
        if isinstance(self.directory, Remote):
            return None
        total = 0
        for dirpath, _dirs, names in os.walk(self.directory):
            for name in names:
                with contextlib.suppress(OSError):
                    total += os.path.getsize(os.path.join(dirpath, name))
        return total

    # -- writes -------------------------------------------------------------------------------
    def cached_vectors(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors already computed under these vector keys (the embedding cache)."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            part = unique[start : start + 500]
            rows = (
                self.vectors.search().where(sql_in("key", part)).select(["key", "vector"]).limit(len(part)).to_arrow()
            )
            if rows.num_rows:
                vectors = np.asarray(rows.column("vector").combine_chunks().values, dtype=np.float32)
                vectors = vectors.reshape(rows.num_rows, self.dimension)
                for i, key in enumerate(rows.column("key").to_pylist()):
                    found[key] = vectors[i]
        return found

    def cache_vectors(self, vectors: dict[str, np.ndarray]) -> None:
        """Add newly computed vectors to the cache (keys not already in it)."""
        if not vectors:
            return
        keys = list(vectors)
        matrix = np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)
        table = pa.table(
            {
                "key": pa.array(keys, pa.string()),
                "created": pa.array(np.full(len(keys), time.time()), pa.float64()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), self.dimension),
            },
            schema=self.vectors.schema,
        )
        self.vectors.add(table)

    def count_cached(self) -> int:
        return self.vectors.count_rows()

    def cached_keys(self) -> set[str]:
        """Every vector key in the cache (a cluster's workers skip these texts)."""
        return set(_scan(self.vectors, ["key"]).column("key").to_pylist())

    def prune_cache(self, keep: int | None = None) -> int:
        """Drop the oldest cached vectors no chunk uses, down to ``keep`` entries (default:
        twice the live chunks plus ``CACHE_SLACK``). Returns how many were dropped."""
        total = self.vectors.count_rows()
        keep = 2 * self.chunks.count_rows() + CACHE_SLACK if keep is None else keep
        if total <= keep:
            return 0
        live = set(_scan(self.chunks, ["vkey"]).column("vkey").to_pylist())
        cached = _scan(self.vectors, ["key", "created"])
        unused = [
            (created, key)
            for key, created in zip(cached.column("key").to_pylist(), cached.column("created").to_pylist(), strict=True)
            if key not in live
        ]
        unused.sort()
        drop = [key for _created, key in unused[: total - keep]]
        for start in range(0, len(drop), 500):
            self.vectors.delete(sql_in("key", drop[start : start + 500]))
        return len(drop)

    def stored_rows(self, paths: Sequence[str]) -> StoredRows:
        """What the chunk table holds for these files now (ids, vector keys, rows without vectors):
        one scan, which the writer may hand to :meth:`replace_files` for the same paths when
        nothing was written in between."""
        ids: set[str] = set()
        vkeys: set[str] = set()
        unembedded = 0
        if self._written is None or not self._written.isdisjoint(paths):  # else a first index's new files
            for start in range(0, len(paths), 500):
                part = _scan(self.chunks, ["id", "vkey", "embedded"], sql_in("path", paths[start : start + 500]))
                ids.update(part.column("id").to_pylist())
                vkeys.update(part.column("vkey").to_pylist())
                unembedded += sum(1 for flag in part.column("embedded").to_pylist() if not flag)
        return StoredRows(tuple(paths), ids, vkeys, unembedded)

    def replace_files(
        self, records: Sequence[FileRecord], rows: list[dict[str, Any]], stored: StoredRows | None = None
    ) -> None:
        """Replace everything stored for these files by ``rows``: one commit of the chunk table
        (a reader sees all the old rows of a file or all its new ones, never none or both), then
        one of the catalog. A run killed between the two leaves the old records: the next one
        reads those files again (their stat, or for the dense pass their ``dense`` flag, still
        says so) and rewrites the same rows. ``stored``: :meth:`stored_rows` of these paths, read
        since the last write (else read now)."""
        paths = [r.path for r in records]
        if not paths:
            return
        clear_snapshot(self.directory)
        if stored is None or sorted(stored.paths) != sorted(paths):
            stored = self.stored_rows(paths)
        if any(not row["embedded"] for row in rows):  # before they are visible: queries filter them out
            self._mark_unembedded()
        where = sql_in("path", paths)
        new = self._written is not None and self._written.isdisjoint(paths)  # a first index: added, not merged
        if new and rows:
            self.chunks.add(pa.Table.from_pylist(rows, schema=self.chunks.schema))
        elif rows:
            data = pa.Table.from_pylist(rows, schema=self.chunks.schema)
            merge = self.chunks.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
            if None in stored.ids or not stored.ids <= {row.get("id") for row in rows}:  # rows to drop: a join
                merge = merge.when_not_matched_by_source_delete(where)  # of the whole table
            merge.execute(data)  # else new files, or the same rows with vectors (the dense pass): an upsert
        elif not new:
            self.chunks.delete(where)
        if new:
            self.files.add(pa.Table.from_pylist([r.__dict__ for r in records], schema=FILE_SCHEMA))
        else:
            self._merge_records(records)
        if self._written is not None:
            self._written.update(paths)
        self._recount(sum(1 for row in rows if not row["embedded"]) - stored.unembedded)

    def delete_files(self, paths: Sequence[str]) -> None:
        """Remove these files' rows (one commit), then their records (one commit): a run killed
        in between leaves records of files that are gone, which the next run deletes again."""
        if not paths:
            return
        clear_snapshot(self.directory)
        where = sql_in("path", paths)
        self.chunks.delete(where)
        self.files.delete(where)
        self._recount(None)

    def touch_files(self, records: Sequence[FileRecord]) -> None:
        """Update the stat fields of files whose content did not change (one commit)."""
        if records:
            clear_snapshot(self.directory)
            self._merge_records(records)

    def _merge_records(self, records: Sequence[FileRecord]) -> None:
        data = pa.Table.from_pylist([r.__dict__ for r in records], schema=FILE_SCHEMA)
        self.files.merge_insert("path").when_matched_update_all().when_not_matched_insert_all().execute(data)

    # -- counts in the meta: what readers read instead of counting rows ------------------------
    def _mark_unembedded(self) -> None:
        """Rows without vectors are about to be committed: the meta says so first, so a query
        that reads it filters them out (one that read it just before also drops them: ``dense``)."""
        if self.meta.get(DENSE_COMPLETE) is not False:
            self.write_meta(**{DENSE_COMPLETE: False})

    def _recount(self, unembedded: int | None) -> None:
        """Record the counts after a commit (``unembedded``: how many more rows lack vectors
        than before it, from the rows it replaced and wrote; ``None``: not known, counted now).
        A local index's meta is written now; a remote one's with the run's last meta write
        (an object-store table version per batch is not worth it; its ``DENSE_COMPLETE`` is
        written before unembedded rows go in, and set only by that last write)."""
        if self._unembedded is None or unembedded is None:
            self._unembedded = self.chunks.count_rows("embedded = false")
        else:
            self._unembedded += unembedded
        chunks = self.chunks.count_rows()
        counts = {"files": self.files.count_rows(), "chunks": chunks, "chunks_embedded": chunks - self._unembedded}
        self.meta.update(counts)
        if isinstance(self.directory, Remote):
            self._counts_pending = True
        else:
            self.write_meta(**{DENSE_COMPLETE: self._unembedded == 0})
        self._renew()  # a long run's connection drops the caches of the versions it wrote

    def counts(self) -> dict[str, Any]:
        """What readers show and decide on, from the meta the writer keeps (no row is counted):
        ``files``, ``chunks``, ``chunks_embedded``, and ``complete`` (every chunk has its vector;
        ``False`` also when the meta cannot tell). An index whose meta lacks them (written by
        an older codesearch, until its next run) is counted."""
        meta = self._live_meta()
        if all(isinstance(meta.get(key), int) for key in ("files", "chunks", "chunks_embedded")):
            files, chunks, embedded = int(meta["files"]), int(meta["chunks"]), int(meta["chunks_embedded"])
            complete = meta.get(DENSE_COMPLETE) is True and embedded >= chunks
        else:
            files, chunks, embedded = self.count_files(), self.count_chunks(), self.count_embedded()
            complete = embedded >= chunks
        return dict(files=files, chunks=chunks, chunks_embedded=min(embedded, chunks), complete=complete)

    def _live_meta(self) -> dict[str, Any]:
        """The meta as the writer last wrote it. A writer's own; a reader re-reads ``meta.json``
        when its stat changed (each write replaces the file), a remote one at most every
        ``READ_CONSISTENCY_S`` (as its tables). A changed meta brings the reader's view of the
        tables up to the latest commit at once (the meta is written after the commits it counts),
        so what the meta says is never newer than the rows this reader sees: "complete" is not
        reported while its view still holds rows without vectors."""
        if self.writable:
            return self.meta
        try:
            if isinstance(self.directory, Remote):
                now = time.monotonic()
                if self._meta_seen is None or now - self._meta_seen[0] >= READ_CONSISTENCY_S:
                    self._meta_seen = (now, 0, 0)
                    self._read_live(Store.read_meta(self.directory, self._db))
                return self._live
            stat = os.stat(self.directory / META)
            seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if seen != self._meta_seen:
                self._read_live(read_meta(self.directory))
                self._meta_seen = seen
        except (OSError, ValueError, RuntimeError):  # gone or mid-replace: the last one read stands
            pass
        return self._live

    def _read_live(self, meta: dict[str, Any]) -> None:
        if meta != self._live and not self._renew():  # first: a failure keeps the old meta, and its view
            self.chunks.checkout_latest()
            self.files.checkout_latest()
        self._live = meta

    def _renew(self) -> bool:
        """Start a new connection, its tables at their latest versions, when this one's caches
        grew past ``RENEW_CACHE_MIB`` (versions no query reads again) and it is ``RENEW_MIN_S``
        old: the old caches go with the old connection. Called only where the view may move to
        the latest commit (a reader's changed meta; a writer after its commit). Queries running
        on the old tables finish on them."""
        now = time.monotonic()
        if self._session.size_bytes <= RENEW_CACHE_MIB << 20 or now - self._connected < RENEW_MIN_S:
            return False
        session = _session()
        db = _connect(self.directory, session)
        self.chunks, self.files, self.vectors = (db.open_table(name) for name in TABLES)
        self._session, self._db, self._connected = session, db, now
        log.debug("renewed the connection to %s (its caches held old versions)", self.directory)
        return True

    def ensure_lexical_index(self) -> None:
        """Create the full-text index once; rows added later are searched before it is optimised."""
        if self.chunks.count_rows() == 0:
            return
        indexed = {tuple(ix.columns) for ix in self.chunks.list_indices()}
        if ("terms",) not in indexed:
            self.chunks.create_index(
                "terms", config=FTS(with_position=False, memory_limit=FTS_MEMORY_MIB), replace=True
            )

    def ensure_scalar_indexes(self) -> None:
        """Give a big chunk table (``ANN_MIN_ROWS`` rows or more) scalar indexes on ``path``,
        ``embedded`` and ``language``: a query filtering on them, or reading a few files' rows (a
        definition's pieces, a writer's rows of a batch), reads no whole column. Made as soon as
        the table is that big, before its dense pass (whose queries filter on ``embedded``); rows
        written after are scanned until a compaction adds them."""
        if self.counts()["chunks"] < ANN_MIN_ROWS:
            return
        indexed = {tuple(ix.columns) for ix in self.chunks.list_indices()}
        for column, kind in SCALAR_INDEXES:
            if (column,) not in indexed:
                self.chunks.create_scalar_index(column, index_type=kind, replace=True)

    def ensure_vector_index(self) -> bool:
        """Give a big chunk table its vector index (and its scalar indexes,
        :meth:`ensure_scalar_indexes`) once its dense pass is done (the partitions are trained on
        real vectors, not on the zeros of rows still waiting). Trains it again when the table has
        grown ``ANN_RETRAIN`` times since. Rows written after it are searched exactly until a
        compaction adds them to it. Readers keep querying the version they hold meanwhile.
        Returns whether it (re)built."""
        counts = self.counts()  # as this writer keeps them in the meta: nothing counted
        rows = counts["chunks"]
        if rows < ANN_MIN_ROWS or not counts["complete"]:
            return False
        ann = self.meta.get(ANN)
        trained = int(ann.get("rows", 0)) if isinstance(ann, dict) else 0
        indexed = {tuple(ix.columns) for ix in self.chunks.list_indices()}
        if trained and ("vector",) in indexed and rows < ANN_RETRAIN * trained:
            return False
        started = time.perf_counter()
        self.ensure_scalar_indexes()
        partitions = max(1, round(rows**0.5))
        self.chunks.create_index(
            "vector", config=IvfFlat(distance_type="cosine", num_partitions=partitions), replace=True
        )
        self.write_meta(**{ANN: {"rows": rows, "partitions": partitions}})
        log.info(
            "built the vector index of %s: %d rows in %d partitions, %.1f s",
            self.directory,
            rows,
            partitions,
            time.perf_counter() - started,
        )
        return True

    def compact_small_tables(self) -> None:
        """Compact the catalog and the vector cache (each batch adds a fragment to both; every plan
        of urgent work reads the catalog, every batch merges into it). Cheap: the rows are small.
        Old versions stay (readers may hold them)."""
        for table in (self.files, self.vectors):
            table.optimize(cleanup_older_than=timedelta(seconds=VERSION_GRACE_S))

    def finish_writes(self, compact: bool = True) -> None:
        """Bring the full-text index up to date, compact small fragments, and delete table
        versions older than ``VERSION_GRACE_S`` (readers move to new versions within
        ``READ_CONSISTENCY_S``, so none still reads them)."""
        if self.chunks.count_rows() == 0:
            return
        self.ensure_lexical_index()
        if not compact:  # small live updates: new rows are searched before they are indexed
            return
        self.prune_cache()
        grace = timedelta(seconds=VERSION_GRACE_S)  # a reader still on an older version keeps its files
        for table in (self.chunks, self.files, self.vectors):  # new rows join the indexes, untrained
            table.optimize(cleanup_older_than=grace)
        self.ensure_scalar_indexes()
        self.ensure_vector_index()

    def vector_keys(self, paths: Sequence[str]) -> set[str]:
        """The vector keys of the chunk rows of these files."""
        return self.stored_rows(paths).vkeys

    def purge(self, keys: Collection[str] = ()) -> None:
        """Remove every byte of rows that are gone from disk now, not after ``VERSION_GRACE_S``:
        for rows that held a secret the current policy keeps out. The cached vectors of ``keys``
        that no chunk uses any more go; every live row of the chunks and the cache is rewritten
        into new files (compaction would keep a file whose few deleted rows it does not
        materialise), the full-text index is built anew from the live rows, and, after
        ``PURGE_WAIT_S`` (readers move to the new version within ``READ_CONSISTENCY_S``; only a
        query still running on an old one then fails, and reports the index damaged, which the next
        run finds whole), every older version of every table is deleted. Run by the only writer."""
        clear_snapshot(self.directory)
        live = set(_scan(self.chunks, ["vkey"]).column("vkey").to_pylist())
        drop = sorted(set(keys) - live)
        for start in range(0, len(drop), 500):
            self.vectors.delete(sql_in("key", drop[start : start + 500]))
        for table, column in ((self.chunks, "id"), (self.vectors, "key")):
            if table.count_rows():
                table.update(where="true", values_sql={column: column})  # the same rows, in new files
        if self.chunks.count_rows():
            self.chunks.create_index(
                "terms", config=FTS(with_position=False, memory_limit=FTS_MEMORY_MIB), replace=True
            )
        else:
            for index in self.chunks.list_indices():
                self.chunks.drop_index(index.name)
        time.sleep(PURGE_WAIT_S)
        with warnings.catch_warnings():  # "removes every version except the latest": that is the point
            warnings.simplefilter("ignore", UserWarning)
            for table in (self.chunks, self.files, self.vectors):  # the writer lock keeps other writers out
                table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)

    # -- repair -------------------------------------------------------------------------------
    def check(self) -> None:
        """Read every row of every table, query both indexes once, and compare the file catalog
        with the chunk rows (each file's chunk count): raises :class:`IndexCorruptError` when any
        of it cannot be read or they disagree (a chunk table lost or replaced; a repair then rebuilds)."""
        try:
            paths = self.chunks.to_arrow().column("path")  # one table read whole at a time
            files = self.files.to_arrow()
            self.vectors.to_arrow()
            self.lexical("check", 1)
            self.dense(np.full(self.dimension, self.dimension**-0.5, dtype=np.float32), 1)
        except (OSError, RuntimeError, ValueError) as exc:
            raise IndexCorruptError(f"the index at {self.directory} cannot be read: {_one_line(exc)}") from exc
        counts = zip(files.column("path").to_pylist(), files.column("chunks").to_pylist(), strict=True)
        listed = {path: count for path, count in counts if count}
        stored = Counter(paths.to_pylist())
        if listed != stored:
            raise IndexCorruptError(
                f"the index at {self.directory} does not match its file catalog: it lists {sum(listed.values())} "
                f"chunks of {len(listed)} files, the chunk table holds {len(paths)} of {len(stored)}"
            )

    @staticmethod
    def cache_intact(directory: IndexDir) -> bool:
        """Whether the embedding cache reads back whole (a repair keeps it: nothing re-embedded)."""
        try:
            db = _connect(directory)
            return VECTORS in db.list_tables().tables and db.open_table(VECTORS).to_arrow().num_rows >= 0
        except (OSError, RuntimeError, ValueError):
            return False

    @staticmethod
    def foreign_entries(directory: IndexDir) -> list[str]:
        """Names in a local index folder that codesearch does not write there: a folder holding
        any is not emptied by a repair (it may not be an index at all)."""
        if isinstance(directory, Remote):
            return []
        return sorted(entry.name for entry in directory.iterdir() if entry.name not in OWNED_NAMES)

    # -- queries ------------------------------------------------------------------------------
    def dense(self, vector: np.ndarray, k: int, where: str | None = None, *, exact: bool = False) -> list[Hit]:
        """The ``k`` rows nearest ``vector`` among those with vectors: through the vector index
        where the table has one (``exact``: a flat search of every vector instead, the reference
        its recall is measured against). Whether rows wait for the dense pass is read from the
        meta (``counts``), not counted: when it says none do, the query runs unfiltered, and if
        this reader's view of the table is newer than the meta it read (a commit of unembedded
        rows just landed) and such a row comes back, it runs again with the filter."""
        rows = self._nearest(vector, k, where, prefilter=not self.counts()["complete"], exact=exact)
        if any(not row["embedded"] for row in rows):
            rows = self._nearest(vector, k, where, prefilter=True, exact=exact)
        return [_hit(r, max(0.0, 1.0 - float(r["_distance"]))) for r in rows]

    def _nearest(
        self, vector: np.ndarray, k: int, where: str | None, prefilter: bool, exact: bool = False
    ) -> list[dict[str, Any]]:
        query: Any = self.chunks.search(vector.astype(np.float32), vector_column_name="vector")
        query = query.distance_type("cosine")
        query = query.bypass_vector_index() if exact else query.minimum_nprobes(self._probes()).maximum_nprobes(0)
        if prefilter:  # rows waiting for the dense pass have no vector yet
            embedded = "embedded = true"
            query = query.where(f"({where}) AND {embedded}" if where else embedded, prefilter=True)
        elif where:
            query = query.where(where, prefilter=True)
        # else no filter at all: a flat search of a complete index is ~40% faster without one
        rows: list[dict[str, Any]] = query.select([*_HIT_COLUMNS, "embedded"]).limit(k).to_list()
        return rows

    def _probes(self) -> int:
        """How many IVF partitions a dense query scans: ``ANN_PROBE_SHARE`` of them, at least
        ``ANN_MIN_PROBES`` (more when a filter leaves fewer than ``k`` rows in those)."""
        ann = self._live_meta().get(ANN)
        partitions = int(ann.get("partitions", 0)) if isinstance(ann, dict) else 0
        return max(ANN_MIN_PROBES, math.ceil(ANN_PROBE_SHARE * partitions))

    def lexical(self, text: str, k: int, where: str | None = None) -> list[Hit]:
        """The ``k`` rows best matching ``text`` by words. A reader's view is first brought up to
        the writer's last commit when the meta changed (``_live_meta``), as ``dense`` does through
        ``counts``: a saved file is found by words as soon as its rows are committed, not up to
        ``READ_CONSISTENCY_S`` later."""
        terms = lexical_terms(text).replace("\n", " ")
        if not terms.strip():  # an empty table (or one not yet indexed for words) finds nothing
            return []
        self._live_meta()
        query: Any = self.chunks.search(terms, query_type="fts", fts_columns="terms")
        if where:
            query = query.where(where, prefilter=True)
        rows = query.select(_HIT_COLUMNS).limit(k).to_list()
        if not rows:
            return []
        top = max(float(r["_score"]) for r in rows) or 1.0
        return [_hit(r, float(r["_score"]) / top) for r in rows]

    def file_chunks(self, paths: Sequence[str], symbols: Sequence[str] = (), text: bool = False) -> list[Hit]:
        """The chunk rows of these files (of these symbols only, when given), in file order, as
        hits scoring 0; without ``text`` their text is left empty (a cheaper read). A reader keeps
        the rows without text of the files it read (their layout: a query merging a definition's
        pieces reads those of up to a few hundred candidates' files) for as long as its view of the
        chunk table stays at the same version."""
        if not paths:
            return []
        if not text and not symbols and not self.writable:
            return self._layout(paths)
        where = sql_in("path", paths) + (f" AND {sql_in('symbol', symbols)}" if symbols else "")
        return sorted(self._read_rows(where, text), key=lambda h: (h.path, h.start_line, h.end_line))

    def _read_rows(self, where: str, text: bool) -> list[Hit]:
        columns = _HIT_COLUMNS if text else [c for c in _HIT_COLUMNS if c != "text"]
        return [_hit({"text": "", **row}, 0.0) for row in _scan(self.chunks, columns, where).to_pylist()]

    def _layout(self, paths: Sequence[str]) -> list[Hit]:
        """:meth:`file_chunks` without text, from the files' rows this reader read at the version
        its view holds now. The version is read before the rows: rows read are never older than
        the version they are kept under (a view that moved meanwhile has another version at the
        next query, which drops them all). A rebuilt table starts its versions again: its
        creation time (in the meta) is part of the key."""
        self._live_meta()  # a changed meta brings the view up to the writer's last commit
        view = (self.chunks.version, self._live.get("created"))
        with self._layout_lock:
            if self._layout_view != view:
                self._layout_files.clear()
                self._layout_view, self._layout_rows = view, 0
            have = {path: self._layout_files[path] for path in paths if path in self._layout_files}
        missing = [path for path in dict.fromkeys(paths) if path not in have]
        read: dict[str, list[Hit]] = {path: [] for path in missing}
        for start in range(0, len(missing), 500):
            for hit in self._read_rows(sql_in("path", missing[start : start + 500]), text=False):
                read.setdefault(hit.path, []).append(hit)
        for hits in read.values():
            hits.sort(key=lambda h: (h.start_line, h.end_line))
        with self._layout_lock:
            kept = self._layout_files
            if self._layout_view == view:  # else a newer view came meanwhile: these rows are not kept
                if self._layout_rows + sum(map(len, read.values())) > LAYOUT_CACHE_ROWS:
                    kept.clear()
                    self._layout_rows = 0
                for path, hits in read.items():
                    kept[path] = hits
                    self._layout_rows += len(hits)
        have.update(read)
        return [hit for path in sorted(have) for hit in have[path]]


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "…"


def _session() -> Any:
    """Bounded caches for one connection (a new session each: a rebuilt table's versions start again at 1)."""
    return lancedb.Session(
        index_cache_size_bytes=INDEX_CACHE_MIB << 20, metadata_cache_size_bytes=METADATA_CACHE_MIB << 20
    )


def _connect(directory: IndexDir, session: Any = None) -> Any:
    # a long-lived reader (the language server, a watcher's searcher) sees new commits this soon
    consistency = timedelta(seconds=READ_CONSISTENCY_S)
    session = session or _session()
    if isinstance(directory, Remote):
        options = dict(directory.storage_options) or None
        return lancedb.connect(
            directory.uri, storage_options=options, read_consistency_interval=consistency, session=session
        )
    return lancedb.connect(str(directory), read_consistency_interval=consistency, session=session)


def _scan(table: Any, columns: list[str], where: str | None = None) -> pa.Table:
    """Some columns of every row, or of the rows matching ``where`` (no vectors read)."""
    query = table.search()
    if where is not None:
        query = query.where(where)
    return query.select(columns).limit(None).to_arrow()  # no limit: every row (none counted first)


def _hit(row: dict[str, Any], score: float) -> Hit:
    return Hit(
        path=row["path"],
        start_line=int(row["start_line"]),
        end_line=int(row["end_line"]),
        symbol=row["symbol"],
        kind=row["kind"],
        language=row["language"],
        text=row["text"],
        score=score,
    )
