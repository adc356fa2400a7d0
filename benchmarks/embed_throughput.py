"""Embedding throughput on real, mixed-length code chunks: the naive loop against the engine.

Chunks come from a real repository (the Flask 3.1.1 sdist, as in index_bench.py, or ``--tree``),
cut by codesearch's chunker for each model's budget, so their lengths are what indexing meets.
Measured in one run, per model:

- **naive**: file order, a fixed batch of 32, padded to the longest, float32, ``no_grad``: the
  loop most people write around ``AutoModel``;
- **engine float32**: codesearch's batching alone (length-sorted, token-budget batches);
- **engine**: codesearch's defaults on this machine (batching plus the precision it picks).

Each row also gives the model FLOPs it did per second (2 x the encoder's weights per real token,
plus attention: 4 x layers x width x length² per chunk; padding not counted) and their share of
this CPU's own matmul peak in the row's precision (the best of a 2048² matmul, float32 and bf16,
on the threads the engine uses): the headroom left to a faster engine is one minus that share.

Models: the offline default (all-MiniLM-L6-v2) and a ModernBERT-base-sized model with random
weights (22 layers, 768 wide; speed does not depend on the weights) using the ModernBERT
tokenizer from ``../shared/models/modernbert-tokenizer``. ``--rss`` also indexes synthetic
repositories of ~10k and ~100k unique chunks with ``codesearch index`` (a small random
ModernBERT, so the run takes minutes) and reports each run's peak RSS: memory must not grow
with the repository.

    python benchmarks/embed_throughput.py [--tree DIR] [--minilm-chunks 1200] [--base-tokens 30000] [--rss]
        [--minilm-only]

Prints a table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line
from index_bench import SDIST, WORK, fetch_sdist, run_with_rss

from codesearch.chunking import chunk_file
from codesearch.embedding import ModelSpec, load_embedder, resolve_model
from codesearch.embedding.transformer import cpu_has_bf16
from codesearch.files import SkipStats, load, walk

TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "models" / "modernbert-tokenizer"
NAIVE_BATCH = 32


def chunk_texts(tree: Path, embedder) -> list[str]:  # type: ignore[no-untyped-def]
    """Every chunk's embedding text, in file order, cut for this embedder's budget."""
    texts: list[str] = []
    skips = SkipStats()
    budget = min(embedder.spec.chunk_tokens, embedder.max_tokens)
    for source in walk(tree, stats=skips):
        loaded = load(source, skips)
        if loaded is None:
            continue
        chunks = chunk_file(
            source.rel,
            loaded.text,
            source.language,
            budget,
            count_lines=lambda lines: embedder.count_tokens(lines, special=False),
        )
        texts.extend(chunk.embedding_text() for chunk in chunks)
    return texts


def sample_in_order(lengths: list[int], max_chunks: int | None = None, max_tokens: int | None = None) -> list[int]:
    """A seeded random subset (at most ``max_chunks`` chunks / about ``max_tokens`` tokens) in file order."""
    picked = list(range(len(lengths)))
    random.Random(0).shuffle(picked)
    chosen: list[int] = []
    total = 0
    for i in picked:
        if (max_tokens is not None and total >= max_tokens) or (max_chunks is not None and len(chosen) >= max_chunks):
            break
        chosen.append(i)
        total += lengths[i]
    return sorted(chosen)


def naive(embedder, texts: list[str]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """File order, batches of 32 padded to the longest, float32. Returns seconds, padded tokens."""
    tokenizer, model, spec = embedder.tokenizer, embedder.model, embedder.spec
    padded = 0
    started = time.perf_counter()
    with torch.no_grad():
        for start in range(0, len(texts), NAIVE_BATCH):
            batch = [spec.document_prefix + t for t in texts[start : start + NAIVE_BATCH]]
            enc = tokenizer(batch, padding=True, truncation=True, max_length=embedder.max_tokens, return_tensors="pt")
            padded += int(enc["input_ids"].numel())
            hidden = model(**enc).last_hidden_state
            if spec.pooling == "cls":
                pooled = hidden[:, 0]
            else:
                mask = enc["attention_mask"].unsqueeze(-1).float()
                pooled = (hidden * mask).sum(1) / mask.sum(1)
            torch.nn.functional.normalize(pooled, dim=-1)
    return time.perf_counter() - started, padded


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of this CPU for a big square matmul in ``dtype`` (the best of ``repeats``), on the
    threads torch uses now (the engine's)."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    with torch.inference_mode():
        a @ b  # warm-up
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def model_flops(embedder, lengths: list[int]) -> float:  # type: ignore[no-untyped-def]
    """Forward FLOPs of the real tokens: 2 x the encoder's weights (embeddings excluded) per
    token, and attention scores and mixing (4 x layers x width x length²) per chunk."""
    config = embedder.model.config
    weights = sum(p.numel() for name, p in embedder.model.named_parameters() if "embeddings" not in name)
    return 2.0 * weights * sum(lengths) + 4.0 * config.num_hidden_layers * config.hidden_size * sum(
        n * n for n in lengths
    )


def measure(label: str, spec: ModelSpec, texts: list[str], lengths: list[int]) -> list[dict[str, object]]:
    tokens = sum(lengths)
    rows: list[dict[str, object]] = []
    fp32 = load_embedder(spec, dtype="float32")
    flops = model_flops(fp32, lengths)
    fp32.embed_documents(texts[:8])  # warm-up
    seconds, padded = naive(fp32, texts)
    rows.append(dict(model=label, method="naive (file order, batch 32, fp32)", seconds=seconds, computed=padded))
    reference = fp32.embed_documents(texts[:64])
    for method, engine in (("engine, float32", fp32), ("engine (defaults)", load_embedder(spec))):
        engine.embed_documents(texts[:8])
        before = engine.tokens_computed  # type: ignore[attr-defined]
        started = time.perf_counter()
        vectors = engine.embed_documents(texts)
        seconds = time.perf_counter() - started
        computed = engine.tokens_computed - before  # type: ignore[attr-defined]
        agreement = float(np.min(np.sum(vectors[:64] * reference, axis=1)))
        rows.append(
            dict(
                model=label,
                method=f"{method}: {engine.dtype}",
                seconds=seconds,
                computed=computed,
                cosine=agreement,
            )
        )
    for row in rows:
        row.update(chunks=len(texts), tokens=tokens, flops=flops)
    return rows


def random_modernbert(folder: Path, **sizes: int) -> Path:
    """A ModernBERT checkpoint with random weights and the ModernBERT tokenizer (speed and
    memory do not depend on the weights). No sizes: ModernBERT-base (22 layers, 768 wide)."""
    if (folder / "model.safetensors").is_file():
        return folder
    if not (TOKENIZER / "tokenizer.json").is_file():
        raise SystemExit(f"the ModernBERT tokenizer is not at {TOKENIZER} (see its PROVENANCE.md)")
    from transformers import AutoTokenizer, ModernBertConfig, ModernBertModel

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.cls_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.cls_token_id,
        eos_token_id=tokenizer.sep_token_id,
        **sizes,
    )
    torch.manual_seed(0)
    ModernBertModel(config).eval().save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def small_modernbert() -> Path:
    """4 layers, 128 wide: enough to run 100k chunks through the real pipeline in minutes."""
    sizes = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4)
    return random_modernbert(WORK / "modernbert-small-random", **sizes)


WORDS = ["parse", "read", "write", "load", "save", "cache", "user", "order", "item", "price", "total"]
WORDS += ["header", "link", "token", "value", "config"]


def synthetic_repo(root: Path, functions: int, per_file: int = 50) -> Path:
    """``functions`` unique Python functions of ~10 lines, ``per_file`` to a file."""
    if (root / "DONE").is_file():
        return root
    rng = random.Random(functions)
    for f in range(functions // per_file):
        lines = []
        for i in range(per_file):
            a, b, c = rng.sample(WORDS, 3)
            n = f * per_file + i
            lines.append(f"def {a}_{b}_{n}({c}, limit={n % 97}):")
            lines.append(f'    """{a.title()} the {b} of a {c} ({n})."""')
            for j in range(rng.randint(3, 9)):
                x, y = rng.sample(WORDS, 2)
                lines.append(f"    {x}_{j} = {c}.get('{y}_{n}', {j}) + len({y!r}) * limit")
            lines.append(f"    return {c}\n")
        path = root / f"pkg{f // 100}" / f"module_{f}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines), encoding="utf-8")
    (root / "DONE").write_text("")
    return root


def rss_runs(model: Path) -> list[str]:
    lines = [
        "| repository | files | chunks | embedded | seconds | chunks/s | peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    exe = Path(sys.executable).parent / "codesearch"
    for functions in (10_000, 100_000):
        repo = synthetic_repo(WORK / f"synthetic-{functions}", functions)
        home = WORK / f"rss-home-{functions}"
        env = {**os.environ, "CODESEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
        cmd = [str(exe), "index", str(repo), "--rebuild", "--json", "--model", str(model)]
        seconds, peak, out = run_with_rss(cmd, env)
        stats = json.loads(out)
        lines.append(
            f"| synthetic, {functions:,} functions | {stats['files']:,} | {stats['chunks']:,} | "
            f"{stats['chunks_embedded']:,} | {seconds:.0f} | {stats['chunks'] / seconds:.0f} | {peak / 2**20:.0f} MiB |"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help=f"real repository to chunk (default: the {SDIST} sdist)")
    parser.add_argument("--minilm-chunks", type=int, default=1200, help="chunks for the offline default")
    parser.add_argument("--base-tokens", type=int, default=30000, help="tokens for the ModernBERT-base-sized model")
    parser.add_argument("--rss", action="store_true", help="also index 10k and 100k synthetic chunks, peak RSS")
    parser.add_argument("--rss-only", action="store_true", help="only the peak RSS runs")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    parser.add_argument("--minilm-only", action="store_true", help="only the offline default model")
    args = parser.parse_args()
    if args.rss_only:
        body = [machine_line(), "", *rss_runs(small_modernbert())]
        if not args.no_record:
            append_results(
                "Peak RSS of `codesearch index` at 10k and 100k chunks",
                "python benchmarks/embed_throughput.py --rss-only",
                body,
            )
        return
    tree = args.tree or fetch_sdist(SDIST)
    rows: list[dict[str, object]] = []

    minilm = load_embedder(resolve_model("all-minilm-l6-v2"), dtype="float32")
    texts = chunk_texts(tree, minilm)
    lengths = minilm.count_tokens(texts)
    keep = sample_in_order(lengths, max_chunks=args.minilm_chunks)
    print(f"offline default: {len(keep)} of {len(texts)} chunks", flush=True)
    rows += measure("all-MiniLM-L6-v2", minilm.spec, [texts[i] for i in keep], [lengths[i] for i in keep])

    if not args.minilm_only:
        base = load_embedder(str(random_modernbert(WORK / "modernbert-base-random")), dtype="float32")
        texts = chunk_texts(tree, base)
        lengths = [min(n, base.max_tokens) for n in base.count_tokens(texts)]
        keep = sample_in_order(lengths, max_tokens=args.base_tokens)
        print(f"ModernBERT-base-sized: {len(keep)} of {len(texts)} chunks", flush=True)
        texts, lengths = [texts[i] for i in keep], [lengths[i] for i in keep]
        rows += measure("ModernBERT-base-sized (random)", base.spec, texts, lengths)

    peaks = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    table = [
        "| model | method | chunks | tokens (real) | tokens computed | s | chunks/s | tokens/s | vs naive "
        "| min cosine to fp32 | model GFLOP/s | share of the matmul peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    naive_speed: dict[object, float] = {}
    for row in rows:
        seconds = float(row["seconds"])  # type: ignore[arg-type]
        speed = float(row["chunks"]) / seconds  # type: ignore[arg-type]
        naive_speed.setdefault(row["model"], speed)
        cosine = f"{row['cosine']:.5f}" if "cosine" in row else "-"
        gflops = float(row["flops"]) / seconds / 1e9  # type: ignore[arg-type]
        precision = "bfloat16" if "bfloat16" in str(row["method"]) else "float32"
        table.append(
            f"| {row['model']} | {row['method']} | {row['chunks']} | {row['tokens']:,} | {row['computed']:,} | "
            f"{seconds:.1f} | {speed:.1f} | {float(row['tokens']) / seconds:,.0f} | "  # type: ignore[arg-type]
            f"{speed / naive_speed[row['model']]:.2f}x | {cosine} | {gflops:.1f} | "
            f"{gflops / peaks[precision]:.0%} of {precision} |"
        )
    print("\n".join(table), flush=True)
    body = [
        machine_line(),
        f"Chunks: {tree.name} cut by codesearch's chunker for each model's budget (MiniLM 192 tokens, "
        "ModernBERT 1024), a seeded random subset kept in file order; tokens computed = padded tokens run "
        "through the model.",
        f"Matmul peak of this CPU (2048², {torch.get_num_threads()} threads, best of 5): float32 "
        f"{peaks['float32']:.0f} GFLOP/s, bf16 {peaks['bfloat16']:.1f} GFLOP/s"
        + ("" if cpu_has_bf16() else " (no native bf16 here: the engine picks float32)")
        + ".",
        "",
        *table,
    ]
    if args.rss:
        rss = rss_runs(small_modernbert())
        body += [
            "",
            "Peak RSS of `codesearch index` (whole pipeline, 4-layer random ModernBERT, 256-chunk batches):",
            "",
        ]
        body += rss
    if not args.no_record:
        command = " ".join(["python benchmarks/embed_throughput.py", *sys.argv[1:]])
        append_results("Embedding throughput: naive loop vs the engine (CPU)", command, body)


if __name__ == "__main__":
    main()
