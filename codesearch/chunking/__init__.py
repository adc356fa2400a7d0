"""Chunking: a file's text → chunks (functions, methods, classes, module code, text windows).

Public: :func:`chunk_file`, :class:`Chunk`, :func:`estimate_tokens`, ``SUPPORTED_LANGUAGES``,
``QUALIFIER`` (joins ``Class.method``) and ``CHUNKER_VERSION``. ``max_tokens`` is the embedder's
budget for one input; the chunker keeps room for the header.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath

from codesearch.chunking.languages import SUPPORTED_LANGUAGES
from codesearch.chunking.model import QUALIFIER, Chunk, LineCounter, estimate_lines, estimate_tokens, header_reserve
from codesearch.chunking.text import window_chunks
from codesearch.chunking.treesitter import TreeSitterChunker
from codesearch.files.walk import looks_minified

log = logging.getLogger(__name__)

__all__ = [
    "CHUNKER_VERSION",
    "QUALIFIER",
    "SUPPORTED_LANGUAGES",
    "Chunk",
    "LineCounter",
    "chunk_file",
    "estimate_tokens",
]

# Bumped whenever the chunks of some file change (ranges, symbols, kinds): an index records the
# version its files were chunked with, and re-chunks the files of an older one.
# 2: no one-line piece of a split definition; a C++ function defined as ``ns::f`` is a function.
CHUNKER_VERSION = 2


def chunk_file(
    rel_path: str, text: str, language: str, max_tokens: int = 256, count_lines: LineCounter = estimate_lines
) -> list[Chunk]:
    """Split one file into chunks of at most ``max_tokens`` (header included), counting tokens
    with ``count_lines`` (the embedder's tokenizer, or an estimate). Never raises on bad input:
    a file the parser cannot handle falls back to line windows (and is logged)."""
    budget = max(16, max_tokens - header_reserve(max_tokens))
    if language in SUPPORTED_LANGUAGES and not looks_minified(text):
        try:
            return TreeSitterChunker(language, text, budget, PurePosixPath(rel_path).name, count_lines).chunks()
        except (RecursionError, ValueError, MemoryError) as exc:
            log.warning("tree-sitter chunking failed for %s (%s); using line windows", rel_path, exc)
    return window_chunks(text, language, budget, PurePosixPath(rel_path).name, count_lines)
