"""Shared fixtures: the real offline model (loaded once), a tiny random ModernBERT checkpoint
built in-process, sample source trees, and a private CODESEARCH_HOME for every test."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
os.environ["HF_HUB_OFFLINE"] = "1"  # the tests prove everything works without the hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("LANCEDB_LOG", "error")
# ``--model auto`` looks for ModernBERT weights on the machine: the tests see none unless they put some there
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="codesearch-test-hf-")
os.environ.pop("CODESEARCH_MODELS", None)
# the installed command runs each search in its own process here; tests/test_query_service.py
# turns the per-user query service on, in a runtime folder of its own, and stops it
os.environ["CODESEARCH_SERVICE"] = "off"

from samples import SAMPLES

atexit.register(shutil.rmtree, os.environ["HF_HUB_CACHE"], True)

EXTENSIONS = {
    "python": ".py",
    "javascript": ".js",
    "typescript": ".ts",
    "tsx": ".tsx",
    "go": ".go",
    "java": ".java",
    "rust": ".rs",
    "c": ".c",
    "cpp": ".cpp",
    "csharp": ".cs",
    "ruby": ".rb",
    "php": ".php",
}


@pytest.fixture(autouse=True)
def _private_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESEARCH_HOME", str(tmp_path_factory.mktemp("cshome")))


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    from codesearch.embedding import load_embedder

    return load_embedder()


def write_samples(root: Path) -> dict[str, str]:
    """Write every language sample under ``root``; returns rel path → language."""
    written = {}
    for language, (rel, source) in SAMPLES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
        written[rel] = language
    (root / "README.md").write_text("# Demo\n\nA demo project for codesearch tests.\n", encoding="utf-8")
    return written


@pytest.fixture()
def sample_tree(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    write_samples(root)
    return root


def write_tiny_tokenizer(folder: Path, model_max_length: int = 512) -> dict[str, int]:
    """A small lower-casing WordPiece tokenizer saved into ``folder``; returns its vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [
        "def",
        "class",
        "return",
        "parse",
        "header",
        "links",
        "value",
        "self",
        "import",
        "function",
        "the",
        "a",
        "of",
        "to",
        "(",
        ")",
        ":",
        ",",
        ".",
        "=",
        "{",
        "}",
        "[",
        "]",
        "#",
        "/",
        "_",
    ]
    tokens = specials + words + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    tokens += list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}  # ids 0..n-1, each token once
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=model_max_length,
    )
    fast.save_pretrained(folder)
    return vocab


def save_random_modernbert(folder: Path, vocab: dict[str, int], **sizes: int) -> Any:
    """A ModernBERT with random weights saved as safetensors (special ids from ``vocab``)."""
    from transformers import ModernBertConfig, ModernBertModel

    config = ModernBertConfig(
        vocab_size=len(vocab),
        pad_token_id=vocab["[PAD]"],
        bos_token_id=vocab["[CLS]"],
        eos_token_id=vocab["[SEP]"],
        cls_token_id=vocab["[CLS]"],
        sep_token_id=vocab["[SEP]"],
        **sizes,
    )
    ModernBertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    return config


@pytest.fixture(scope="session")
def tiny_modernbert(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A random 2-layer ModernBERT with a small WordPiece vocabulary, saved as safetensors."""

    folder = tmp_path_factory.mktemp("tiny-modernbert")
    vocab = write_tiny_tokenizer(folder)
    save_random_modernbert(
        folder,
        vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=512,
        global_attn_every_n_layers=2,
        local_attention=16,
    )
    yield folder


def chunk_row(path: str, i: int, vector: Any, embedded: bool = True, **fields: Any) -> dict[str, Any]:
    """A chunk table row for the store's tests: line ``i + 1`` of ``path``, a function ``s{i}``;
    ``fields`` replace any column."""
    row: dict[str, Any] = {"id": f"{path}:{i}", "vkey": f"{path}:{i}", "path": path, "start_line": i + 1}
    row.update(end_line=i + 1, symbol=f"s{i}", kind="function", language="python", text="x", terms="x")
    row.update(file_hash="h", embedded=embedded, vector=vector)
    return {**row, **fields}
