"""Fusion experiments for hybrid search, on the quality benchmark's sets (``quality.py``).

Each query's dense and lexical candidates (``Searcher``'s two sides, 50 each as
``codesearch search`` fetches them) are computed once; every fusion rule is then scored on the
same candidates by nDCG@10. Rules: reciprocal-rank fusion (RRF, optionally weighted) and convex
combinations of the two sides' scores, raw (cosine; BM25 over the query's best) or min-max
normalised per query. Prints a table and appends it to RESULTS.md.

    python benchmarks/fusion_sweep.py [--data ../shared/datasets] [--limit N] [--sets ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line
from quality import HERE, build_index, doc_of, embed, load_sets, ndcg_at_10

from codesearch.embedding import load_embedder
from codesearch.store import Hit

Side = list[tuple[str, float]]  # (document, score), best first
Rule = Callable[[Side, Side], list[str]]


def rrf(k: int = 60, lexical_weight: float = 1.0) -> Rule:
    def rule(dense: Side, lexical: Side) -> list[str]:
        scores: dict[str, float] = {}
        for weight, side in ((1.0, dense), (lexical_weight, lexical)):
            for rank, (doc, _score) in enumerate(side):
                scores[doc] = scores.get(doc, 0.0) + weight / (k + rank + 1)
        return sorted(scores, key=scores.__getitem__, reverse=True)

    return rule


def convex(alpha: float, norm: str) -> Rule:
    """alpha x dense + (1 - alpha) x lexical, each side's scores ``raw`` (cosine; BM25 over the
    query's best), ``min-max`` normalised (best 1, worst 0) or ``z-score`` standardised over its
    own candidates; a document a side lacks scores that side's floor."""

    def normalised(side: Side) -> dict[str, float]:
        if not side:
            return {}
        values = np.array([score for _, score in side], dtype=np.float64)
        if norm == "min-max":
            values = (values - values.min()) / ((values.max() - values.min()) or 1.0)
        elif norm == "z-score":
            values = (values - values.mean()) / (values.std() or 1.0)
        return {doc: float(v) for (doc, _), v in zip(side, values, strict=True)}

    def rule(dense: Side, lexical: Side) -> list[str]:
        d, x = normalised(dense), normalised(lexical)
        d_floor, x_floor = min(d.values(), default=0.0), min(x.values(), default=0.0)
        if norm == "raw":
            x_floor = 0.0
        docs = set(d) | set(x)
        score = {doc: alpha * d.get(doc, d_floor) + (1 - alpha) * x.get(doc, x_floor) for doc in docs}
        return sorted(score, key=score.__getitem__, reverse=True)

    return rule


RULES: dict[str, Rule] = {
    "dense only": lambda dense, lexical: [doc for doc, _ in dense],
    "lexical only": lambda dense, lexical: [doc for doc, _ in lexical],
    "RRF k=60 (before)": rrf(60),
    "RRF k=60, lexical x0.5": rrf(60, 0.5),
    "RRF k=10": rrf(10),
    **{f"convex raw, dense {a}": convex(a, "raw") for a in (0.5, 0.6, 0.7, 0.8, 0.9)},
    **{f"convex min-max, dense {a}": convex(a, "min-max") for a in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8)},
    **{f"convex z-score, dense {a}": convex(a, "z-score") for a in (0.5, 0.6, 0.65, 0.7, 0.75, 0.8)},
}


def sides(hits: list[Hit]) -> Side:
    seen: dict[str, float] = {}
    for h in hits:
        seen.setdefault(doc_of(h.path), h.score)
    return list(seen.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "datasets")
    parser.add_argument("--sets", nargs="+", default=["csn-t2c", "csn-c2t", "sosum", "cosqa"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--depth", type=int, default=50, help="candidates per side (codesearch search: 50)")
    parser.add_argument("--no-record", dest="record", action="store_false")
    args = parser.parse_args()
    started = time.perf_counter()
    sets = load_sets(args.data, args.sets, args.limit)
    embedder = load_embedder()
    table: dict[str, dict[str, float]] = {rule: {} for rule in RULES}
    with tempfile.TemporaryDirectory(prefix="cs-fusion-") as tmp:
        for ds in sets:
            docs = embed(embedder, list(ds.corpus.values()), "doc", True)
            qs = embed(embedder, list(ds.queries.values()), "query", True)
            searcher = build_index(Path(tmp) / ds.name, embedder, ds, docs)
            candidates = [
                (
                    ds.qrels[q],
                    sides(searcher.store.dense(vector, args.depth)),
                    sides(searcher.store.lexical(text, args.depth)),
                )
                for (q, text), vector in zip(ds.queries.items(), qs, strict=True)
            ]
            for name, rule in RULES.items():
                table[name][ds.name] = sum(ndcg_at_10(rule(d, x), rel) for rel, d, x in candidates) / len(candidates)
    names = [ds.name for ds in sets]
    lines = ["| fusion rule | " + " | ".join(names) + " | mean |", "| --- |" + " --- |" * (len(names) + 1)]
    for rule, by_set in table.items():
        mean = sum(by_set.values()) / len(by_set)
        lines.append(f"| {rule} | " + " | ".join(f"{by_set[n]:.3f}" for n in names) + f" | {mean:.3f} |")
    body = [
        machine_line(),
        f"nDCG@10 of each fusion rule on the same candidates ({args.depth} dense + {args.depth} lexical per query; "
        f"{', '.join(f'{ds.name} {len(ds.queries)} queries / {len(ds.corpus)} docs' for ds in sets)}); "
        f"{time.perf_counter() - started:.0f} s.",
        "",
        *lines,
    ]
    print("\n".join(body))
    if args.record:
        command = " ".join(["python benchmarks/fusion_sweep.py", *sys.argv[1:]])
        append_results("Hybrid fusion rules on the quality sets", command, body)


if __name__ == "__main__":
    main()
