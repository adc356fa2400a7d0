"""codesearch: semantic code search over a tree-sitter chunked, embedded, LanceDB-stored index.

The public API (what ``lsp`` and other callers may import):

- :class:`Indexer` / :class:`IndexStats`: bring an index up to date with a source tree;
- :class:`Searcher` / :class:`SearchResult` / :func:`index_status`: query it;
- :func:`default_index_dir` / :func:`find_index_dir`: where indexes live;
- :mod:`codesearch.errors`: the errors callers translate at their boundary.
"""

from __future__ import annotations

import os

os.environ.setdefault("LANCEDB_LOG", "error")

from codesearch.config import default_index_dir, find_index_dir
from codesearch.errors import CodesearchError
from codesearch.index import Indexer, IndexStats, Progress
from codesearch.search import MODES, Searcher, SearchResult, index_status

__version__ = "0.1.0"

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
