"""Low-rank adapters (LoRA) for the embedding model: training one, saving it, merging it.

Owns the adapter file (safetensors, float16: for each adapted linear layer ``<name>.lora_A`` (rank x in)
and ``<name>.lora_B`` (out x rank), the merge factor ``scale`` and the base model's id in the
metadata), attaching trainable low-rank layers to a transformers encoder, the contrastive
training loop (in-batch negatives, symmetric InfoNCE, pooled as the embedder pools), and
merging: ``W += scale * B @ A``, so an adapted model runs at exactly the base model's speed.

The default model is all-MiniLM-L6-v2 with the code adapter shipped in ``adapters/`` (made by
``training/train_adapter.py``; its provenance is in ``adapters/README.md``).
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from codesearch.errors import UnknownModelError

log = logging.getLogger(__name__)

# the linear layers of a BERT-style encoder layer that get a low-rank update
TARGETS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


class LowRankLinear(nn.Module):
    """``base(x) + scale * x A^T B^T``: the base layer frozen, A and B trained (B starts at zero)."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + (x @ self.lora_A.t() @ self.lora_B.t()) * self.scale


def attach(model: nn.Module, rank: int = 16, alpha: float = 32.0, targets: Sequence[str] = TARGETS) -> list[str]:
    """Freeze ``model`` and wrap each targeted linear layer of its encoder layers; returns their names."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.endswith(tuple(targets)) and ".layer." in f".{name}"
    ]
    if not names:
        raise UnknownModelError(f"no layer of {type(model).__name__} matches the adapter targets {list(targets)}")
    for name in names:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, LowRankLinear(getattr(parent, leaf), rank, alpha))
    return names


def save_adapter(
    model: nn.Module, path: Path, base_id: str, weight: float = 1.0, about: dict[str, Any] | None = None
) -> int:
    """Write the low-rank layers of ``model`` to ``path``; ``weight`` scales the whole update
    (1: as trained; below 1: part of the way from the base model). Returns the parameter count."""
    tensors: dict[str, torch.Tensor] = {}
    scale = None
    for name, module in model.named_modules():
        if isinstance(module, LowRankLinear):
            tensors[f"{name}.lora_A"] = module.lora_A.detach().half().contiguous().cpu()
            tensors[f"{name}.lora_B"] = module.lora_B.detach().half().contiguous().cpu()
            scale = module.scale * weight
    if scale is None:
        raise ValueError("the model has no low-rank layers to save")
    metadata = {"base": base_id, "scale": repr(scale), "about": json.dumps(about or {}, sort_keys=True)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return sum(t.numel() for t in tensors.values())


def merge_adapter(model: nn.Module, path: str | Path) -> int:
    """Add the adapter at ``path`` into the weights of ``model`` (``W += scale * B @ A``).
    An unreadable file, or one made for another architecture, is an :class:`UnknownModelError`."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            scale = float((handle.metadata() or {})["scale"])
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (OSError, KeyError, ValueError, SafetensorError) as exc:
        raise UnknownModelError(f"cannot read the model adapter {path}: {exc}") from exc
    layers = sorted({key.rsplit(".", 1)[0] for key in tensors})
    with torch.no_grad():
        for name in layers:
            try:
                linear = model.get_submodule(name)
                delta = tensors[f"{name}.lora_B"].float() @ tensors[f"{name}.lora_A"].float()
            except (AttributeError, KeyError, RuntimeError) as exc:
                raise UnknownModelError(f"the adapter {path} does not fit this model ({name}): {exc}") from exc
            weight = getattr(linear, "weight", None)
            if not isinstance(weight, torch.Tensor) or weight.shape != delta.shape:
                raise UnknownModelError(f"the adapter {path} does not fit this model: {name} has another shape")
            weight += (delta * scale).to(weight.dtype)
    return len(layers)


def adapter_base(path: str | Path) -> str:
    """The base model id an adapter file was trained on ('' when it does not say)."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return str((handle.metadata() or {}).get("base", ""))
    except (OSError, SafetensorError):
        return ""


def train_adapter(
    model: nn.Module,
    tokenizer: Any,
    pairs: Sequence[tuple[str, str]],
    *,
    batch_size: int = 32,
    learning_rate: float = 2e-4,
    query_tokens: int = 64,
    document_tokens: int = 192,
    temperature_scale: float = 20.0,
    pooling: str = "mean",
    seed: int = 0,
) -> list[float]:
    """Train the low-rank layers of ``model`` (see :func:`attach`) on (query, document) pairs,
    one pass in order: each batch's other documents are its negatives. Returns the losses."""
    torch.manual_seed(seed)
    random.seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    steps = len(pairs) // batch_size
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1.0 - s / max(1, steps))
    )
    device = next(model.parameters()).device.type
    from codesearch.embedding.transformer import cpu_has_bf16

    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda" or cpu_has_bf16())

    def encode(texts: list[str], limit: int) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt").to(device)
        hidden = model(**batch).last_hidden_state
        if pooling == "cls":
            return F.normalize(hidden[:, 0].float(), dim=-1)
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return F.normalize(((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)).float(), dim=-1)

    model.train()
    losses: list[float] = []
    started = time.monotonic()
    for step in range(steps):
        batch = pairs[step * batch_size : (step + 1) * batch_size]
        with autocast:
            queries = encode([q for q, _ in batch], query_tokens)
            documents = encode([d for _, d in batch], document_tokens)
        scores = queries @ documents.t() * temperature_scale
        labels = torch.arange(len(batch), device=scores.device)
        loss = (F.cross_entropy(scores, labels) + F.cross_entropy(scores.t(), labels)) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        if step % 20 == 0 or step == steps - 1:
            log.info("step %d/%d loss %.4f (%.0f s)", step + 1, steps, losses[-1], time.monotonic() - started)
    model.eval()
    return losses


def load_trainable(source: str, rank: int, alpha: float) -> tuple[nn.Module, Any]:
    """A local checkpoint folder's encoder with low-rank layers attached, and its tokenizer."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=True)
    model = AutoModel.from_pretrained(source, local_files_only=True, use_safetensors=True)
    attach(model, rank=rank, alpha=alpha)
    return model, tokenizer


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    head, _, leaf = name.rpartition(".")
    return (model.get_submodule(head) if head else model), leaf
