"""Pick the chunk token budget through the real product path (index → search).

Writes the first N CodeSearchNet Python test functions (code without docstring) as files,
indexes them with the default model at several chunk budgets, and queries each docstring
summary through ``Searcher`` (dense and hybrid). A query scores by the rank of the first hit in
its own file: MRR@50 and nDCG@10. All budgets are measured in one run, with indexing time.

    python benchmarks/chunk_budget.py [--data ../shared/datasets] [--limit 1000] [--budgets 128 192 256]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

from codesearch import Indexer, Searcher
from codesearch.embedding import load_embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[128, 192, 256])
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows = []
    with (args.data / "codesearchnet-python-rebuilt" / "python_test_rebuilt.jsonl").open() as fh:
        for line in fh:
            row = json.loads(line)
            if row["docstring_summary"].strip():
                rows.append(row)
            if len(rows) >= args.limit:
                break
    base = load_embedder()
    results = []
    with tempfile.TemporaryDirectory(prefix="cs-budget-") as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        for i, row in enumerate(rows):
            (root / f"f{i:05d}.py").write_text(row["code"] + "\n", encoding="utf-8")
        for budget in args.budgets:
            embedder = load_embedder(dataclasses.replace(base.spec, chunk_tokens=budget))
            index_dir = Path(tmp) / f"index-{budget}"
            started = time.perf_counter()
            stats = Indexer(root, index_dir, embedder=embedder).run()
            seconds = time.perf_counter() - started
            searcher = Searcher(index_dir, embedder=embedder)
            for mode in ("dense", "hybrid"):
                mrr = ndcg = 0.0
                for i, row in enumerate(rows):
                    hits = searcher.search(row["docstring_summary"], k=50, mode=mode)
                    files = list(dict.fromkeys(h.path for h in hits))
                    gold = f"f{i:05d}.py"
                    if gold in files:
                        rank = files.index(gold)
                        mrr += 1.0 / (rank + 1)
                        ndcg += 1.0 / math.log2(rank + 2) if rank < 10 else 0.0
                results.append((budget, mode, stats.chunks, seconds, mrr / len(rows), ndcg / len(rows)))
    lines = [
        "| chunk budget (tokens) | mode | chunks | index s | MRR@50 | nDCG@10 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {b} | {m} | {c} | {s:.0f} | {r:.3f} | {n:.3f} |" for b, m, c, s, r, n in results]
    table = "\n".join(lines)
    print(table)
    if not args.no_record:
        append_results(
            "Chunk budget through the product path (CSN Python, file-level)",
            f"python benchmarks/chunk_budget.py --limit {args.limit}",
            [
                machine_line(),
                f"{len(rows)} CSN test functions written as files, indexed by `Indexer`, queried by their "
                "docstring summaries through `Searcher`.",
                "",
                table,
            ],
        )


if __name__ == "__main__":
    main()
