"""Recall and speed of the vector index (ANN) against exact search, on real vectors.

On a complete index (default: the Django index of ``benchmarks/freshness.py``, 84k chunks of the
offline default model), builds the vector index when it has none (timed; the writer lock is
taken, as a writer would), then asks it real queries: CoSQA's web queries (natural language,
``../shared/datasets/cosqa``) and the text of random chunks of the index itself (code to code,
as ``similar`` asks). For several probe counts: recall@10 and recall@50 (the depth of each side
of a hybrid query) of ``Store.dense`` against the same query with ``exact=True`` (a flat search
of every vector), and the p50/p95 of each; the shipped share (``ANN_PROBE_SHARE``) is marked.
Appends the table to ``benchmarks/RESULTS.md``.

    python benchmarks/ann_recall.py [--index-dir INDEX] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_line, publish
from index_bench import WORK, percentile

from codesearch.embedding import load_embedder
from codesearch.index.runs import writer_lock
from codesearch.store import Store, lance

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def queries_of(datasets: Path, store: Store, count: int) -> tuple[list[str], list[str]]:
    """``count`` web queries (CoSQA dev and test) and ``count // 2`` chunk texts of the index."""
    words: list[str] = []
    for half in ("beir_dev", "beir_test"):
        with open(datasets / "cosqa" / half / "queries.jsonl", encoding="utf-8") as fh:
            words += [json.loads(line)["text"] for line in fh]
    rng = random.Random(7)
    rng.shuffle(words)
    rows = store.chunks.search().select(["text"]).limit(None).to_arrow().column("text").to_pylist()
    code = rng.sample([text for text in rows if len(text) > 80], count // 2)
    return words[:count], code


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--index-dir", type=Path, default=WORK / "freshness" / "index")
    parser.add_argument("--datasets", type=Path, default=DATASETS)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--shares", default="0.02,0.05,0.1,0.2", help="shares of the partitions probed")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()

    with writer_lock(args.index_dir):
        writer = Store.open(args.index_dir, writable=True)
        built, build_s = timed(writer.ensure_vector_index)
    store = Store.open(args.index_dir)
    ann = store.meta.get(lance.ANN) or {}
    rows = store.counts()["chunks"]
    embedder = load_embedder(store.meta.get("model_name"))
    words, code = queries_of(args.datasets, store, args.queries)
    vectors = [("web queries", embedder.embed_queries(words)), ("code (similar)", embedder.embed_documents(code))]
    table = [
        "| queries | probes | recall@10 | recall@50 | ANN p50 / p95 ms | exact p50 / p95 ms |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    shipped = lance.ANN_PROBE_SHARE
    for name, matrix in vectors:
        exact, exact_ms = [], []
        for vector in matrix:
            hits, ms = timed(store.dense, vector, 50, exact=True)
            exact.append([(h.path, h.start_line) for h in hits])
            exact_ms.append(ms)
        for share in [float(p) for p in args.shares.split(",")]:
            lance.ANN_PROBE_SHARE = share
            r10, r50, ann_ms = [], [], []
            for vector, truth in zip(matrix, exact, strict=True):
                hits, ms = timed(store.dense, vector, 50)
                got = [(h.path, h.start_line) for h in hits]
                r10.append(len(set(got[:10]) & set(truth[:10])) / max(1, len(truth[:10])))
                r50.append(len(set(got) & set(truth)) / max(1, len(truth)))
                ann_ms.append(ms)
            line = (
                f"| {name} ({len(matrix)}) | {store._probes()} of {ann.get('partitions', '?')}"
                f"{' (shipped)' if share == shipped else ''} | "
                f"{statistics.mean(r10):.3f} | {statistics.mean(r50):.3f} | "
                f"{percentile(ann_ms, 0.5):.1f} / {percentile(ann_ms, 0.95):.1f} | "
                f"{percentile(exact_ms, 0.5):.1f} / {percentile(exact_ms, 0.95):.1f} |"
            )
            print(line, flush=True)
            table.append(line)
        lance.ANN_PROBE_SHARE = shipped
    size = sum(f.stat().st_size for f in (Path(args.index_dir) / "chunks.lance" / "_indices").rglob("*") if f.is_file())
    body = [
        machine_line(),
        f"Index: {args.index_dir} ({rows:,} chunks, model {store.meta.get('model_name')}); vector index IVF_FLAT, "
        f"cosine, {ann.get('partitions')} partitions"
        + (f", built in {build_s / 1000:.1f} s" if built else " (built before)")
        + f"; index files on disk {size / 2**20:.0f} MiB (vector, full-text and scalar indexes).",
        "Dense top 50 through `Store.dense`, against the same query with `exact=True` (flat search).",
        "",
        *table,
    ]
    publish(
        "Vector index: recall and latency against exact search",
        "python benchmarks/ann_recall.py",
        body,
        record=not args.no_record,
    )


if __name__ == "__main__":
    main()
