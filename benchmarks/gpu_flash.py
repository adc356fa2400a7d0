"""The GPU path: ModernBERT, bf16, flash-attention 2, packed (unpadded) batches. Needs CUDA and
the ``flash-attn`` package (``pip install -e '.[gpu]'``); run it on an H100/H200.

1. **Agreement**: a ModernBERT-base-sized model with random weights embeds the same mixed-length
   texts on the CPU in float32 (padded batches, sdpa) and on the GPU through codesearch's engine
   (bf16 weights, flash-attention 2, packed batches with ``cu_seqlens``: no padding computed).
   Target: cosine >= 0.999 for every text.
2. **Throughput**: variable-length batches around 256 and around 4096 tokens (lengths uniform in
   [0.5x, 1.5x], capped at 8192), tokens/s through the engine's packed path, model FLOPs
   utilisation against the GPU's dense bf16 peak, printed beside the ModernBERT paper's RTX 4090
   figures for base at variable length (147.3k tokens/s short, 133.8k long).
   Target: >= 1M tokens/s at short variable lengths on an H100.

    python benchmarks/gpu_flash.py [--seconds 10] [--no-record]

Prints a table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

PAPER_4090 = {256: 147_300, 4096: 133_800}  # ModernBERT paper, base, variable length, tokens/s
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "4090": 165.2}


def build_model(folder: Path) -> Path:
    """A ModernBERT-base-sized checkpoint, random weights, with a word-level tokenizer whose
    every word is one token (so lengths are exact)."""
    if (folder / "model.safetensors").is_file():
        return folder
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import ModernBertConfig, ModernBertModel, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {tok: i for i, tok in enumerate(specials + [f"w{i}" for i in range(50_000)])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
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
        model_max_length=8192,
    )
    fast.save_pretrained(folder)
    config = ModernBertConfig(
        vocab_size=len(vocab),
        pad_token_id=vocab["[PAD]"],
        cls_token_id=vocab["[CLS]"],
        sep_token_id=vocab["[SEP]"],
        bos_token_id=vocab["[CLS]"],
        eos_token_id=vocab["[SEP]"],
    )
    torch.manual_seed(0)
    ModernBertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    return folder


def texts_around(mean: int, count: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(mean // 2, min(8190, mean * 3 // 2), size=count, endpoint=True)
    return [" ".join(f"w{int(t)}" for t in rng.integers(0, 50_000, size=int(n))) for n in lengths]


def flops_per_token(config, mean_length: float) -> float:  # type: ignore[no-untyped-def]
    """Forward FLOPs per token: 2 x non-embedding weights, plus attention scores and mixing
    (4 x context x width per layer; local layers see at most their window)."""
    d, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_layer = 2 * (d * 3 * d + d * d + d * 2 * inter + inter * d)
    attention = 0.0
    for i in range(layers):
        context = (
            mean_length if i % config.global_attn_every_n_layers == 0 else min(mean_length, config.local_attention)
        )
        attention += 4 * context * d
    return layers * per_layer + attention


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed seconds per length")
    parser.add_argument("--work", type=Path, default=Path(__file__).resolve().parent / ".work" / "gpu-base-random")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this benchmark needs one (an H100 or H200)")
    from codesearch.embedding import load_embedder

    folder = build_model(args.work)
    gpu = load_embedder(str(folder), device="cuda")
    if getattr(gpu, "packing", None) != "flash":
        raise SystemExit(f"the engine did not pick the packed flash-attention path (attention: {gpu.attention})")
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
    lines = [machine_line(), f"GPU: {name}; engine: {gpu.dtype}, {gpu.attention}, packed batches", ""]

    # 1. agreement with the CPU float32 padded path
    sample = texts_around(256, 48, seed=1) + texts_around(2048, 8, seed=2)
    cpu = load_embedder(str(folder), device="cpu", dtype="float32")
    agreement = np.sum(cpu.embed_documents(sample) * gpu.embed_documents(sample), axis=1)
    lines.append(
        f"Agreement, {len(sample)} texts of 128-3072 tokens, GPU bf16 packed vs CPU fp32 padded: "
        f"min cosine {agreement.min():.5f}, mean {agreement.mean():.5f} (target >= 0.999)"
    )
    lines += [
        "",
        "| lengths | batch tokens | tokens/s | padding computed | MFU | paper RTX 4090 | vs 4090 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    # 2. throughput at variable lengths
    for mean in (256, 4096):
        texts = texts_around(mean, 4096 if mean == 256 else 512, seed=mean)
        gpu.embed_documents(texts[:256])  # warm-up: kernels, allocator
        torch.cuda.synchronize()
        done_tokens, before, started = 0, gpu.tokens_computed, time.perf_counter()
        embedded_before = gpu.tokens_embedded
        while time.perf_counter() - started < args.seconds:
            gpu.embed_documents(texts)
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        done_tokens = gpu.tokens_embedded - embedded_before
        padding = (gpu.tokens_computed - before) - done_tokens
        rate = done_tokens / seconds
        mfu = rate * flops_per_token(gpu.model.config, mean) / (peak * 1e12) if peak else float("nan")
        lines.append(
            f"| ~{mean} (0.5x-1.5x) | {gpu.batch_tokens:,} | {rate:,.0f} | {padding} | {mfu:.1%} | "
            f"{PAPER_4090[mean]:,} | {rate / PAPER_4090[mean]:.1f}x |"
        )
        print(lines[-1], flush=True)
    print("\n".join(lines))
    if not args.no_record:
        append_results(
            "GPU: ModernBERT-base-sized, bf16, flash-attention 2, packed", "python benchmarks/gpu_flash.py", lines
        )


if __name__ == "__main__":
    main()
