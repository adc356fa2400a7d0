"""Batch indexing on a Ray cluster (``codesearch index --engine ray``; extra ``distributed``).

The driver plans as the local engine does (walk the tree, compare it with the catalog), then
runs a Ray Data pipeline over the files to (re)index:

    file list → read and chunk (CPU tasks: the model's tokenizer only, so chunks are sized
    exactly as the local engine sizes them) → embed (an actor pool: the model loaded once per
    actor, on a GPU when the actor has one; texts whose vector key is in the cache are skipped)
    → back to the driver

The driver is the only writer. It commits whole files in batches in the local engine's order
(vectors into the content-hash cache, then the chunk rows, then the catalog records), so no two
processes ever write one table (two ``merge_insert`` writers would duplicate rows), a killed
worker is retried by Ray, and a killed driver loses only the batches in flight: re-running
skips every committed file and embeds no text whose vector is cached. Chunk ids, rows and
vectors are the local engine's, because the chunking and embedding code is the same.

A local cluster (no ``--ray-address``) gets node address 127.0.0.1 and no dashboard; Ray's own
services still listen on every interface, so tests run it in a private network namespace.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from codesearch.chunking import Chunk
from codesearch.embedding import ModelSpec, load_embedder, load_token_counter, resolve_model
from codesearch.errors import UsageError
from codesearch.files import SkipStats, SourceFile, load
from codesearch.files.names import disk_file
from codesearch.index.indexer import BATCH_CHUNKS, Indexer, Plan, chunk_source
from codesearch.index.runs import IndexStats, Progress
from codesearch.options import IndexOptions
from codesearch.store import FileRecord, IndexDir

if TYPE_CHECKING:
    from codesearch.store import Store

log = logging.getLogger(__name__)

LOCAL_NODE_IP = "127.0.0.1"


@dataclass(frozen=True)
class ClusterOptions:
    address: str | None = None  # a running cluster ("auto", "ray://host:10001"); None: start one here
    workers: int | None = None  # embedding actors; default: one per GPU / gpus_per_worker, else per 1 CPU
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    files_per_task: int = 32  # files per read-and-chunk task and per embedding call


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise UsageError("--engine ray needs Ray: pip install 'semantic-codesearch[distributed]'") from exc
    return ray


def local_cpus(options: ClusterOptions) -> int:
    """Logical CPUs of a local cluster: the machine's, and always one more than the embedding
    workers take, so the read-and-chunk tasks can run beside them (else Ray Data waits forever)."""
    workers = options.workers or max(1, (os.cpu_count() or 1) - 1)
    return max(os.cpu_count() or 1, int(workers * options.cpus_per_worker + 0.999) + 1)


@contextlib.contextmanager
def ray_session(options: ClusterOptions) -> Iterator[Any]:
    """Connect to ``options.address``, or start a local cluster on loopback (and stop it after)."""
    ray = _ray()
    if ray.is_initialized():
        yield ray
        return
    env = {"LANCEDB_LOG": "error", "TOKENIZERS_PARALLELISM": "false"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("HF_", "CODESEARCH_"))})
    kwargs: dict[str, Any] = dict(
        runtime_env={"env_vars": env}, log_to_driver=False, logging_level=logging.WARNING, configure_logging=False
    )
    logging.getLogger("ray").setLevel(logging.WARNING)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notes on progress bars and block counts
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors", category=UserWarning)
    if options.address:
        ray.init(address=options.address, **kwargs)
    else:
        ray.init(_node_ip_address=LOCAL_NODE_IP, include_dashboard=False, num_cpus=local_cpus(options), **kwargs)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the CLI shows its own progress
    context.print_on_execution_start = False
    try:
        yield ray
    finally:
        ray.shutdown()


@functools.lru_cache(maxsize=2)
def _token_counter(spec: ModelSpec) -> Any:
    return load_token_counter(spec)  # once per worker process, reused by its later tasks


def read_and_chunk(batch: dict[str, np.ndarray], root: str, spec: ModelSpec, options: IndexOptions) -> dict[str, list]:
    """Ray task: load and chunk a batch of files (one output row per file). ``old_hash``: the
    content hash of a file's rows when they were made under the current policy, else ''."""
    sizer = _token_counter(spec)
    out: dict[str, list] = {name: [] for name in ("rel", "status", "reason", "size", "mtime_ns", "file_hash")}
    out.update(language=[], chunks=[], keys=[], secrets=[])
    for rel, size, mtime_ns, language, old_hash in zip(
        batch["rel"], batch["size"], batch["mtime_ns"], batch["language"], batch["old_hash"], strict=True
    ):
        source = SourceFile(str(rel), disk_file(Path(root), str(rel)), int(size), int(mtime_ns), str(language))
        skips = SkipStats()
        loaded = load(source, skips, options.max_file_bytes, options.secrets)
        chunks: list[Chunk] = []
        status, reason = "chunked", ""
        if loaded is None:
            status, reason = "skipped", skips.last
        elif loaded.content_hash == old_hash:
            status = "same"  # touched (new mtime), same bytes: the catalog keeps its rows
        else:
            chunks = chunk_source(sizer, source.rel, loaded.text, source.language)
        out["rel"].append(source.rel)
        out["status"].append(status)
        out["reason"].append(reason)
        out["size"].append(loaded.size if loaded else source.size)
        out["mtime_ns"].append(loaded.mtime_ns if loaded else source.mtime_ns)
        out["file_hash"].append(loaded.content_hash if loaded else "")
        out["language"].append(source.language)
        out["chunks"].append(chunks)
        out["secrets"].append(loaded.secrets if loaded and status == "chunked" else 0)
        out["keys"].append(spec.document_keys([chunk.embedding_text() for chunk in chunks]))
    return out


class EmbedWorker:
    """Ray actor: the model, loaded once; embeds the texts of a batch whose keys are not cached."""

    def __init__(self, spec: ModelSpec, device: str | None, dtype: str | None, cached: Any) -> None:
        self.embedder = load_embedder(spec, device=device, dtype=dtype)
        self.cached: set[str] = _ray().get(cached) if not isinstance(cached, set) else cached

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        todo: dict[str, str] = {}
        for chunks, keys in zip(batch["chunks"], batch["keys"], strict=True):
            for chunk, key in zip(chunks, keys, strict=True):
                if key not in self.cached and key not in todo:
                    todo[key] = chunk.embedding_text()
        vectors = self.embedder.embed_documents(list(todo.values())) if todo else np.zeros((0, 0), np.float32)
        index = {key: row for row, key in enumerate(todo)}
        fresh_keys: list[list[str]] = []
        fresh_vectors: list[np.ndarray] = []
        for keys in batch["keys"]:
            mine = [key for key in dict.fromkeys(keys) if key in index]
            index_rows = [index.pop(key) for key in mine]  # each key goes back once
            fresh_keys.append(mine)
            fresh_vectors.append(vectors[index_rows] if index_rows else np.zeros((0, 0), np.float32))
        return {**batch, "fresh_keys": fresh_keys, "fresh_vectors": fresh_vectors}


class RayIndexer(Indexer):
    """The local engine's plan and writes, with reading, chunking and embedding on Ray."""

    def __init__(
        self,
        root: Path,
        index_dir: IndexDir,
        options: IndexOptions | None = None,
        *,
        cluster: ClusterOptions | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, index_dir, options, **kwargs)
        self.cluster = cluster or ClusterOptions()
        self._worker_device = self.device
        self.device = "cpu"  # the driver's model (a new index's dimension) stays off the GPUs

    def _run(self, dense: bool, paths: Any) -> IndexStats:
        with ray_session(self.cluster):
            stats = super()._run(dense, paths)
        stats.engine = "ray"
        return stats

    # the whole work of both local passes happens in one cluster pass
    def _lexical_pass(
        self, store: Store, plan: Plan, stats: IndexStats, progress: Progress, embed_new: bool = False
    ) -> None:
        self._cluster_pass(store, plan.changed, plan.catalog, stats, progress)

    def _dense_pass(self, store: Store, stats: IndexStats, progress: Progress) -> int:
        """Files a local run left without vectors (its lexical pass), through the same pipeline
        (those of another policy are read again by the next walk). Nothing pre-empts a cluster
        run (it has no ``urgent`` work)."""
        todo = {rel: r for rel, r in store.file_catalog(where="dense = false").items() if r.policy == self.policy}
        if todo:
            sources = [self._source(record) for record in todo.values()]
            progress.files_total, progress.files_done = len(sources), 0
            self._cluster_pass(store, sources, {}, stats, progress)
        return len(todo)

    def _spec(self, store: Store) -> ModelSpec:
        """The index's model, resolved on the driver without loading it (the workers do)."""
        if self._embedder is not None:
            return self._embedder.spec
        return resolve_model(self.model or str(store.meta.get("model_name")))

    def _cluster_pass(
        self,
        store: Store,
        sources: list[SourceFile],
        catalog: dict[str, FileRecord],
        stats: IndexStats,
        progress: Progress,
    ) -> None:
        if not sources:
            return
        ray = _ray()
        spec = self._spec(store)
        progress.phase = "embedding"
        self._report(progress)
        options = self.cluster
        workers = options.workers or self._default_workers(ray)
        current = {rel: record.file_hash for rel, record in catalog.items() if record.policy == self.policy}
        items = [
            dict(
                rel=s.rel,
                size=s.size,
                mtime_ns=s.mtime_ns,
                language=s.language,
                old_hash=current.get(s.rel, ""),
            )
            for s in sources
        ]
        per_task = max(1, options.files_per_task)
        blocks = max(1, -(-len(items) // per_task))
        cached = ray.put(store.cached_keys())
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        ds = ds.map_batches(
            read_and_chunk,
            fn_kwargs=dict(root=str(self.root), spec=spec, options=self.options),
            batch_size=per_task,
            num_cpus=1,
        )
        ds = ds.map_batches(
            EmbedWorker,
            fn_constructor_kwargs=dict(spec=spec, device=self._worker_device, dtype=self.dtype, cached=cached),
            batch_size=per_task,
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=options.cpus_per_worker,  # Ray Data restarts a lost actor and retries its batch
            **({"num_gpus": options.gpus_per_worker} if options.gpus_per_worker else {}),
        )
        log.info("ray: %d files, %d embedding workers", len(items), workers)
        self._drain(store, ds.iter_rows(), catalog, stats, progress)

    def _default_workers(self, ray: Any) -> int:
        """One per GPU share; without GPUs, one per CPU share but one (left to the chunking tasks)."""
        resources = ray.cluster_resources()
        if self.cluster.gpus_per_worker:
            return max(1, int(resources.get("GPU", 0) // self.cluster.gpus_per_worker))
        return max(1, int((resources.get("CPU", 1) - 1) // max(self.cluster.cpus_per_worker, 1)))

    def _drain(
        self,
        store: Store,
        rows: Iterator[dict[str, Any]],
        catalog: dict[str, FileRecord],
        stats: IndexStats,
        progress: Progress,
    ) -> None:
        """The single writer: commit the pipeline's files in batches of about BATCH_CHUNKS."""
        pending: list[tuple[FileRecord, list[Chunk]]] = []
        keys: list[str] = []
        fresh: dict[str, np.ndarray] = {}
        touched: list[FileRecord] = []
        for row in rows:
            rel, status = str(row["rel"]), str(row["status"])
            if status == "skipped":
                self.skips.skip(str(row["reason"]), rel)
                self._left_out(
                    store, catalog, rel, [int(row["size"]), int(row["mtime_ns"]), str(row["reason"])], progress
                )
                continue
            record = FileRecord(
                rel,
                int(row["size"]),
                int(row["mtime_ns"]),
                str(row["file_hash"]),
                str(row["language"]),
                0,
                policy=self.policy,
            )
            old = catalog.get(rel)
            chunks = list(row["chunks"])
            if old is not None and (status == "same" or self._same_rows(old, record, chunks, list(row["keys"]))):
                touched.append(self._same_bytes(record, old, stats, progress))
                continue
            self._will_purge(store, [rel])
            pending.append((FileRecord(**{**record.__dict__, "chunks": len(chunks)}), chunks))
            keys.extend(row["keys"])
            fresh.update(zip(row["fresh_keys"], row["fresh_vectors"], strict=True))
            stats.files_changed += 1
            stats.secrets_redacted += int(row["secrets"])
            if len(keys) >= BATCH_CHUNKS:
                self._commit_batch(store, pending, keys, fresh, stats, progress)
                pending, keys, fresh = [], [], {}
        if pending:
            self._commit_batch(store, pending, keys, fresh, stats, progress)
        self._touch(store, touched, progress)

    def _commit_batch(
        self,
        store: Store,
        pending: list[tuple[FileRecord, list[Chunk]]],
        keys: list[str],
        fresh: dict[str, np.ndarray],
        stats: IndexStats,
        progress: Progress,
    ) -> None:
        """Vectors first (keys another batch already cached are not added twice), then rows."""
        started = time.perf_counter()
        vectors = store.cached_vectors(keys)
        new = {key: np.asarray(vector, dtype=np.float32) for key, vector in fresh.items() if key not in vectors}
        store.cache_vectors(new)
        stats.write_seconds += time.perf_counter() - started
        vectors.update(new)
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            first.setdefault(key, i)
        missing = [first[key] for key in new]
        self._commit(store, pending, keys, vectors, missing, stats, progress, embed=True, computed=len(missing))
