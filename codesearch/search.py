"""Searching an index: natural-language (or code) query → ranked chunks.

Owns the query modes (``dense``, ``lexical``, ``hybrid``: their weighted, normalised fusion), the
filters (languages, path glob), the result shape shared by the CLI and the language server,
and index status. The embedding model is loaded only when a query needs vectors.
"""

from __future__ import annotations

import logging
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from codesearch.embedding import Embedder, load_embedder, moved_model, resolve_model
from codesearch.errors import IndexCorruptError, ModelMismatchError, UnknownModelError, UsageError
from codesearch.store import Hit, IndexDir, fuse, glob_filter, mark_damaged, sql_in

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
SNIPPET_LINES = 6
SNIPPET_CHARS = 500


@dataclass(frozen=True)
class SearchResult:
    path: str  # posix, relative to the indexed root
    start_line: int  # 1-based, inclusive
    end_line: int
    symbol: str
    kind: str
    language: str
    score: float
    snippet: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def candidate_depth(k: int) -> int:
    """How many candidates each side (dense, lexical) gives a hybrid query for its best ``k``."""
    return max(50, 2 * k)


def make_snippet(text: str) -> str:
    lines = [line for line in textwrap.dedent(text).split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    snippet = "\n".join(lines[:SNIPPET_LINES]).rstrip()
    return snippet[:SNIPPET_CHARS]


class Searcher:
    """Queries one index folder."""

    def __init__(
        self,
        index_dir: IndexDir,
        *,
        model: str | None = None,
        embedder: Embedder | None = None,
        load: Callable[[str], Embedder] | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ) -> None:
        """``load``: how the query model is loaded, on the first query that needs vectors (a
        language server shares one model between its folders); default :func:`load_embedder`."""
        from codesearch.store import Store  # lancedb: imported when an index is opened

        self.store = Store.open(index_dir)
        self.index_dir = index_dir
        stored = str(self.store.meta.get("model_name") or self.store.meta.get("model_id"))
        if model not in (None, "auto", stored) and resolve_model(model).model_id != self.store.meta.get("model_id"):
            raise ModelMismatchError(
                f"the index at {index_dir} was built with model {stored!r}, not {model!r}: search without "
                f"--model, or re-index with codesearch index --rebuild --model {model}"
            )
        self.model_name = stored
        self._embedder = embedder
        self._load = load or (lambda name: load_embedder(name, device=device, dtype=dtype))
        self._last = threading.local()  # per thread: a server runs queries in several

    @property
    def words_only(self) -> str:
        """Why this thread's last hybrid query ranked by words alone ('' when it did not)."""
        return str(getattr(self._last, "words_only", ""))

    @property
    def embedder(self) -> Embedder:
        """The query model, loaded on first use (a load that fails is tried again next time)."""
        if self._embedder is None:
            now = moved_model(self.model_name, self.store.meta.get("model_id"))
            if now:
                raise ModelMismatchError(
                    f"the index at {self.index_dir} holds vectors of {self.store.meta.get('model_id')}, but model "
                    f"{self.model_name!r} is now {now} (codesearch was updated): run codesearch index to re-embed it"
                )
            embedder = self._load(self.model_name)
            if embedder.dimension != self.store.dimension:
                raise ModelMismatchError(
                    f"model {self.model_name!r} makes {embedder.dimension}-d vectors but "
                    f"the index holds {self.store.dimension}-d ones; re-index with --rebuild"
                )
            self._embedder = embedder
        return self._embedder

    def dense_coverage(self) -> float:
        """The share of chunks with vectors (below 1 while a dense pass is still running):
        hybrid results then rank the rest by words alone."""
        total = self.store.count_chunks()
        return self.store.count_embedded() / total if total else 1.0

    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        languages: list[str] | None = None,
        path_glob: str | None = None,
    ) -> list[SearchResult]:
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if k < 1:
            raise UsageError("k must be at least 1")
        query = query.strip()
        if not query:
            raise UsageError("the query is empty")
        where = self._where(languages, path_glob)
        return self._results(self._rank(query, lambda: self.embedder.embed_query(query), k, mode, where))

    def similar(
        self,
        code: str,
        k: int = 10,
        exclude: tuple[str, int, int] | None = None,
        languages: list[str] | None = None,
        path_glob: str | None = None,
    ) -> list[SearchResult]:
        """Code like ``code`` (code-to-code search): it is embedded as a document, the way the
        indexed chunks were, and fused with a lexical query of its words. ``exclude``: (path,
        start line, end line) of the selection itself; hits overlapping it are left out."""
        if not code.strip():
            raise UsageError("the selection is empty")
        if k < 1:
            raise UsageError("k must be at least 1")
        where = self._where(languages, path_glob)
        hits = self._rank(code, lambda: self.embedder.embed_documents([code])[0], k + 3, "hybrid", where)
        if exclude is not None:
            path, start, end = exclude
            hits = [h for h in hits if not (h.path == path and h.start_line <= end and h.end_line >= start)]
        return self._results(hits[:k])

    def _rank(self, text: str, vector: Callable[[], np.ndarray], k: int, mode: str, where: str | None) -> list[Hit]:
        failed_before, self._last.words_only = self.words_only, ""
        if mode == "hybrid":
            try:
                query_vector = vector()
            except (UnknownModelError, ModelMismatchError) as exc:  # no fitting model now: words still answer
                if not failed_before:
                    log.info("ranking by words alone: %s", exc)
                self._last.words_only = str(exc)
                mode = "lexical"
        try:
            if mode == "lexical":
                return self.store.lexical(text, k, where)
            if mode == "dense":
                return self.store.dense(vector(), k, where)
            depth = candidate_depth(k)
            return fuse([self.store.dense(query_vector, depth, where), self.store.lexical(text, depth, where)], k)
        except (OSError, RuntimeError, ValueError) as exc:  # the tables' files went away or were damaged
            detail = " ".join(str(exc).split())[:200]
            mark_damaged(self.index_dir, detail)  # the next index run checks and repairs it
            raise IndexCorruptError(
                f"cannot read the index at {self.index_dir}: it was deleted or damaged while in use ({detail}); "
                "run codesearch index to repair it (a watcher or the language server repairs it by itself)"
            ) from exc

    @staticmethod
    def _results(hits: list[Hit]) -> list[SearchResult]:
        return [
            SearchResult(
                h.path, h.start_line, h.end_line, h.symbol, h.kind, h.language, round(h.score, 4), make_snippet(h.text)
            )
            for h in hits
        ]

    @staticmethod
    def _where(languages: list[str] | None, path_glob: str | None) -> str | None:
        clauses = []
        if languages:
            clauses.append(sql_in("language", [lang.lower() for lang in languages]))
        if path_glob:
            clauses.append(glob_filter(path_glob))
        return " AND ".join(f"({c})" for c in clauses) or None


def index_status(index_dir: IndexDir) -> dict[str, Any]:
    """What an index holds: root, files, chunks, model, size on disk, last update, and the
    progress of the run writing it now (``running``; ``None`` when none is)."""
    from codesearch.index.runs import read_progress
    from codesearch.store import Store

    store = Store.open(index_dir)
    meta = store.meta
    updated = float(meta.get("updated", 0))
    return dict(
        root=meta.get("root"),
        index_dir=str(index_dir),
        files=store.count_files(),
        chunks=store.count_chunks(),
        chunks_embedded=store.count_embedded(),
        model=meta.get("model_name"),
        model_id=meta.get("model_id"),
        model_reason=meta.get("model_reason", ""),
        cached_vectors=store.count_cached(),
        dimension=meta.get("dimension"),
        size_bytes=store.size_bytes(),
        updated=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(updated)) if updated else None,
        last_run=meta.get("last_run"),
        running=read_progress(index_dir),
        secrets=dict(  # held back from the index (the files: as of the last full walk)
            files=int(((meta.get("last_run") or {}).get("skipped") or {}).get("secret", 0)),
            chunks_redacted=store.count_redacted(),
        ),
    )
