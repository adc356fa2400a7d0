"""Retrieval quality on real benchmark data: CodeSearchNet Python, SOSum (the StackQA
substitute) and CoSQA, by lexical, dense and hybrid search, as codesearch ranks them.

Direct evaluation (CoIR's protocol): each corpus document is one row of a real codesearch index
(``Store``): its text embedded whole by the model's ``embed_documents`` (the index's embedding
code; exact cosine search, no vector index), its words in the index's full-text index
(identifier-split terms, BM25). Queries go through ``Searcher``'s ranking with the query vector
from ``embed_queries``: ``dense``, ``lexical`` and ``hybrid`` exactly as ``codesearch search``.

- CSN text→code and code→text (the CoIR direction): nDCG@10 and MRR@10; text→code also the
  original CSN MRR: each query against its own function and 999 distractors (``mrr_batches_1000.json``).
- SOSum question → answers: nDCG@10 (the StackQA substitute: CoIR's StackOverflow-QA is hub-only).
- CoSQA test (500 real web queries): MRR@10 and nDCG@10.
- ``--handwritten dev|test``: hand-written questions over real Go, Rust, TypeScript, Java, Python
  and Ruby projects no part of codesearch trained on (``handwritten.py``): hit@1, hit@5 and
  MRR@10 per language and mode, through the product's index and search.

End to end (``--e2e``, on by default): the CSN text→code corpus written out as one ``.py`` file
per function, indexed by the real ``codesearch index`` command, queried through ``Searcher``
(the code ``codesearch search`` runs; a sample of queries also through the command itself, whose
JSON must equal the in-process results). Functions longer than a chunk are split by the chunker
and ranked by their best chunk, and the embedded text carries the chunk's context header.

    python benchmarks/quality.py [--data ../shared/datasets] [--model auto] [--limit N] [--no-e2e]

Prints a table and appends it to RESULTS.md (``--no-record`` to skip). Embeddings are cached in
``benchmarks/.work/quality/`` between runs (``--no-cache`` to recompute).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

from codesearch.embedding import Embedder, load_embedder
from codesearch.search import Searcher, candidate_depth
from codesearch.store import FileRecord, Hit, chunk_id, fuse, glob_filter, lexical_terms, split_identifier

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".work" / "quality"
MODES = ("lexical", "dense", "hybrid")
DEPTH = 100  # ranks kept for the CSN MRR over 1,000-item batches (1/rank beyond 100 counts as 0)
# BM25 on these very files (../shared/datasets/README.md) and the ModernBERT paper (CoIR, other corpora)
BM25 = {"csn-t2c": (0.527, 0.475), "csn-c2t": (0.436, 0.383), "sosum": (0.464, 0.647), "cosqa": (0.370, 0.319)}
PAPER = {"csn-t2c": "56.4 / 59.5 (CoIR CodeSearchNet)", "sosum": "73.6 / 83.9 (CoIR StackQA)"}


@dataclass
class Dataset:
    name: str
    label: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    batches: list[list[str]] = field(default_factory=list)  # CSN MRR-1000: query ids per batch


def read_beir(folder: Path, name: str, label: str, limit: int | None) -> Dataset:
    def jsonl(path: Path) -> dict[str, str]:
        with path.open(encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        return {r["_id"]: ((r.get("title") or "") + " " + r["text"]).strip() for r in rows}

    corpus, queries = jsonl(folder / "corpus.jsonl"), jsonl(folder / "queries.jsonl")
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0 and qid in queries and did in corpus:
            qrels.setdefault(qid, {})[did] = int(score)
    kept = [q for q in queries if q in qrels][:limit]
    if limit:  # a smaller corpus: the kept queries' documents, then others up to the same share
        wanted = {d for q in kept for d in qrels[q]}
        share = max(len(wanted), int(len(corpus) * limit / max(1, len(queries))))
        corpus = {d: t for i, (d, t) in enumerate(corpus.items()) if d in wanted or i < share}
    return Dataset(name, label, corpus, {q: queries[q] for q in kept}, {q: qrels[q] for q in kept})


def load_sets(data: Path, names: Sequence[str], limit: int | None) -> list[Dataset]:
    csn = data / "codesearchnet-python-rebuilt"
    found: list[Dataset] = []
    for name in names:
        if name == "csn-t2c":
            ds = read_beir(csn / "beir_text2code", name, "CSN Python text→code", limit)
            batches = json.loads((csn / "mrr_batches_1000.json").read_text())["batches"]
            ds.batches = [[q for q in b if q in ds.queries] for b in batches]
            ds.batches = [b for b in ds.batches if len(b) == len(batches[0])] or ([] if limit else ds.batches)
        elif name == "csn-c2t":
            ds = read_beir(csn / "beir_code2text", name, "CSN Python code→text (CoIR direction)", limit)
        elif name == "sosum":
            ds = read_beir(data / "sosum" / "beir", name, "SOSum question→answers (StackQA substitute)", limit)
        elif name == "cosqa":
            ds = read_beir(data / "cosqa" / "beir_test", name, "CoSQA test (real web queries)", limit)
        elif name == "cosqa-dev":  # for choosing settings without looking at the test queries
            ds = read_beir(data / "cosqa" / "beir_dev", name, "CoSQA dev (real web queries)", limit)
        else:
            raise SystemExit(f"unknown set {name!r}")
        found.append(ds)
    return found


# -- embedding, cached ------------------------------------------------------------------------------
def embed(embedder: Embedder, texts: list[str], kind: str, use_cache: bool) -> np.ndarray:
    """``embed_documents`` or ``embed_queries`` of ``texts``, cached on disk by model and texts."""
    prefix = embedder.spec.document_prefix if kind == "doc" else embedder.spec.query_prefix
    digest = hashlib.blake2b(digest_size=12)  # by the text the model sees: code as a query or a document, once
    digest.update(f"{embedder.spec.cache_key}\0{prefix}\0{embedder.max_tokens}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\0")
    path = CACHE / f"{digest.hexdigest()}.npy"
    if use_cache and path.exists():
        return np.load(path)
    fn = embedder.embed_documents if kind == "doc" else embedder.embed_queries
    vectors = fn(texts)
    if use_cache:
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


# -- a real index of the documents --------------------------------------------------------------------
def build_index(
    folder: Path, embedder: Embedder, ds: Dataset, vectors: np.ndarray, split_terms: bool = True
) -> Searcher:
    """One row per document in a real codesearch index; a CSN batch member's path starts with
    ``b<batch>/`` so a path filter restricts a query to its batch."""
    from codesearch.store import Store

    batch_of = {}
    if ds.batches:
        gold = {q: next(iter(ds.qrels[q])) for q in ds.queries}
        batch_of = {gold[q]: b for b, members in enumerate(ds.batches) for q in members}
    store = Store.create(
        folder,
        root=str(folder),
        model_name=embedder.spec.name,
        model_id=embedder.spec.model_id,
        cache_key=embedder.spec.cache_key,
        dimension=embedder.dimension,
    )
    ids = list(ds.corpus)
    keys = embedder.spec.document_keys([ds.corpus[d] for d in ids])
    for start in range(0, len(ids), 2000):
        records, rows = [], []
        for i in range(start, min(start + 2000, len(ids))):
            doc, text = ids[i], ds.corpus[ids[i]]
            path = f"b{batch_of[doc]}/{doc}" if doc in batch_of else f"rest/{doc}"
            lines = text.count("\n") + 1
            row_id = chunk_id(path, 1, lines, keys[i])
            rows.append(
                dict(id=row_id, vkey=keys[i], path=path, start_line=1, end_line=lines, symbol="", kind="text")
                | dict(language="text", text=text, terms=lexical_terms(text) if split_terms else text)
                | dict(file_hash=keys[i], embedded=True)
                | dict(vector=vectors[i])
            )
            records.append(FileRecord(path, len(text), 0, keys[i], "text", 1, True, (row_id,)))
        store.replace_files(records, rows)
    store.ensure_lexical_index()
    store.finish_writes()
    return Searcher(folder, embedder=embedder)


def named(text: str) -> str:
    """Code behind a line of its function's name as words (``def parse_http_date`` → "parse
    http date"); other text unchanged."""
    found = re.match(r"\s*(?:async\s+)?def\s+([A-Za-z_]\w*)", text)
    return f"{' '.join(split_identifier(found.group(1)))}\n{text}" if found else text


def doc_of(path: str) -> str:
    return path.rsplit("/", 1)[-1].removesuffix(".py")


def ranked(searcher: Searcher, text: str, vector: np.ndarray, mode: str, k: int = 10) -> list[str]:
    """Document ids in ``Searcher``'s order for ``mode``: the ranking ``codesearch search -k k`` runs."""
    hits: list[Hit] = searcher._rank(text, lambda: vector, k, mode, None)
    return list(dict.fromkeys(doc_of(h.path) for h in hits))


class Ranker:
    """The index's ranking with the dense side computed in numpy: exact cosine over the same
    vectors (LanceDB's flat search, checked equal on a sample), 50x faster for thousands of
    queries. Lexical candidates come from the index's full-text search, and hybrid is the
    product's ``fuse`` over both, with ``Searcher``'s candidate depth."""

    def __init__(self, searcher: Searcher, ds: Dataset, docs: np.ndarray, queries: np.ndarray) -> None:
        self.searcher, self.ds = searcher, ds
        self.doc_ids = list(ds.corpus)
        self.docs, self.queries = docs, dict(zip(ds.queries, queries, strict=True))
        rows = searcher.store.chunks.to_arrow().select(["path", "end_line"]).to_pylist()
        self.row = {doc_of(r["path"]): (r["path"], r["end_line"]) for r in rows}

    def dense(self, q: str, depth: int, members: np.ndarray | None = None) -> list[Hit]:
        scores = self.docs @ self.queries[q] if members is None else self.docs[members] @ self.queries[q]
        top = np.argsort(-scores, kind="stable")[:depth]
        index = top if members is None else members[top]
        return [self._hit(self.doc_ids[i], float(scores[t])) for i, t in zip(index, top, strict=True)]

    def _hit(self, doc: str, score: float) -> Hit:
        path, end = self.row[doc]
        return Hit(path, 1, end, "", "text", "text", "", score)

    def rank(self, q: str, mode: str, k: int, batch: int | None = None) -> list[str]:
        depth = candidate_depth(k)
        members = None if batch is None else self.batch_members[batch]
        where = None if batch is None else glob_filter(f"b{batch}/*")
        if mode == "dense":
            hits = self.dense(q, k, members)
        elif mode == "lexical":
            hits = self.searcher.store.lexical(self.ds.queries[q], k, where)
        else:
            lexical = self.searcher.store.lexical(self.ds.queries[q], depth, where)
            hits = fuse([self.dense(q, depth, members), lexical], k)
        return list(dict.fromkeys(doc_of(h.path) for h in hits))

    @property
    def batch_members(self) -> list[np.ndarray]:
        if not hasattr(self, "_members"):
            position = {d: i for i, d in enumerate(self.doc_ids)}
            gold = [[next(iter(self.ds.qrels[q])) for q in b] for b in self.ds.batches]
            self._members = [np.array([position[d] for d in docs]) for docs in gold]
        return self._members

    def agreement(self, sample: int = 50) -> tuple[int, int]:
        """Queries whose numpy top 10 equals ``Searcher``'s (LanceDB) dense top 10."""
        same = 0
        queries = list(self.ds.queries.items())[:sample]
        for q, text in queries:
            same += self.rank(q, "dense", 10) == ranked(self.searcher, text, self.queries[q], "dense")
        return same, len(queries)


# -- metrics ------------------------------------------------------------------------------------------
def ndcg_at_10(ranking: list[str], relevant: dict[str, int]) -> float:
    dcg = sum((2 ** relevant.get(d, 0) - 1) / math.log2(i + 2) for i, d in enumerate(ranking[:10]))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    best = sum((2**r - 1) / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / best if best else 0.0


def rr(ranking: list[str], relevant: dict[str, int], cutoff: int) -> float:
    for i, d in enumerate(ranking[:cutoff]):
        if relevant.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


@dataclass
class Scores:
    ndcg10: float
    mrr10: float
    csn_mrr: float | None = None


def evaluate(ranker: Ranker, ds: Dataset, mode: str) -> Scores:
    ndcg = mrr = 0.0
    for q in ds.queries:
        ranking = ranker.rank(q, mode, 10)  # as ``codesearch search`` answers its default 10
        ndcg += ndcg_at_10(ranking, ds.qrels[q])
        mrr += rr(ranking, ds.qrels[q], 10)
    n = len(ds.queries)
    csn = None
    if ds.batches:  # each query against its own batch of 1,000 (its function and 999 others)
        total = count = 0.0
        for b, members in enumerate(ds.batches):
            for q in members:
                total += rr(ranker.rank(q, mode, DEPTH, batch=b), ds.qrels[q], DEPTH)
                count += 1
        csn = total / count if count else None
    return Scores(ndcg / n, mrr / n, csn)


# -- end to end through the product -------------------------------------------------------------------
def end_to_end(ds: Dataset, model: str | None, work: Path, samples: int) -> tuple[dict[str, Scores], dict]:
    """Index the corpus as files with ``codesearch index``; rank with ``Searcher`` (what
    ``codesearch search`` runs) and check a sample against the command itself."""
    exe = str(Path(sys.executable).with_name("codesearch"))
    root, index_dir = work / "csn-corpus", work / "csn-index"
    root.mkdir()
    for doc, text in ds.corpus.items():
        (root / f"{doc}.py").write_text(text + "\n", encoding="utf-8")
    command = [exe, "index", str(root), "--index-dir", str(index_dir), "--json"]
    command += ["--model", model] if model else []
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    stats = json.loads(done.stdout) | {"wall_s": round(time.perf_counter() - started, 1)}
    searcher = Searcher(index_dir)
    # the queries embedded in one batch by the index's model (``search`` embeds one at a time)
    vectors = searcher.embedder.embed_queries(list(ds.queries.values()))
    scores = {}
    for mode in MODES:
        ndcg = mrr = 0.0
        for (q, text), vector in zip(ds.queries.items(), vectors, strict=True):
            ranking = ranked(searcher, text, vector, mode)
            ndcg += ndcg_at_10(ranking, ds.qrels[q])
            mrr += rr(ranking, ds.qrels[q], 10)
        scores[mode] = Scores(ndcg / len(ds.queries), mrr / len(ds.queries))
    same = 0
    for text in list(ds.queries.values())[:samples]:
        cli = subprocess.run(
            [exe, "search", text, "--index-dir", str(index_dir), "--json", "-k", "10"],
            capture_output=True,
            text=True,
            check=True,
        )
        mine = [r.as_dict() for r in searcher.search(text, k=10)]
        same += json.loads(cli.stdout) == mine
    stats["cli_checked"], stats["cli_same"] = min(samples, len(ds.queries)), same
    return scores, stats


# -- report -------------------------------------------------------------------------------------------
def table(results: dict[str, dict[str, Scores]], sets: list[Dataset], model: str) -> list[str]:
    lines = [
        "| set | queries / docs | method | nDCG@10 | MRR@10 | CSN MRR (1k batches) | BM25 ref nDCG@10 / MRR@10 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for ds in sets:
        ref = BM25.get(ds.name)
        for mode in MODES:
            s = results[ds.name][mode]
            method = {"lexical": "lexical (full-text, BM25)", "dense": f"dense ({model})", "hybrid": "hybrid"}[mode]
            lines.append(
                f"| {ds.label} | {len(ds.queries)} / {len(ds.corpus)} | {method} | {s.ndcg10:.3f} | {s.mrr10:.3f} | "
                f"{'-' if s.csn_mrr is None else f'{s.csn_mrr:.3f}'} | "
                f"{f'{ref[0]:.3f} / {ref[1]:.3f}' if ref else '-'} |"
            )
    return lines


def check(results: dict[str, dict[str, Scores]]) -> list[str]:
    """The issue's bar: hybrid >= the better half everywhere, > on CSN text→code and CoSQA;
    every mode of the default beats BM25's nDCG@10; CSN text→code hybrid >= 0.75."""
    notes = []
    for name, by_mode in results.items():
        best_half = max(by_mode["lexical"].ndcg10, by_mode["dense"].ndcg10)
        hybrid = by_mode["hybrid"].ndcg10
        strict = name in ("csn-t2c", "cosqa")
        ok = hybrid > best_half if strict else hybrid >= best_half
        notes.append(f"{name}: hybrid {hybrid:.3f} vs better half {best_half:.3f}: {'ok' if ok else 'NOT MET'}")
        if name in BM25:
            beat = max(s.ndcg10 for s in by_mode.values()) > BM25[name][0]
            notes.append(f"{name}: best vs BM25 {BM25[name][0]:.3f}: {'ok' if beat else 'NOT MET'}")
    if "csn-t2c" in results:
        hybrid = results["csn-t2c"]["hybrid"].ndcg10
        notes.append(f"csn-t2c: hybrid nDCG@10 {hybrid:.4f} >= 0.75: {'ok' if hybrid >= 0.75 else 'NOT MET'}")
    return notes


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE.parents[1] / "shared" / "datasets")
    parser.add_argument("--model", default=None, help="a model name as codesearch index --model takes (default: auto)")
    parser.add_argument("--sets", nargs="+", default=["csn-t2c", "csn-c2t", "sosum", "cosqa"])
    parser.add_argument("--limit", type=int, default=None, help="first N queries of each set (a quick run)")
    parser.add_argument("--no-e2e", dest="e2e", action="store_false", help="skip the end-to-end product check")
    parser.add_argument("--cli-samples", type=int, default=10, help="queries also run through codesearch search")
    parser.add_argument(
        "--handwritten",
        choices=("none", "dev", "test"),
        default="none",
        help="also the hand-written questions over unseen projects, this half (benchmarks/handwritten.py)",
    )
    parser.add_argument("--no-cache", dest="cache", action="store_false")
    parser.add_argument("--no-record", dest="record", action="store_false")
    parser.add_argument("--title", default="Retrieval quality: CodeSearchNet, SOSum (StackQA substitute), CoSQA")
    parser.add_argument("--note", default="", help="a line recorded under the table (what this run changed)")
    parser.add_argument(
        "--lexical-terms",
        choices=("split", "raw"),
        default="split",
        help="experiment: index raw text instead of identifier-split terms (the product splits)",
    )
    parser.add_argument(
        "--doc-form",
        choices=("raw", "named"),
        default="raw",
        help="experiment: embed code documents behind a line of their function's name words",
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        raise SystemExit(f"no datasets at {args.data}: pass --data (see ../shared/datasets/README.md)")
    started = time.perf_counter()
    sets = load_sets(args.data, args.sets, args.limit)
    embedder = load_embedder(args.model)
    model = f"{embedder.spec.name}, {embedder.dtype}, max {embedder.max_tokens} tokens"
    results: dict[str, dict[str, Scores]] = {}
    timings = []
    with tempfile.TemporaryDirectory(prefix="cs-quality-") as tmp:
        for ds in sets:
            t0 = time.perf_counter()
            texts = list(ds.corpus.values())
            if args.doc_form == "named":
                texts = [named(text) for text in texts]
            docs = embed(embedder, texts, "doc", args.cache)
            qs = embed(embedder, list(ds.queries.values()), "query", args.cache)
            searcher = build_index(Path(tmp) / ds.name, embedder, ds, docs, args.lexical_terms == "split")
            ranker = Ranker(searcher, ds, docs, qs)
            t1 = time.perf_counter()
            results[ds.name] = {mode: evaluate(ranker, ds, mode) for mode in MODES}
            same, sampled = ranker.agreement()
            timings.append(
                f"{ds.name}: embed+index {t1 - t0:.0f} s, rank {time.perf_counter() - t1:.0f} s, "
                f"numpy dense top 10 = LanceDB's on {same}/{sampled}"
            )
            print(f"{ds.name}: " + ", ".join(f"{m} {s.ndcg10:.3f}" for m, s in results[ds.name].items()), flush=True)
        e2e = None
        csn = next((ds for ds in sets if ds.name == "csn-t2c"), None)
        if args.e2e and csn is not None:
            e2e = end_to_end(csn, args.model, Path(tmp), args.cli_samples)
    lines = table(results, sets, model)
    if e2e is not None:
        scores, stats = e2e
        lines += [
            "",
            "End to end (CSN text→code corpus as files, `codesearch index`, then `Searcher` / `codesearch search`):",
            "",
        ]
        lines += ["| method | nDCG@10 | MRR@10 | direct nDCG@10 | gap |", "| --- | --- | --- | --- | --- |"]
        for mode in MODES:
            direct = results["csn-t2c"][mode].ndcg10
            s = scores[mode]
            lines.append(f"| {mode} | {s.ndcg10:.3f} | {s.mrr10:.3f} | {direct:.3f} | {s.ndcg10 - direct:+.3f} |")
        lines += [
            "",
            f"Index: {stats['files']} files, {stats['chunks']} chunks, {stats['wall_s']} s; "
            f"`codesearch search --json` equal to `Searcher` on {stats['cli_same']}/{stats['cli_checked']} "
            "sampled queries.",
        ]
    notes = check(results)
    if args.handwritten != "none":
        import handwritten

        hand_table, hand_notes = handwritten.report(args.handwritten, args.model)
        lines += ["", f"Hand-written questions over unseen projects, {args.handwritten} half (`handwritten.py`):", ""]
        lines += hand_table
        notes += [f"handwritten {args.handwritten}: {note}" for note in hand_notes]
    wall = time.perf_counter() - started
    body = [
        machine_line(),
        f"Model: {model}. Paper figures (ModernBERT base / large, CoIR, other corpora, not comparable): "
        + "; ".join(f"{k}: {v}" for k, v in PAPER.items())
        + ".",
        f"Wall time: {wall:.0f} s ({'; '.join(timings)}).",
        "",
        *lines,
        "",
        "Checks: " + "; ".join(notes) + ".",
    ]
    if args.note:
        body += ["", args.note]
    print("\n".join(body))
    if args.record:
        command = " ".join(["python benchmarks/quality.py", *(sys.argv[1:] if argv is None else argv)])
        append_results(args.title, command, body)
    return {"results": results, "e2e": e2e, "wall": wall}


if __name__ == "__main__":
    main()
