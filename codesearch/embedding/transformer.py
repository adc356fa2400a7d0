"""The transformer embedder: texts → L2-normalised float32 vectors with torch/transformers.

Owns loading a checkpoint (safetensors only, never ``trust_remote_code``; a preset's low-rank
adapter merged into its weights), choosing the device
once (CUDA, then MPS, then CPU), the precision and the attention implementation, and the
batching technique: tokenize once, sort by length, pack batches by a token budget, run under
``torch.inference_mode``, pool (mean or CLS), normalise, and restore the caller's order.

Two ways to run a batch:

- **padded** (every device): rows of one batch padded to the longest; sorting by length keeps
  the padding small, and the budget counts padded tokens.
- **packed** (ModernBERT with flash-attention 2 on CUDA): the batch's sequences are concatenated
  into one row with restarting positions and ``cu_seqlens``; no padding token is computed.
  The same packing with block-diagonal masks (``packing="mask"``) runs anywhere and is how
  the tests check the packed path's positions and pooling against the padded one on CPU.

Inputs longer than the model's maximum are truncated, counted and logged, never silently.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

# oneDNN (torch's CPU kernels, bf16 included) keeps a compiled kernel per input shape, 1024 by
# default: a long-lived process embedding texts of every length (a watcher, the language server)
# grew by hundreds of MiB that way (1200 batches of random shapes: +880 MiB at 1024, +450 at 64,
# the same speed on a dense pass of 3,000 real chunks). Read when the first kernel is made; a
# value the user set stands.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")

import torch
from safetensors import SafetensorError
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging as hf_logging

from codesearch.embedding.models import ModelSpec, hub_offline
from codesearch.errors import UnknownModelError, UsageError
from codesearch.heap import roomy_heap

log = logging.getLogger(__name__)

hf_logging.disable_progress_bar()  # "Loading weights" bars would clutter the CLI and the LSP's stderr
hf_logging.set_verbosity_error()

# tokens per forward pass: padded tokens on CPU (small batches stay in cache), real tokens on GPU
DEFAULT_BATCH_TOKENS = {"cpu": 4096, "mps": 16384, "cuda": 65536}
DTYPES = ("auto", "float32", "bfloat16", "int8")


def pick_device(requested: str | None = None) -> str:
    """CUDA, then MPS, then CPU; a requested device must exist."""
    if requested and requested != "auto":
        kind = requested.split(":")[0]
        if kind == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {requested}: this torch build sees no CUDA GPU")
        if kind == "mps" and not _mps_available():
            raise UsageError(f"--device {requested}: MPS is not available here")
        if kind not in ("cpu", "cuda", "mps"):
            raise UsageError(f"unknown device {requested!r}: use cpu, cuda, cuda:N or mps")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    return "mps" if _mps_available() else "cpu"


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def cpu_has_bf16() -> bool:
    """Native bf16 matmul on this CPU (AVX512-BF16 or AMX): autocast then pays off."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(device: str, requested: str | None) -> str:
    """``float32``, ``bfloat16`` or ``int8`` (dynamic quantisation of the linear layers, CPU only).

    Auto: bf16 on CUDA, and on a CPU with native bf16; float32 elsewhere. Measured on
    CodeSearchNet (benchmarks/RESULTS.md): bf16 is 1.8x float32 at the same nDCG@10 and MRR
    (cosine 0.99998); int8 is 2.0x but loses 0.031 nDCG@10 (cosine 0.92), so it is opt-in."""
    aliases = {"fp32": "float32", "bf16": "bfloat16", "qint8": "int8", None: "auto"}
    dtype = aliases.get(requested, requested)
    if dtype not in DTYPES:
        raise UsageError(f"unknown dtype {requested!r}: use {', '.join(DTYPES)}")
    if dtype == "int8" and device != "cpu":
        raise UsageError("int8 dynamic quantisation runs on the CPU only: add --device cpu or pick another dtype")
    if dtype != "auto":
        return str(dtype)
    if device.startswith("cuda") or (device == "cpu" and cpu_has_bf16()):
        return "bfloat16"
    return "float32"


def flash_attention_available(device: str) -> bool:
    if not device.startswith("cuda"):
        return False
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return False
    return True


def cpu_threads() -> int:
    """The cores this process may use: ``OMP_NUM_THREADS`` when set (Ray sets it to a worker's
    CPUs), else the CPU affinity."""
    with contextlib.suppress(KeyError, ValueError):
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


@contextlib.contextmanager
def _load_errors(spec: ModelSpec) -> Iterator[None]:
    """A checkpoint or tokenizer that cannot be loaded (missing, unreachable, damaged: a
    truncated or overwritten safetensors file) → :class:`UnknownModelError`, one line."""
    try:
        yield
    except (OSError, ValueError, SafetensorError) as exc:
        hint = " (offline: HF_HUB_OFFLINE is set)" if hub_offline() else ""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnknownModelError(f"cannot load model {spec.name!r} from {spec.source}{hint}: {first}") from exc


class TokenCounter:
    """A model's tokenizer without its weights: exact token counts and the input limit. Sizes
    chunks where the model is not loaded (a cluster's chunking tasks) exactly as the embedder."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        with _load_errors(spec):
            self.tokenizer = AutoTokenizer.from_pretrained(
                spec.source,
                revision=spec.revision_for_hub,
                local_files_only=spec.is_local or hub_offline(),
                trust_remote_code=False,
            )
        self.max_tokens = min(spec.max_tokens, int(getattr(self.tokenizer, "model_max_length", spec.max_tokens)))

    def count_tokens(self, texts: Sequence[str], special: bool = True) -> list[int]:
        """Exact token counts (one tokenizer call for the whole list)."""
        if not texts:
            return []
        enc = self.tokenizer(list(texts), add_special_tokens=special, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]


class TransformerEmbedder:
    """A Hugging Face encoder used as a sentence embedder."""

    def __init__(
        self,
        spec: ModelSpec,
        device: str | None = None,
        dtype: str | None = None,
        batch_tokens: int | None = None,
        packing: str | None = None,
    ) -> None:
        self.spec = spec
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.batch_tokens = batch_tokens or DEFAULT_BATCH_TOKENS[self.device.split(":")[0]]
        self.truncated = 0
        self.tokens_embedded = 0  # real (non-padding) tokens run through the model
        self.tokens_computed = 0  # tokens the model computed, padding included
        if self.device == "cpu":
            torch.set_num_threads(cpu_threads())
        local_only = spec.is_local or hub_offline()
        with _load_errors(spec):
            self.tokens = TokenCounter(spec)
            self.tokenizer = self.tokens.tokenizer
            self.model = self._load_model(spec, local_only)
        if spec.adapter:
            from codesearch.embedding.adapter import merge_adapter

            layers = merge_adapter(self.model, spec.adapter)
            log.debug("merged the adapter %s into %d layers", spec.adapter, layers)
        self.model.eval()
        if self.dtype == "int8":
            with warnings.catch_warnings():  # torch deprecates the qint8 tensor API it still runs on
                warnings.simplefilter("ignore", UserWarning)
                self.model = torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model.to(self.device)
        is_modernbert = self.model.config.model_type == "modernbert"
        if packing and not is_modernbert:
            raise UsageError(f"packed batches need a ModernBERT model, not {self.model.config.model_type}")
        # other architectures under flash-attention 2 run padded batches (it unpads inside each layer)
        self.packing = packing or ("flash" if self.attention == "flash_attention_2" and is_modernbert else None)
        self.dimension = int(self.model.config.hidden_size)
        self.max_tokens = self.tokens.max_tokens
        log.info(
            "embedding model %s (%s) on %s, %s, %s attention%s, dim %d, max %d tokens",
            spec.name,
            spec.reason or spec.model_id,
            self.device,
            self.dtype,
            self.attention,
            ", packed (unpadded) batches" if self.packing else "",
            self.dimension,
            self.max_tokens,
        )

    def _load_model(self, spec: ModelSpec, local_only: bool) -> Any:
        """Load with the fastest attention the device has; architectures without it get eager."""
        options: dict[str, Any] = dict(
            revision=spec.revision_for_hub, local_files_only=local_only, trust_remote_code=False, use_safetensors=True
        )
        if self.device.startswith("cuda") and self.dtype == "bfloat16":
            options["dtype"] = torch.bfloat16  # weights in bf16: flash-attention needs half precision
        half = self.dtype == "bfloat16"  # flash-attention runs in half precision only
        self.attention = "flash_attention_2" if half and flash_attention_available(self.device) else "sdpa"
        try:
            return AutoModel.from_pretrained(spec.source, attn_implementation=self.attention, **options)
        except (ValueError, ImportError) as exc:
            if "attention" not in str(exc) and "attn_implementation" not in str(exc) and "flash" not in str(exc):
                raise
            log.info("%s does not support %s attention; using eager attention", spec.name, self.attention)
            self.attention = "eager"
            return AutoModel.from_pretrained(spec.source, attn_implementation="eager", **options)

    # -- public API ------------------------------------------------------------------------
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.spec.document_prefix + t for t in texts])

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.spec.query_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def count_tokens(self, texts: Sequence[str], special: bool = True) -> list[int]:
        return self.tokens.count_tokens(texts, special)

    # -- batching --------------------------------------------------------------------------
    def _embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenize(texts)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]), reverse=True)
        autocast = torch.autocast(
            device_type=self.device.split(":")[0],
            dtype=torch.bfloat16,
            enabled=self.dtype == "bfloat16" and not self.device.startswith("cuda"),
        )
        forward = self._forward_packed if self.packing else self._forward_padded
        with torch.inference_mode(), autocast, roomy_heap():  # activations reuse heap pages (codesearch.heap)
            for batch in token_budget_batches(order, [len(r) for r in ids], self.batch_tokens, padded=not self.packing):
                out[batch] = forward([ids[i] for i in batch])
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

    def _forward_padded(self, rows: list[list[int]]) -> np.ndarray:
        width = max(len(r) for r in rows)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, row in enumerate(rows):
            input_ids[j, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[j, : len(row)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        self.tokens_embedded += sum(len(r) for r in rows)
        self.tokens_computed += width * len(rows)
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        if self.spec.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return _normalised(pooled)

    def _forward_packed(self, rows: list[list[int]]) -> np.ndarray:
        """One row holding every sequence: positions restart at each, attention stays inside it."""
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.int32)
        starts = torch.zeros(len(rows) + 1, dtype=torch.int32)
        starts[1:] = torch.cumsum(lengths, 0)
        total = int(starts[-1])
        flat = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=total)
        input_ids = torch.from_numpy(flat).unsqueeze(0)
        segment = torch.repeat_interleave(torch.arange(len(rows)), lengths.long())
        position_ids = (torch.arange(total) - starts[:-1].long()[segment]).unsqueeze(0)
        kwargs: dict[str, Any]
        if self.packing == "flash":
            cu_seqlens = starts.to(self.device)
            longest = int(lengths.max())
            kwargs = dict(
                attention_mask={"full_attention": None, "sliding_attention": None},
                cu_seq_lens_q=cu_seqlens,
                cu_seq_lens_k=cu_seqlens,
                max_length_q=longest,
                max_length_k=longest,
            )
        else:
            kwargs = dict(attention_mask=self._packed_masks(segment, position_ids[0]))
        self.tokens_embedded += total
        self.tokens_computed += total
        hidden = self.model(
            input_ids=input_ids.to(self.device), position_ids=position_ids.to(self.device), **kwargs
        ).last_hidden_state[0]
        segment = segment.to(self.device)
        if self.spec.pooling == "cls":
            pooled = hidden[starts[:-1].long().to(self.device)]
        else:
            sums = torch.zeros((len(rows), hidden.shape[-1]), dtype=torch.float32, device=self.device)
            sums.index_add_(0, segment, hidden.float())
            pooled = sums / lengths.to(self.device, torch.float32).unsqueeze(-1)
        return _normalised(pooled)

    def _packed_masks(self, segment: torch.Tensor, positions: torch.Tensor) -> dict[str, torch.Tensor]:
        """Block-diagonal boolean masks (global layers) and their banded form (local layers)."""
        same = segment[:, None] == segment[None, :]
        window = int(getattr(self.model.config, "sliding_window", 0) or 0)
        near = (positions[:, None] - positions[None, :]).abs() <= window
        return {
            "full_attention": same[None, None].to(self.device),
            "sliding_attention": (same & near)[None, None].to(self.device),
        }


def token_budget_batches(order: list[int], lengths: list[int], budget: int, padded: bool = True) -> list[list[int]]:
    """Cut ``order`` (longest first) into batches of at most ``budget`` tokens: padded tokens
    (rows x the first row's length) or, for packed batches, the sum of the real lengths.
    A single input longer than the budget gets a batch of its own."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in order:
        cost = lengths[current[0]] if padded and current else lengths[i]
        if current and used + cost > budget:
            batches.append(current)
            current, used = [], 0
            cost = lengths[i]
        current.append(i)
        used += cost
    if current:
        batches.append(current)
    return batches


def _normalised(pooled: torch.Tensor) -> np.ndarray:
    pooled = torch.nn.functional.normalize(pooled.float(), p=2, dim=-1)
    return pooled.cpu().numpy().astype(np.float32, copy=False)
