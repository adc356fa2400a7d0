"""The transformer embedder: texts → L2-normalised float32 vectors with torch/transformers.

Owns loading a checkpoint (safetensors only, never ``trust_remote_code``), choosing the device
once (CUDA, then MPS, then CPU) and the attention implementation, and the batching technique:
tokenize once, sort by length, pack batches by a padded-token budget, run under
``torch.inference_mode``, pool (mean or CLS), normalise, and restore the caller's order.
Inputs longer than the model's maximum are truncated, counted and logged, never silently.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from codesearch.embedding.models import ModelSpec, hub_offline
from codesearch.errors import UnknownModelError

log = logging.getLogger(__name__)

hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter the CLI and the LSP's stderr
hf_logging.set_verbosity_error()

DEFAULT_BATCH_TOKENS = 4096  # padded tokens per forward pass; smaller batches stay in cache on CPU


def pick_device(requested: str | None = None) -> str:
    if requested:
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AVX512-BF16 or AMX): autocast then pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(device: str, requested: str | None) -> torch.dtype:
    if requested in ("float32", "fp32"):
        return torch.float32
    if requested in ("bfloat16", "bf16"):
        return torch.bfloat16
    if requested not in (None, "auto"):
        raise UnknownModelError(f"unknown dtype {requested!r}: use auto, float32 or bfloat16")
    if device.startswith("cuda") or (device == "cpu" and cpu_has_bf16()):
        return torch.bfloat16
    return torch.float32


def _attention_implementation(device: str) -> str:
    if device.startswith("cuda"):
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            return "sdpa"
        return "flash_attention_2"
    return "sdpa"


class TransformerEmbedder:
    """A Hugging Face encoder used as a sentence embedder."""

    def __init__(
        self,
        spec: ModelSpec,
        device: str | None = None,
        dtype: str | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ) -> None:
        self.spec = spec
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.batch_tokens = batch_tokens
        self.truncated = 0
        if self.device == "cpu":
            torch.set_num_threads(max(1, os.cpu_count() or 1))
        local_only = spec.is_local or hub_offline()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                spec.source, revision=spec.revision, local_files_only=local_only, trust_remote_code=False
            )
            self.model = self._load_model(spec, local_only)
        except (OSError, ValueError) as exc:
            hint = " (offline: HF_HUB_OFFLINE is set)" if hub_offline() else ""
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnknownModelError(f"cannot load model {spec.name!r} from {spec.source}{hint}: {first}") from exc
        self.model.eval().to(self.device)
        self.dimension = int(self.model.config.hidden_size)
        self.max_tokens = min(spec.max_tokens, int(getattr(self.tokenizer, "model_max_length", spec.max_tokens)))
        log.info(
            "embedding model %s on %s, %s autocast (dim %d, max %d tokens)",
            spec.model_id,
            self.device,
            str(self.dtype).removeprefix("torch."),
            self.dimension,
            self.max_tokens,
        )

    def _load_model(self, spec: ModelSpec, local_only: bool) -> Any:
        """Load with the fastest attention the device has; architectures without it get eager."""
        options = dict(
            revision=spec.revision, local_files_only=local_only, trust_remote_code=False, use_safetensors=True
        )
        wanted = _attention_implementation(self.device)
        try:
            return AutoModel.from_pretrained(spec.source, attn_implementation=wanted, **options)
        except ValueError as exc:
            if "attention implementation" not in str(exc) and "attn_implementation" not in str(exc):
                raise
            log.info("%s does not support %s attention; using eager attention", spec.name, wanted)
            return AutoModel.from_pretrained(spec.source, attn_implementation="eager", **options)

    # -- public API ------------------------------------------------------------------------
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.spec.document_prefix + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.spec.query_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def count_tokens(self, texts: Sequence[str], special: bool = True) -> list[int]:
        """Exact token counts (one tokenizer call for the whole list)."""
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=special, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    # -- batching --------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        autocast = torch.autocast(
            device_type=self.device.split(":")[0], dtype=self.dtype, enabled=self.dtype != torch.float32
        )
        with torch.inference_mode(), autocast:
            for batch in self._batches(order, ids):
                vectors = self._forward([ids[i] for i in batch])
                out[batch] = vectors
        return out

    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        enc = self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        result: list[list[int]] = []
        truncated = 0
        for row in enc["input_ids"]:
            if len(row) > self.max_tokens:
                row = row[: self.max_tokens - 1] + row[-1:]  # keep the closing special token
                truncated += 1
            result.append(row)
        if truncated:
            self.truncated += truncated
            log.warning(
                "%d input(s) longer than %d tokens were truncated (total so far: %d)",
                truncated,
                self.max_tokens,
                self.truncated,
            )
        return result

    def _batches(self, order: list[int], ids: list[list[int]]) -> list[list[int]]:
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:  # longest first: the first item of a batch fixes its padded width
            width = len(ids[current[0]]) if current else len(ids[i])
            if current and (len(current) + 1) * width > self.batch_tokens:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _forward(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, row in enumerate(rows):
            input_ids[j, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[j, : len(row)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
        return pooled.cpu().numpy().astype(np.float32, copy=False)
