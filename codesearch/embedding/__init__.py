"""Embedding: the only package that imports torch or transformers (lazily, on first load).

Public: :class:`Embedder` (the interface the indexer and searcher use), :func:`load_embedder`,
:class:`SharedModels` (one model per process for all its users) and :func:`loaded_models`,
:class:`TokenSizer` and :func:`load_token_counter` (a model's tokenizer alone, to size chunks),
:func:`resolve_model`, :func:`vector_keys`, :class:`ModelSpec`, ``PRESETS``, ``DEFAULT_MODEL``
and ``AUTO``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

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
    "SharedModels",
    "TokenSizer",
    "load_embedder",
    "load_token_counter",
    "loaded_models",
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

    embedder = TransformerEmbedder(spec, device=device, dtype=dtype, batch_tokens=batch_tokens)
    _loaded.add(embedder)
    return embedder


_loaded: weakref.WeakSet[Any] = weakref.WeakSet()  # the models this process loaded and still holds


def loaded_models() -> list[dict[str, str]]:
    """The models this process holds now (name, device, dtype), one entry per loaded copy."""
    return sorted(
        (dict(name=e.spec.name, device=e.device, dtype=e.dtype) for e in list(_loaded)), key=lambda m: m["name"]
    )


class SharedModels:
    """One loaded model per model (resolved: its id and weights) for every user in a process: a
    language server's queries and the indexers of all its folders use the same weights, loaded
    once (a second copy would cost its memory and its load time again). Thread-safe: two threads
    asking for a model not yet loaded get one copy."""

    def __init__(self, device: str | None = None, dtype: str | None = None) -> None:
        self.device = device
        self.dtype = dtype
        self._models: dict[tuple[str, str], Embedder] = {}
        self._lock = threading.Lock()

    def load(self, model: str | None = None) -> Embedder:
        """The model ``model`` names (``auto``/``None``: the default), loaded on first use."""
        spec = resolve_model(model)
        key = (spec.model_id, spec.cache_key)
        with self._lock:
            if key not in self._models:
                self._models[key] = load_embedder(spec, device=self.device, dtype=self.dtype)
            return self._models[key]


def load_token_counter(model: str | ModelSpec | None = None) -> TokenSizer:
    """The tokenizer of ``model`` without its weights (see :func:`load_embedder` for names)."""
    spec = model if isinstance(model, ModelSpec) else resolve_model(model)
    from codesearch.embedding.transformer import TokenCounter

    return TokenCounter(spec)
