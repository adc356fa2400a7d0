"""The ModernBERT embedding engine on CPU with tiny random checkpoints built in-process:
batch invariance under every batching, pooling against an independent reference, the packed
(unpadded) path, precisions, device choice, ``--model auto``, and an 8192-token input."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from codesearch.embedding import load_embedder, resolve_model
from codesearch.embedding.transformer import TransformerEmbedder, pick_device, pick_dtype, token_budget_batches
from codesearch.errors import UsageError

pytestmark = pytest.mark.slow

WORDS = ["def", "parse", "header", "links", "value", "self", "import", "function", "return", "class"]
WORDS += ["the", "a", "of", "to", "(", ")", ":"]


def mixed_texts(count: int = 24, seed: int = 0) -> list[str]:
    """Texts from 3 to ~400 tokens, in no particular order."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(count):
        n = int(rng.choice([2, 5, 12, 40, 90, 200]))
        texts.append(" ".join(rng.choice(WORDS, size=n)) + f" ({n})")
    return texts


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


def reference(folder: Path, texts: list[str], pooling: str) -> np.ndarray:
    """Each text alone through the plain transformers model, pooled here: no code of ours."""
    from transformers import AutoTokenizer, ModernBertModel

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = ModernBertModel.from_pretrained(folder, attn_implementation="eager").eval()
    rows = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            hidden = model(input_ids=ids).last_hidden_state[0]
            pooled = hidden[0] if pooling == "cls" else hidden.mean(dim=0)
            rows.append((pooled / pooled.norm()).numpy())
    return np.stack(rows)


def engine(folder: Path, pooling: str = "mean", **kwargs) -> TransformerEmbedder:  # type: ignore[no-untyped-def]
    spec = dataclasses.replace(resolve_model(str(folder)), pooling=pooling)
    return TransformerEmbedder(spec, dtype=kwargs.pop("dtype", "float32"), **kwargs)


def test_token_budget_batches_cover_everything_within_budget() -> None:
    lengths = [500, 3, 40, 40, 7, 300, 1, 90, 2000]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    for padded in (True, False):
        batches = token_budget_batches(order, lengths, budget=600, padded=padded)
        assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
        assert batches[0] == [8]  # longer than the budget: alone
        for batch in batches[1:]:
            cost = len(batch) * lengths[batch[0]] if padded else sum(lengths[i] for i in batch)
            assert cost <= 600
    assert len(token_budget_batches(order, lengths, 600, padded=False)) < len(token_budget_batches(order, lengths, 600))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_equals_an_independent_reference(tiny_modernbert: Path, pooling: str) -> None:
    texts = mixed_texts(12)
    expected = reference(tiny_modernbert, texts, pooling)
    padded = engine(tiny_modernbert, pooling).embed_documents(texts)
    packed = engine(tiny_modernbert, pooling, packing="mask").embed_documents(texts)
    assert min_cosine(padded, expected) >= 0.9999
    assert min_cosine(packed, expected) >= 0.9999
    assert np.allclose(np.linalg.norm(padded, axis=1), 1.0, atol=1e-5)


def test_same_text_same_vector_whatever_batch_it_lands_in(tiny_modernbert: Path) -> None:
    texts = mixed_texts(24)
    whole = engine(tiny_modernbert, batch_tokens=8192)
    base = whole.embed_documents(texts)
    assert whole.tokens_computed > whole.tokens_embedded  # padded batches computed some padding
    variants = {
        "alone": np.stack([whole.embed_documents([t])[0] for t in texts]),
        "reversed": whole.embed_documents(texts[::-1])[::-1],
        "long neighbours": whole.embed_documents(texts + ["value " * 480] * 3)[: len(texts)],
        "small budget": engine(tiny_modernbert, batch_tokens=64).embed_documents(texts),
    }
    packed = engine(tiny_modernbert, packing="mask", batch_tokens=700)
    variants["packed by token budget"] = packed.embed_documents(texts)
    assert packed.tokens_computed == packed.tokens_embedded  # no padding token computed
    for name, vectors in variants.items():
        assert min_cosine(base, vectors) >= 0.9999, name


def test_prefixes_follow_the_preset(tiny_modernbert: Path) -> None:
    nomic = resolve_model("modernbert-embed-base")
    assert (nomic.query_prefix, nomic.document_prefix, nomic.pooling) == ("search_query: ", "search_document: ", "mean")
    gte = resolve_model("gte-modernbert-base")
    assert (gte.query_prefix, gte.document_prefix, gte.pooling, gte.max_tokens) == ("", "", "cls", 8192)
    local = dataclasses.replace(resolve_model(str(tiny_modernbert)), query_prefix="q: ", document_prefix="d: ")
    plain = engine(tiny_modernbert)
    prefixed = TransformerEmbedder(local, dtype="float32")
    assert np.allclose(prefixed.embed_queries(["parse links"]), plain.embed_documents(["q: parse links"]), atol=1e-6)
    assert np.allclose(prefixed.embed_documents(["parse links"]), plain.embed_documents(["d: parse links"]), atol=1e-6)
    # the vector key hashes the prefixed text: another prefix is another vector
    assert local.document_keys(["x"]) != resolve_model(str(tiny_modernbert)).document_keys(["x"])


def test_precisions_on_cpu(tiny_modernbert: Path) -> None:
    texts = mixed_texts(10)
    fp32 = engine(tiny_modernbert).embed_documents(texts)
    for dtype, floor in (("bfloat16", 0.99), ("int8", 0.95)):
        model = engine(tiny_modernbert, dtype=dtype)
        assert model.dtype == dtype
        vectors = model.embed_documents(texts)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
        assert min_cosine(fp32, vectors) >= floor, dtype
    with pytest.raises(UsageError, match="CPU only"):
        pick_dtype("cuda", "int8")
    with pytest.raises(UsageError, match="unknown dtype"):
        pick_dtype("cpu", "float8")


def test_device_choice() -> None:
    assert pick_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device(None) == expected
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA"):
            pick_device("cuda")
    with pytest.raises(UsageError, match="unknown device"):
        pick_device("tpu")


def test_auto_prefers_modernbert_weights_found_locally(
    tiny_modernbert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallback = resolve_model("auto")
    assert fallback.name == "minilm-code" and fallback.reason.startswith("auto: no ModernBERT weights")
    # the Hugging Face cache layout: models--org--name/{refs/main, snapshots/<commit>/...}
    cache = tmp_path / "hf"
    repo = cache / "models--nomic-ai--modernbert-embed-base"
    commit = "0123456789abcdef0123456789abcdef01234567"
    shutil.copytree(tiny_modernbert, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    nomic = resolve_model(None)
    assert (nomic.name, nomic.revision, nomic.query_prefix) == ("modernbert-embed-base", commit, "search_query: ")
    assert "Hugging Face cache" in nomic.reason and nomic.model_id == "nomic-ai/modernbert-embed-base"
    # a configured folder of checkpoints; gte-modernbert-base ranks first
    models = tmp_path / "models"
    shutil.copytree(tiny_modernbert, models / "gte-modernbert-base")
    monkeypatch.setenv("CODESEARCH_MODELS", str(models))
    gte = resolve_model("auto")
    assert (gte.name, gte.pooling, gte.model_id) == ("gte-modernbert-base", "cls", "Alibaba-NLP/gte-modernbert-base")
    assert "CODESEARCH_MODELS" in gte.reason
    model = load_embedder("auto", dtype="float32")
    assert model.spec.name == "gte-modernbert-base" and model.dimension == 32
    assert model.spec.cache_key != fallback.cache_key


def test_an_8192_token_input_is_embedded_whole_on_cpu(tmp_path: Path) -> None:
    """A ModernBERT-base-sized model (22 layers, 768 wide, alternating 128-token local and
    global attention) embeds one 8192-token input with sdpa on the CPU, untruncated."""
    from conftest import save_random_modernbert, write_tiny_tokenizer

    folder = tmp_path / "base-sized"
    vocab = write_tiny_tokenizer(folder, model_max_length=8192)
    config = save_random_modernbert(folder, vocab, max_position_embeddings=8192)  # ModernBERT-base's sizes
    assert (config.hidden_size, config.num_hidden_layers, config.local_attention) == (768, 22, 128)
    model = load_embedder(str(folder))
    assert model.max_tokens == 8192 and model.device == "cpu"
    text = " ".join(["value"] * 8190)  # [CLS] + 8190 words + [SEP]
    assert model.count_tokens([text]) == [8192]
    vectors = model.embed_documents([text, "parse header links"])
    assert model.truncated == 0
    assert vectors.shape == (2, 768) and np.all(np.isfinite(vectors))
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_packed_batches_need_modernbert(embedder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(UsageError, match="ModernBERT"):
        TransformerEmbedder(embedder.spec, packing="mask")
