"""Store rows and query helpers that need no database: the catalog record, chunk ids, the
search hit, the identifier-splitting terms of the full-text index, SQL literal quoting,
path-glob filters and the fusion of dense and lexical rankings.

Kept apart from :mod:`codesearch.store.lance` so callers that only plan (a no-change re-index
reads stats and a snapshot) never pay for importing lancedb.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pathspec.patterns.gitwildmatch import GitWildMatchPattern

from codesearch.errors import UsageError

DENSE_WEIGHT = 0.7  # hybrid = 0.7 x dense + 0.3 x lexical, each min-max normalised (see fuse)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_REGEX_META = frozenset("\\.+*?()|[]{}^$#&-~")  # escaped alike by Python's re and the query engine's regex


def split_identifier(word: str) -> list[str]:
    """``parseHeaderLinks`` / ``parse_header_links`` / ``HTTPServer`` → their lower-case words."""
    parts: list[str] = []
    for piece in word.split("_"):
        parts.extend(m.group(0).lower() for m in _CAMEL.finditer(piece))
    return parts


def lexical_terms(text: str) -> str:
    """Text for the full-text index: the text itself plus the words of every compound
    identifier, so ``parse header links`` finds ``parseHeaderLinks``."""
    extra: list[str] = []
    seen: set[str] = set()
    for match in _IDENT.finditer(text):
        word = match.group(0)
        if word in seen:
            continue
        seen.add(word)
        parts = split_identifier(word)
        if len(parts) > 1:
            extra.extend(parts)
    return text + "\n" + " ".join(extra) if extra else text


def sql_str(value: str) -> str:
    """A SQL string literal: single quotes doubled; nothing else is special in it."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(sql_str(v) for v in values)})"


def glob_filter(glob: str) -> str:
    """A path glob (gitignore syntax: ``*.py``, ``src/**/*.ts``, ``tests/``; ``\\[`` is a literal
    bracket) as a SQL filter. A glob that is no valid pattern is a :class:`UsageError` here, before
    any query runs: the database's regex error would read like a damaged index."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            regex, include = GitWildMatchPattern.pattern_to_regex(glob.strip())
    except ValueError as exc:
        raise UsageError(f"invalid path glob {glob!r}: {exc}") from exc
    if regex is None or not include:
        raise UsageError(f"invalid path glob {glob!r}")
    try:
        with warnings.catch_warnings():  # nested sets, set operations: read otherwise by the query engine
            warnings.simplefilter("error", FutureWarning)
            re.compile(regex)
    except (re.error, FutureWarning) as exc:
        detail = exc.msg if isinstance(exc, re.error) else str(exc)
        raise UsageError(f"invalid path glob {glob!r}: {detail} (write \\[ for a literal bracket)") from exc
    return f"regexp_like(path, {sql_str(regex)})"


def escape_glob(text: str) -> str:
    """``text`` as a glob that matches itself only: ``app/[slug]/page.tsx`` → ``app/\\[slug\\]/page.tsx``."""
    escaped = re.sub(r"([\\\[\]*?])", r"\\\1", text.strip())
    return "\\" + escaped if escaped.startswith(("!", "#")) else escaped


def under_filter(rel: str) -> str:
    """Rows of the file ``rel`` (a posix path relative to the root) or of the files under the folder ``rel``."""
    rel = rel.strip("/")
    literal = "".join("\\" + c if c in _REGEX_META else c for c in rel)
    return f"regexp_like(path, {sql_str('^' + literal + '(/|$)')})"


@dataclass(frozen=True)
class FileRecord:
    path: str
    size: int
    mtime_ns: int
    file_hash: str
    language: str
    chunks: int
    dense: bool = True
    chunk_ids: tuple[str, ...] = ()  # its chunk rows' ids, in file order
    policy: str = ""  # the row policy its rows were made under (codesearch.options; '' unknown)


@dataclass(frozen=True)
class StoredRows:
    """What the chunk table held for some files when read (``Store.stored_rows``)."""

    paths: tuple[str, ...]
    ids: set[str]  # their rows' chunk ids
    vkeys: set[str]  # their rows' vector keys
    unembedded: int  # how many of their rows lack a vector


def chunk_id(path: str, start_line: int, end_line: int, vkey: str) -> str:
    """A chunk row's id: equal ids mean the same text at the same lines of the same file
    embedded the same way. Deterministic, so any engine that indexes a tree gets the same ids."""
    digest = hashlib.blake2b(f"{path}\0{start_line}\0{end_line}\0{vkey}".encode(), digest_size=10)
    return digest.hexdigest()


@dataclass(frozen=True)
class Hit:
    """One search result row (``score`` is in [0, 1] for every mode; higher is better)."""

    path: str
    start_line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    text: str
    score: float


def fuse(
    rankings: Sequence[Sequence[Hit]],
    k: int,
    weights: Sequence[float] | None = None,
    bounds: Sequence[tuple[float, float] | None] | None = None,
) -> list[Hit]:
    """Hybrid ranking: a weighted sum of each ranking's scores, min-max normalised over its own
    candidates (its best gets 1, its worst 0, a hit it lacks 0). The default weights are
    ``DENSE_WEIGHT`` for the first ranking (dense) and the rest for the second (lexical); a hit
    first in both scores 1. Chosen on CSN, SOSum and CoSQA (``benchmarks/fusion_sweep.py``):
    reciprocal-rank fusion fell below dense alone where the lexical side is weak. ``bounds``:
    the (lowest, highest) score each ranking is normalised over instead of its own, when its
    candidates are part of a larger set ranked on one scale (several indexes: :func:`score_bounds`)."""
    if weights is None:
        weights = (DENSE_WEIGHT, 1.0 - DENSE_WEIGHT) if len(rankings) == 2 else [1.0 / len(rankings)] * len(rankings)
    scores: dict[tuple[str, int, int], float] = {}
    hits: dict[tuple[str, int, int], Hit] = {}
    for i, (weight, ranking) in enumerate(zip(weights, rankings, strict=True)):
        if not ranking:
            continue
        given = bounds[i] if bounds is not None else None
        low, top = given or (min(h.score for h in ranking), max(h.score for h in ranking))
        span = top - low
        for hit in ranking:
            key = (hit.path, hit.start_line, hit.end_line)
            share = (hit.score - low) / span if span > 0 else 1.0
            scores[key] = scores.get(key, 0.0) + weight * share
            hits.setdefault(key, hit)
    ordered = sorted(scores, key=lambda key: scores[key], reverse=True)[:k]
    return [Hit(**{**hits[key].__dict__, "score": min(1.0, scores[key])}) for key in ordered]


def score_bounds(rankings: Sequence[Sequence[Hit]]) -> tuple[float, float] | None:
    """The (lowest, highest) score in all of ``rankings`` (rankings of one kind from several
    indexes: :func:`fuse` normalises each over them all); ``None`` when they hold no hit."""
    scores = [hit.score for ranking in rankings for hit in ranking]
    return (min(scores), max(scores)) if scores else None
