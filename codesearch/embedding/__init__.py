"""Embedding: the only package that imports torch or transformers (lazily, on first load).

Public: :class:`Embedder` (the interface the indexer and searcher use), :func:`load_embedder`,
:class:`TokenSizer` and :func:`load_token_counter` (a model's tokenizer alone, to size chunks),
:func:`resolve_model`, :func:`vector_keys`, :class:`ModelSpec`, ``PRESETS``, ``DEFAULT_MODEL``
and ``AUTO``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from codesearch.embedding.models import (
    AUTO,
    DEFAULT_MODEL,
    PRESETS,
    ModelSpec,
    moved_model,
    resolve_model,
    vector_keys,
)

__all__ = [
    "AUTO",
    "DEFAULT_MODEL",
    "PRESETS",
    "Embedder",
    "ModelSpec",
    "TokenSizer",
    "load_embedder",
    "load_token_counter",
    "moved_model",
    "resolve_model",
    "vector_keys",
]


class TokenSizer(Protocol):
    """What sizing chunks needs: exact token counts and the model's input limit."""

    spec: ModelSpec
    max_tokens: int

    def count_tokens(self, texts: Sequence[str], special: bool = True) -> list[int]: ...


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of ``dimension`` components."""

    spec: ModelSpec
    device: str
    dtype: str
    dimension: int
    max_tokens: int
    truncated: int

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str], special: bool = True) -> list[int]: ...


def load_embedder(
    model: str | ModelSpec | None = None,
    device: str | None = None,
    dtype: str | None = None,
    batch_tokens: int | None = None,
) -> Embedder:
    """Load ``auto`` (the default), a preset, a local folder or a hub id (see :func:`resolve_model`)
    on ``device`` (default: CUDA, then MPS, then CPU) in ``dtype`` (auto, float32, bfloat16, int8)."""
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    from codesearch.embedding.transformer import TransformerEmbedder

    return TransformerEmbedder(spec, device=device, dtype=dtype, batch_tokens=batch_tokens)


def load_token_counter(model: str | ModelSpec | None = None) -> TokenSizer:
    """The tokenizer of ``model`` without its weights (see :func:`load_embedder` for names)."""
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    from codesearch.embedding.transformer import TokenCounter

    return TokenCounter(spec)
