"""codesearch: semantic code search over a tree-sitter chunked, embedded, LanceDB-stored index.

The public API (what ``lsp`` and other callers may import):

- :class:`Indexer` / :class:`IndexStats`: bring an index up to date with a source tree;
- :class:`Searcher` / :class:`SearchResult` / :func:`index_status`: query it;
- :func:`default_index_dir` / :func:`find_index_dir`: where indexes live;
- :mod:`codesearch.errors`: the errors callers translate at their boundary.

The names load on first use (PEP 562): ``import codesearch`` alone imports nothing else, so the
``codesearch`` program can hand a query to its service (:mod:`codesearch.launch`) in a few
milliseconds.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

os.environ.setdefault("LANCEDB_LOG", "error")

__version__ = "0.1.0"

if TYPE_CHECKING:
    from codesearch.config import default_index_dir, find_index_dir
    from codesearch.errors import CodesearchError
    from codesearch.index import Indexer, IndexStats, Progress
    from codesearch.search import MODES, Searcher, SearchResult, index_status

_HOME = {
    "default_index_dir": "codesearch.config",
    "find_index_dir": "codesearch.config",
    "CodesearchError": "codesearch.errors",
    "Indexer": "codesearch.index",
    "IndexStats": "codesearch.index",
    "Progress": "codesearch.index",
    "MODES": "codesearch.search",
    "Searcher": "codesearch.search",
    "SearchResult": "codesearch.search",
    "index_status": "codesearch.search",
}

__all__ = [
    "MODES",
    "CodesearchError",
    "IndexStats",
    "Indexer",
    "Progress",
    "SearchResult",
    "Searcher",
    "__version__",
    "default_index_dir",
    "find_index_dir",
    "index_status",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'codesearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
