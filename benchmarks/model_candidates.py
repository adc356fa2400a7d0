"""Score offline embedding-model candidates on CodeSearchNet Python (text → code).

Each candidate is ``MODEL:DTYPE:MAXLEN`` (MODEL: a preset or a local checkpoint folder) and is
run through codesearch's own embedder (the code the index uses). Metrics, both by exact cosine
search: nDCG@10 over the whole rebuilt test corpus (CoIR-style), and the original CSN MRR where
each query ranks its own code among 999 in-batch distractors (``mrr_batches_1000.json``).
Throughput (documents/s) is measured in the same run, so candidates compare as ratios.

    python benchmarks/model_candidates.py [--data ../shared/datasets] [--limit N] [--candidates ...]

Prints a table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

from codesearch.embedding import load_embedder, resolve_model

DEFAULT_CANDIDATES = [
    "minilm-code:bfloat16:256",
    "all-minilm-l6-v2:float32:256",
    "all-minilm-l6-v2:bfloat16:256",
    "all-minilm-l6-v2:int8:256",
    "all-minilm-l6-v2:float32:128",
    "all-minilm-l6-v2:float32:512",
]


def read_jsonl(path: Path) -> dict[str, str]:
    with path.open(encoding="utf-8") as fh:
        return {row["_id"]: row["text"] for row in map(json.loads, fh)}


def load_csn(data: Path, limit: int | None) -> tuple[list[str], list[str], list[int], list[list[int]]]:
    base = data / "codesearchnet-python-rebuilt"
    queries = read_jsonl(base / "beir_text2code" / "queries.jsonl")
    corpus = read_jsonl(base / "beir_text2code" / "corpus.jsonl")
    qrels: dict[str, str] = {}
    with (base / "beir_text2code" / "qrels" / "test.tsv").open() as fh:
        next(fh)
        for line in fh:
            qid, cid, _ = line.rstrip("\n").split("\t")
            qrels[qid] = cid
    qids = [q for q in queries if q in qrels]
    if limit:
        qids = qids[:limit]
    cids = list(corpus) if not limit else list(dict.fromkeys(qrels[q] for q in qids))
    cindex = {cid: i for i, cid in enumerate(cids)}
    qindex = {qid: i for i, qid in enumerate(qids)}
    gold = [cindex[qrels[q]] for q in qids]
    batches = json.loads((base / "mrr_batches_1000.json").read_text())["batches"]
    mrr_batches = [[qindex[q] for q in batch if q in qindex] for batch in batches]
    mrr_batches = [b for b in mrr_batches if len(b) >= 10]
    return [queries[q] for q in qids], [corpus[c] for c in cids], gold, mrr_batches


def ndcg_at_10(scores: np.ndarray, gold: list[int]) -> float:
    total = 0.0
    for i, g in enumerate(gold):
        row = scores[i]
        rank = int(np.sum(row > row[g]))  # 0-based rank of the single relevant document
        if rank < 10:
            total += 1.0 / math.log2(rank + 2)
    return total / len(gold)


def csn_mrr(q: np.ndarray, c: np.ndarray, gold: list[int], batches: list[list[int]]) -> float:
    ranks = []
    for batch in batches:
        codes = c[[gold[i] for i in batch]]
        scores = q[batch] @ codes.T
        correct = np.diag(scores)
        ranks.extend(1.0 / (1 + np.sum(scores > correct[:, None], axis=1)))
    return float(np.mean(ranks))


def evaluate(
    candidate: str, queries: list[str], corpus: list[str], gold: list[int], batches: list[list[int]]
) -> dict[str, object]:
    name, dtype, max_len = candidate.rsplit(":", 2)
    spec = dataclasses.replace(resolve_model(name), max_tokens=int(max_len))
    embedder = load_embedder(spec, dtype=dtype)
    started = time.perf_counter()
    c = embedder.embed_documents(corpus)
    doc_seconds = time.perf_counter() - started
    q = embedder.embed_queries(queries)
    return dict(
        vectors=c,
        candidate=candidate,
        ndcg10=ndcg_at_10(q @ c.T, gold),
        mrr=csn_mrr(q, c, gold, batches) if batches else float("nan"),
        docs_per_s=len(corpus) / doc_seconds,
        truncated=embedder.truncated,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    parser.add_argument("--limit", type=int, help="first N queries only (quick look)")
    parser.add_argument("--candidates", nargs="+", default=DEFAULT_CANDIDATES)
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    queries, corpus, gold, batches = load_csn(args.data, args.limit)
    print(f"CSN python text->code: {len(queries)} queries, {len(corpus)} documents, {len(batches)} MRR batches")
    rows = [evaluate(c, queries, corpus, gold, batches) for c in args.candidates]
    base = rows[0]["docs_per_s"]
    first: np.ndarray = rows[0]["vectors"]  # type: ignore[assignment]
    lines = [
        "| candidate (model:dtype:max tokens) | nDCG@10 | CSN MRR (1k batches) | docs/s | speed vs first "
        "| cosine to first (mean / min) | truncated |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        vectors: np.ndarray = r["vectors"]  # type: ignore[assignment]
        cosine = "n/a"
        if vectors.shape == first.shape:
            agreement = np.sum(vectors * first, axis=1)
            cosine = f"{agreement.mean():.5f} / {agreement.min():.4f}"
        lines.append(
            f"| {r['candidate']} | {r['ndcg10']:.3f} | {r['mrr']:.3f} | {r['docs_per_s']:.1f} | "
            f"{r['docs_per_s'] / base:.2f}x | {cosine} | {r['truncated']} |"
        )
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        command = "python benchmarks/model_candidates.py" + (f" --limit {args.limit}" if args.limit else "")
        if args.candidates != DEFAULT_CANDIDATES:
            command += " --candidates " + " ".join(args.candidates)
        append_results(
            "Offline embedding candidates on CodeSearchNet Python (text to code)",
            command,
            [
                machine_line(),
                f"Data: {len(queries)} queries vs {len(corpus)} functions (rebuilt CSN python test, 27 repos); "
                "exact cosine search; BM25 reference on the same files: nDCG@10 0.527.",
                "",
                table,
            ],
        )


if __name__ == "__main__":
    main()
