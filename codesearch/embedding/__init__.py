"""Embedding: the only package that imports torch or transformers (lazily, on first load).

Public: :class:`Embedder` (the interface the indexer and searcher use), :func:`load_embedder`,
:func:`resolve_model`, :class:`ModelSpec`, ``PRESETS`` and ``DEFAULT_MODEL``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from codesearch.embedding.models import DEFAULT_MODEL, PRESETS, ModelSpec, resolve_model

__all__ = ["DEFAULT_MODEL", "PRESETS", "Embedder", "ModelSpec", "load_embedder", "resolve_model"]


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of ``dimension`` components."""

    spec: ModelSpec
    dimension: int
    max_tokens: int
    truncated: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str], special: bool = True) -> list[int]: ...


def load_embedder(
    model: str | ModelSpec | None = None, device: str | None = None, dtype: str | None = None
) -> Embedder:
    """Load a model by preset name, local folder or hub id (see :func:`resolve_model`)."""
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    from codesearch.embedding.transformer import TransformerEmbedder

    return TransformerEmbedder(spec, device=device, dtype=dtype)
