"""Searching an index: natural-language (or code) query → ranked chunks.

Owns the query modes (``dense``, ``lexical``, ``hybrid``: their weighted, normalised fusion), the
filters (languages, path glob), the result shape shared by the CLI and the language server (one
result per definition: the pieces of a definition split for size merge into one; no 0-score
filler), and index status. A hybrid query's lexical side runs on a side thread beside its dense
side. The embedding model is loaded only when a query needs vectors. No query counts rows:
coverage and status read the counts the writer keeps in the meta (``Store.counts``).
"""

from __future__ import annotations

import difflib
import logging
import textwrap
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from codesearch.embedding import Embedder, load_embedder, moved_model, resolve_model
from codesearch.errors import IndexCorruptError, ModelMismatchError, UnknownModelError, UsageError
from codesearch.files.languages import CODE_EXTENSIONS, TEXT_EXTENSIONS, TEXT_FILENAMES
from codesearch.foreground import foreground
from codesearch.ranking import prefer_definitions
from codesearch.store import (
    Hit,
    IndexDir,
    escape_glob,
    fuse,
    glob_filter,
    mark_damaged,
    read_meta,
    sql_in,
    under_filter,
)

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
LANGUAGES = tuple(sorted({*CODE_EXTENSIONS.values(), *TEXT_EXTENSIONS.values(), *TEXT_FILENAMES.values()}))
SNIPPET_LINES = 6
SNIPPET_CHARS = 500
MERGE_FETCH = 3  # candidates ranked per result wanted, so that k remain once pieces merge
MIN_SCORE = 0.0005  # a result scoring less shows as 0.000: the worst candidate of a fusion, filler
WHOLE_KINDS = frozenset({"module", "text", "namespace"})  # chunks that are no piece of a definition
_COMMENT_STARTS = ("#", "//", "/*", "*")  # comments, attributes, preprocessor lines: not a piece's code


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


# The lexical side of a hybrid query runs here beside its dense side (``Searcher._sides``): both are
# LanceDB queries, which release the GIL, so on 2 cores they overlap.
_LEXICAL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="codesearch-lexical")


def candidate_depth(k: int) -> int:
    """How many candidates each side (dense, lexical) gives a hybrid query for its best ``k``."""
    return max(50, 2 * k)


def language_names(languages: list[str]) -> list[str]:
    """Language filters as the index stores them: known names (any case) or file extensions
    (``py``, ``.ts``); anything else is a :class:`UsageError` naming the known languages."""
    names = []
    for lang in languages:
        if not isinstance(lang, str):
            raise UsageError(f"a language is a name such as python, not {lang!r}")
        name = lang.strip().lower()
        extension = "." + name.lstrip(".")
        name = CODE_EXTENSIONS.get(extension) or TEXT_EXTENSIONS.get(extension) or name
        if name not in LANGUAGES:
            close = difflib.get_close_matches(name, LANGUAGES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UsageError(f"unknown language {lang!r}{hint}; known languages: {', '.join(LANGUAGES)}")
        names.append(name)
    return names


def check_filters(languages: list[str] | None, path_glob: str | None) -> None:
    """Raise the :class:`UsageError` a bad language or path glob gets, without an index (a front
    end searching several folders checks once, even before any folder has an index)."""
    language_names(languages or [])
    if path_glob:
        glob_filter(path_glob)


def _key(hit: Hit) -> tuple[str, int, int]:
    return hit.path, hit.start_line, hit.end_line


def _code_indent(text: str) -> int | None:
    """The indentation of a chunk's first line of code (comments, preprocessor lines skipped)."""
    for line in text.split("\n"):
        stripped = line.strip()
        if stripped and not stripped.startswith(_COMMENT_STARTS):
            expanded = line.expandtabs(4)
            return len(expanded) - len(expanded.lstrip())
    return None


def definitions(run: Sequence[Hit], texts: dict[tuple[str, int, int], str]) -> list[list[Hit]]:
    """A run of consecutive chunks of one file with the same symbol and kind, grouped into
    definitions: a chunk whose first line of code is indented deeper than its definition's first
    one continues it (a piece of a split body); one that is not starts the next definition (an
    overload, a property's setter). A chunk of comments alone (a piece of a long doc comment)
    belongs with the definition it is in or precedes; the first code after such pieces sets the
    definition's indentation. ``texts``: chunk text by (path, start line, end line)."""
    groups: list[list[Hit]] = []
    head: int | None = None
    for row in run:
        indent = _code_indent(texts.get(_key(row), ""))
        if groups and (indent is None or head is None or indent > head):
            groups[-1].append(row)
            head = indent if head is None else head
        else:
            groups.append([row])
            head = indent
    return groups


def _runs(rows: list[Hit], hits: list[Hit]) -> list[list[Hit]]:
    """The runs of two or more consecutive ``rows`` (chunks of whole files, in file order) with
    the same symbol and kind that hold one of ``hits``."""
    place = {_key(row): i for i, row in enumerate(rows)}
    runs: list[list[Hit]] = []
    taken: set[int] = set()
    for hit in hits:
        at = place.get(_key(hit))
        if at is None or at in taken:
            continue  # changed since it was ranked, or in a run already
        first, last, same = at, at, (hit.path, hit.symbol, hit.kind)
        while first > 0 and (rows[first - 1].path, rows[first - 1].symbol, rows[first - 1].kind) == same:
            first -= 1
        while last + 1 < len(rows) and (rows[last + 1].path, rows[last + 1].symbol, rows[last + 1].kind) == same:
            last += 1
        taken.update(range(first, last + 1))
        if last > first:
            runs.append(rows[first : last + 1])
    return runs


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
            now = moved_model(self.model_name, self.store.meta.get("model_id"), self.store.meta.get("cache_key"))
            if now:
                raise ModelMismatchError(
                    f"the index at {self.index_dir} holds vectors of {self.store.meta.get('model_id')}, but model "
                    f"{self.model_name!r} is now {now} (codesearch was updated, or its weights changed): "
                    "run codesearch index to re-embed it"
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
        hybrid results then rank the rest by words alone. Read from the counts the writer keeps
        in the meta: no row is counted."""
        counts = self.store.counts()
        return counts["chunks_embedded"] / counts["chunks"] if counts["chunks"] else 1.0

    @foreground
    def search(
        self,
        query: str,
        k: int = 10,
        mode: str = "hybrid",
        languages: list[str] | None = None,
        path_glob: str | None = None,
        pieces: bool = False,
        under: str | None = None,
    ) -> list[SearchResult]:
        """The best ``k`` definitions for ``query`` (``pieces``: the best ``k`` chunks, each piece
        of a definition split for size on its own). Filters: ``languages`` (names or extensions),
        ``path_glob`` (gitignore syntax; a path holding brackets that is in the index matches
        itself), ``under`` (a file or folder, posix, relative to the root). Bad filters are a
        :class:`UsageError` before any query runs."""
        if mode not in MODES:
            raise UsageError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
        if k < 1:
            raise UsageError("k must be at least 1")
        query = query.strip()
        if not query:
            raise UsageError("the query is empty")
        where = self._where(languages, path_glob, under)

        def vector() -> np.ndarray:
            return self.embedder.embed_query(query)

        if pieces:
            return self._results(self._rank(query, vector, k, mode, where))
        keep = MERGE_FETCH * k
        while True:
            hits = self._rank(query, vector, k, mode, where, keep)
            merged = self._merge(hits)
            if len(merged) >= k or len(hits) < keep or keep >= 30 * k:
                return self._results(merged[:k])
            keep *= MERGE_FETCH  # one long definition took most candidates: rank deeper

    @foreground
    def similar(
        self,
        code: str,
        k: int = 10,
        exclude: tuple[str, int, int] | None = None,
        languages: list[str] | None = None,
        path_glob: str | None = None,
        pieces: bool = False,
        under: str | None = None,
    ) -> list[SearchResult]:
        """Code like ``code`` (code-to-code search): it is embedded as a document, the way the
        indexed chunks were, and fused with a lexical query of its words. ``exclude``: (path,
        start line, end line) of the selection itself; hits overlapping it are left out (before
        the pieces of a definition merge: a definition's other pieces still count)."""
        if not code.strip():
            raise UsageError("the selection is empty")
        if k < 1:
            raise UsageError("k must be at least 1")
        where = self._where(languages, path_glob, under)
        keep = k + 3 if pieces else MERGE_FETCH * (k + 3)
        hits = self._rank(
            code, lambda: self.embedder.embed_documents([code])[0], k + 3, "hybrid", where, keep, prefer=False
        )
        if exclude is not None:
            path, start, end = exclude
            hits = [h for h in hits if not (h.path == path and h.start_line <= end and h.end_line >= start)]
        return self._results((hits if pieces else self._merge(hits))[:k])

    # -- the stages of a hybrid query, for a front end that ranks several indexes on one scale ----------
    @foreground
    def candidates(
        self,
        text: str,
        k: int = 10,
        languages: list[str] | None = None,
        path_glob: str | None = None,
        under: str | None = None,
        code: bool = False,
    ) -> list[list[Hit]] | None:
        """The first stage of a hybrid :meth:`search` (``code``: of :meth:`similar`, ``text`` is
        embedded as a document): the dense and the lexical candidates, raw scores, each
        :func:`candidate_depth` deep. Fused (:func:`~codesearch.store.fuse`, normalised over the
        candidates of every index searched: :func:`~codesearch.store.score_bounds`), they go to
        :meth:`best_definitions` or :meth:`best_similar`. ``None`` when no model fits now: the
        query ranks by words alone (:attr:`words_only` says why; :meth:`search` does that)."""
        if k < 1:
            raise UsageError("k must be at least 1")
        text = text if code else text.strip()
        if not text.strip():
            raise UsageError("the selection is empty" if code else "the query is empty")
        where = self._where(languages, path_glob, under)
        failed_before, self._last.words_only = self.words_only, ""
        try:
            vector = self.embedder.embed_documents([text])[0] if code else self.embedder.embed_query(text)
        except (UnknownModelError, ModelMismatchError) as exc:  # no fitting model now: words still answer
            if not failed_before:
                log.info("ranking by words alone: %s", exc)
            self._last.words_only = str(exc)
            return None
        return self._sides(vector, text, candidate_depth(k), where)

    def _sides(self, vector: np.ndarray, text: str, depth: int, where: str | None) -> list[list[Hit]]:
        """The dense and the lexical candidates of a hybrid query, ``depth`` each. The lexical
        query runs on a side thread while this one runs the dense query (after the query's
        embedding: beside it, the two threads would contend for the cores and the GIL); the
        call returns only once both have ended."""
        with self._reading():
            lexical = _LEXICAL.submit(self.store.lexical, text, depth, where)
            try:
                dense = self.store.dense(vector, depth, where)
            finally:
                wait((lexical,))
            return [dense, lexical.result()]

    @foreground
    def best_definitions(self, fused: list[Hit], k: int, query: str = "") -> list[SearchResult]:
        """The last stage of a hybrid :meth:`search`: the best ``k`` definitions of ``fused`` (this
        index's fused candidates, best first), the pieces of each merged into one result.
        ``query``: weighs them as :meth:`search` does (:func:`~codesearch.ranking.prefer_definitions`)."""
        if query:
            fused = prefer_definitions(fused, query)
        keep = MERGE_FETCH * k
        while True:
            hits = fused[:keep]
            merged = self._merge(hits)
            if len(merged) >= k or len(hits) < keep or keep >= 30 * k:
                return self._results(merged[:k])
            keep *= MERGE_FETCH  # one long definition took most candidates: look deeper

    @foreground
    def best_similar(self, fused: list[Hit], k: int, exclude: tuple[str, int, int] | None = None) -> list[SearchResult]:
        """The last stage of :meth:`similar` (``fused``: from :meth:`candidates` with ``k + 3``)."""
        hits = fused[: MERGE_FETCH * (k + 3)]
        if exclude is not None:
            path, start, end = exclude
            hits = [h for h in hits if not (h.path == path and h.start_line <= end and h.end_line >= start)]
        return self._results(self._merge(hits)[:k])

    def _rank(
        self,
        text: str,
        vector: Callable[[], np.ndarray],
        k: int,
        mode: str,
        where: str | None,
        keep: int = 0,
        prefer: bool = True,
    ) -> list[Hit]:
        """The best ``keep`` chunks (default ``k``) by ``mode``; a hybrid query fuses the candidates
        it would rank for its best ``k``, so more kept chunks leave the scores as they are.
        ``prefer``: the project's own definitions first (:func:`~codesearch.ranking.prefer_definitions`,
        weighed over at least the candidates a hybrid query fuses); code-to-code search ranks by
        its scores alone."""
        keep = max(keep, k)
        depth = max(keep, candidate_depth(k)) if prefer else keep
        failed_before, self._last.words_only = self.words_only, ""
        if mode == "hybrid":
            try:
                query_vector = vector()
            except (UnknownModelError, ModelMismatchError) as exc:  # no fitting model now: words still answer
                if not failed_before:
                    log.info("ranking by words alone: %s", exc)
                self._last.words_only = str(exc)
                mode = "lexical"
        with self._reading():
            if mode == "lexical":
                hits = self.store.lexical(text, depth, where)
            elif mode == "dense":
                hits = self.store.dense(vector(), depth, where)
            else:
                sides = self._sides(query_vector, text, candidate_depth(k), where)
                hits = fuse(sides, sum(map(len, sides)))
        return (prefer_definitions(hits, text) if prefer else hits)[:keep]

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Reads of the tables: a failure means their files went away or were damaged in use."""
        try:
            yield
        except (OSError, RuntimeError, ValueError) as exc:
            detail = " ".join(str(exc).split())[:200]
            mark_damaged(self.index_dir, detail)  # the next index run checks and repairs it
            raise IndexCorruptError(
                f"cannot read the index at {self.index_dir}: it was deleted or damaged while in use ({detail}); "
                "run codesearch index to repair it (a watcher or the language server repairs it by itself)"
            ) from exc

    def _merge(self, hits: list[Hit]) -> list[Hit]:
        """One hit per definition: the pieces of a definition split for size (see :func:`definitions`)
        become one hit with the best piece's score and place, the definition's lines, and the text
        of its first piece. Other hits are kept as they are."""
        wanted = [h for h in hits if h.kind not in WHOLE_KINDS]
        if not wanted:
            return hits
        with self._reading():
            runs = _runs(self.store.file_chunks(sorted({h.path for h in wanted})), wanted)
        if not runs:
            return hits
        with self._reading():
            rows = self.store.file_chunks(
                sorted({run[0].path for run in runs}), sorted({run[0].symbol for run in runs}), text=True
            )
        texts = {_key(row): row.text for row in rows}
        whole: dict[tuple[str, int, int], Hit] = {}
        for run in runs:
            for group in definitions(run, texts):
                if len(group) > 1:
                    head = group[0]
                    span = replace(head, end_line=group[-1].end_line, text=texts.get(_key(head), ""))
                    whole.update((_key(row), span) for row in group)
        out: list[Hit] = []
        shown: set[tuple[str, int, int]] = set()
        for hit in hits:  # best first: a definition takes its best piece's place and score
            definition = whole.get(_key(hit))
            if definition is None:
                out.append(hit)
            elif _key(definition) not in shown:
                shown.add(_key(definition))
                out.append(replace(definition, score=hit.score))
        return out

    @staticmethod
    def _results(hits: list[Hit]) -> list[SearchResult]:
        """Results of hits; a hit that would show a score of 0.000 (filler) is left out."""
        return [
            SearchResult(
                h.path, h.start_line, h.end_line, h.symbol, h.kind, h.language, round(h.score, 4), make_snippet(h.text)
            )
            for h in hits
            if h.score >= MIN_SCORE
        ]

    def _where(self, languages: list[str] | None, path_glob: str | None, under: str | None = None) -> str | None:
        clauses = []
        if languages:
            clauses.append(sql_in("language", language_names(languages)))
        if path_glob:
            clauses.append(self._glob_clause(path_glob))
        if under and under.strip("/") not in ("", "."):
            clauses.append(under_filter(under))
        return " AND ".join(f"({c})" for c in clauses) or None

    def _glob_clause(self, path_glob: str) -> str:
        """``--path``: a glob, except that a path with brackets (``app/[slug]/page.tsx``) that is
        in the index matches itself first (``\\[`` in a glob is a literal bracket either way)."""
        if "[" in path_glob and "\\" not in path_glob:
            literal = glob_filter(escape_glob(path_glob))
            try:
                found = bool(self.store.file_catalog(where=literal))
            except (OSError, RuntimeError, ValueError):  # the query itself says what is wrong
                found = False
            if found:
                return literal
        return glob_filter(path_glob)


class Searchers:
    """The searchers a long-lived process keeps open (the query service): one per index and
    query options, at most ``keep`` (the least recently used goes), and one query model per model
    name, options and weights, shared by them. An index re-created since its searcher opened
    (``--rebuild``: its meta names another creation or model) or re-embedded with changed weights
    (a checkpoint retrained in place: another cache key) gets a new searcher, and a new model."""

    def __init__(self, keep: int = 8) -> None:
        self._open: OrderedDict[tuple[str, str | None, str | None, str | None], tuple[Any, Searcher]] = OrderedDict()
        self._models: dict[tuple[str, str | None, str | None, Any], Embedder] = {}
        self._keep = keep
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    def get(
        self, index_dir: IndexDir, *, model: str | None = None, device: str | None = None, dtype: str | None = None
    ) -> Searcher:
        key = (str(index_dir), model, device, dtype)
        made = _made(index_dir)
        with self._lock:
            kept = self._open.pop(key, None)
            if kept is not None and made is not None and kept[0] == made:
                self._open[key] = kept
                return kept[1]
        weights = made[-1] if made else None  # a checkpoint retrained in place: another cache key, another model

        def load(name: str) -> Embedder:
            return self._model(name, device, dtype, weights)

        searcher = Searcher(index_dir, model=model, load=load, device=device, dtype=dtype)
        with self._lock:
            self._open[key] = (made, searcher)
            while len(self._open) > self._keep:
                self._open.popitem(last=False)
        return searcher

    def _model(self, name: str, device: str | None, dtype: str | None, weights: Any) -> Embedder:
        with self._loading:
            key = (name, device, dtype, weights)
            if key not in self._models:
                self._models[key] = load_embedder(name, device=device, dtype=dtype)
            return self._models[key]


def _made(index_dir: IndexDir) -> tuple[Any, ...] | None:
    """What tells one creation of a local index from another (``None``: cannot tell, reopen)."""
    try:
        meta = read_meta(index_dir)  # a Remote raises OSError: reopened each time
    except (OSError, ValueError):
        return None
    return meta.get("created"), meta.get("model_id"), meta.get("format"), meta.get("dimension"), meta.get("cache_key")


def index_status(index_dir: IndexDir) -> dict[str, Any]:
    """What an index holds: root, files, chunks, model, size on disk, last update, and the
    progress of the run writing it now (``running``; ``None`` when none is)."""
    from codesearch.index.runs import read_progress
    from codesearch.store import Store
    from codesearch.store.lance import ANN

    store = Store.open(index_dir)
    meta = store.meta
    updated = float(meta.get("updated", 0))
    counts = store.counts()  # as the writer last committed them (no row counted)
    return dict(
        root=meta.get("root"),
        index_dir=str(index_dir),
        files=counts["files"],
        chunks=counts["chunks"],
        chunks_embedded=counts["chunks_embedded"],
        model=meta.get("model_name"),
        model_id=meta.get("model_id"),
        model_reason=meta.get("model_reason", ""),
        cached_vectors=store.count_cached(),
        vector_index=meta.get(ANN),  # {"rows": trained on, "partitions": n}; None: exact search (a small index)
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
