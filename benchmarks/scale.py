"""The store and the pipeline at 10k, 100k and 1M chunks of real code.

Trees: real source packages from PyPI (pinned sdists, downloaded once into
``benchmarks/.work/scale/``), copied whole into one tree per size until it holds the chunks
wanted (the last package cut by files). Vectors: a **stand-in embedder** (each chunk's words
hashed to fixed random 384-d directions, summed, normalised: cheap and deterministic, no model):
these figures measure the store and the pipeline, not the model; the model's own speed is
``embed_throughput.py``'s. Per size, measured in one run:

- build: ``Indexer.run`` (lexical and dense passes, compaction, the vector index) in a child
  process: wall seconds, peak RSS (wait4), index size on disk, the vector index's build seconds;
- queries: hybrid ``Searcher.search`` (k=10) p50/p95 over 50 queries, in-process, after warm-up;
- save → searchable while watched: a :class:`Watcher` on the tree, one new function appended to
  a random Python file, timed until a long-lived searcher finds it (p50/p95 of 10 edits);
- no-change re-index: ``Indexer.run`` again, in-process.

Targets at 1M chunks: build peak RSS < 4 GiB, query p95 < 100 ms, save → searchable p95 < 1 s,
no-change re-index < 5 s.

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--no-record]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import random
import re
import shutil
import statistics
import sys
import tarfile
import time
import urllib.request
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line
from index_bench import WORK, percentile, run_with_rss

from codesearch.embedding import ModelSpec

SCALE = WORK / "scale"
DIMENSION = 384
BUCKETS = 1 << 15  # the stand-in's word directions (48 MiB)
# big pure-source packages first; chunks per package measured by the first run (cached in counts.json)
PACKAGES = [
    "Django==5.1.4",
    "sympy==1.13.3",
    "pandas==2.2.3",
    "SQLAlchemy==2.0.36",
    "ansible-core==2.17.6",
    "sphinx==8.1.3",
    "twisted==24.10.0",
    "matplotlib==3.9.2",
    "scipy==1.14.1",
    "numpy==2.1.3",
    "salt==3007.1",
    "kubernetes==31.0.0",
    "botocore==1.35.76",
    "networkx==3.4.2",
    "astropy==6.1.6",
    "scikit-learn==1.5.2",
    "pip==24.3.1",
    "setuptools==75.6.0",
    "mypy==1.13.0",
    "pylint==3.3.2",
]
QUERIES = [
    "parse a date string",
    "open a database connection",
    "compute the inverse of a matrix",
    "render a template",
    "read a configuration file",
    "retry a request after a timeout",
    "hash a password",
    "sort items by key",
    "convert a string to bytes",
    "validate an email address",
]
WORD = re.compile(r"[A-Za-z][a-z]+|[A-Z]+(?![a-z])|\d+")


class StandInEmbedder:
    """A deterministic stand-in for a model, for this benchmark only: each word of a text (its
    first 256) adds a fixed random direction to the vector (one of ``BUCKETS``, picked by the
    word's CRC-32), normalised; tokens are counted as 4 characters each. Texts that share words
    land near each other, as a model's would. Vectorised (one gather and one segmented sum per
    batch): the build measures the store and the pipeline, not this stand-in."""

    def __init__(self) -> None:
        self.spec = ModelSpec(
            name="stand-in-hash-384",
            model_id="benchmark/stand-in-hash-384",
            source="benchmark",
            max_tokens=256,
            chunk_tokens=256,
        )
        self.device, self.dtype, self.dimension = "cpu", "float32", DIMENSION
        self.max_tokens, self.truncated = 256, 0
        self._directions = np.random.default_rng(384).standard_normal((BUCKETS, DIMENSION)).astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        buckets, starts = [], []
        for text in texts:
            starts.append(len(buckets))
            words = WORD.findall(text)[:256] or [""]
            buckets.extend(zlib.crc32(word.lower().encode()) % BUCKETS for word in words)
        summed = np.add.reduceat(self._directions[np.asarray(buckets)], np.asarray(starts), axis=0)
        return summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-6)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_documents(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_documents([text])[0]

    def count_tokens(self, texts: Sequence[str], special: bool = True) -> list[int]:
        return [len(text) // 4 + (2 if special else 0) for text in texts]


def fetch(spec: str) -> Path:
    """An sdist from PyPI's simple index (hash checked), unpacked once into its own folder; its
    one top-level folder. No build step runs (``pip download`` would prepare each one's metadata)."""
    folder = SCALE / "sdists" / spec.replace("==", "-")
    if not (folder / ".done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        name, version = spec.split("==")
        page = urllib.request.Request(f"https://pypi.org/simple/{name.lower()}/", headers={"Accept": "text/html"})
        html = urllib.request.urlopen(page, timeout=60).read().decode()
        stem = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]", name))  # ansible_core for ansible-core
        filename = re.compile(rf"{stem}-{re.escape(version)}\.tar\.gz", re.IGNORECASE)
        url, digest = next(
            (link, sha)
            for link, sha in re.findall(r'href="([^"#]+)#sha256=([0-9a-f]+)"', html)
            if filename.fullmatch(link.rsplit("/", 1)[-1])
        )
        data = urllib.request.urlopen(url, timeout=300).read()
        if hashlib.sha256(data).hexdigest() != digest:
            raise SystemExit(f"{url}: sha256 does not match the index")
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(folder, filter="data")
        (folder / ".done").write_text("")
    (source,) = (p for p in folder.iterdir() if p.is_dir())
    return source


def build_tree(size: int) -> Path:
    """A tree of about ``size`` chunks: whole packages, the last cut by files (chunks estimated
    from lines, cached)."""
    counts_file = SCALE / "counts.json"
    counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    tree = SCALE / f"tree-{size}"
    if (tree / ".complete").exists():
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    tree.mkdir(parents=True)
    have = 0
    for spec in PACKAGES:
        source = fetch(spec)
        if spec not in counts:
            counts[spec] = count_chunks(source)
            counts_file.write_text(json.dumps(counts, indent=1))
        if have + counts[spec] <= size:
            shutil.copytree(source, tree / source.name, symlinks=True)
            have += counts[spec]
        else:  # part of it: its files in sorted order until the size is reached
            for path in sorted(p for p in source.rglob("*") if p.is_file()):
                if have >= size:
                    break
                target = tree / source.name / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
                have += estimate(path)
        if have >= size:
            break
    (tree / ".complete").write_text("")
    return tree


def estimate(path: Path) -> int:
    """About how many chunks a file makes: one per 9 non-blank lines of a file that is indexed
    (Python's average in Django; the table reports the real count)."""
    from codesearch.files.languages import CODE_EXTENSIONS, TEXT_EXTENSIONS

    if (path.suffix not in CODE_EXTENSIONS and path.suffix not in TEXT_EXTENSIONS) or path.suffix == ".po":
        return 0
    try:
        return sum(1 for line in path.read_bytes().split(b"\n") if line.strip()) // 9
    except OSError:
        return 0


def count_chunks(source: Path) -> int:
    """About how many chunks a package makes (:func:`estimate`)."""
    total = sum(estimate(path) for path in source.rglob("*") if path.is_file())
    print(f"{source.name}: about {total} chunks", flush=True)
    return total


def child_build(tree: Path, index_dir: Path) -> None:
    """In a child process: index ``tree`` with the stand-in; print the stats and the vector index's build time."""
    from codesearch.index import Indexer

    built: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "vector index" in record.getMessage():
                built.append(record.getMessage())

    logging.getLogger("codesearch.store.lance").addHandler(Catch())
    logging.getLogger("codesearch.store.lance").setLevel(logging.INFO)
    stats = Indexer(tree, index_dir, embedder=StandInEmbedder(), extra_ignores=("*.po",)).run()
    print(json.dumps(dict(files=stats.files, chunks=stats.chunks, ann=built)))


def size_on_disk(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def measure(size: int) -> dict[str, object]:
    from codesearch.index import Indexer
    from codesearch.index.watcher import Watcher
    from codesearch.search import Searcher

    tree = build_tree(size)
    index_dir = SCALE / f"index-{size}"
    shutil.rmtree(index_dir, ignore_errors=True)
    env = {**os.environ, "LANCEDB_LOG": "error"}
    seconds, rss, out = run_with_rss([sys.executable, __file__, "--child-build", str(tree), str(index_dir)], env=env)
    built = json.loads(out.strip().splitlines()[-1])
    ann = re.search(r"([\d.]+) s$", built["ann"][-1]) if built["ann"] else None
    figures: dict[str, object] = dict(
        size=size,
        files=built["files"],
        chunks=built["chunks"],
        build_s=seconds,
        rss=rss,
        disk=size_on_disk(index_dir),
        ann_s=float(ann.group(1)) if ann else None,
    )
    embedder = StandInEmbedder()
    searcher = Searcher(index_dir, embedder=embedder)
    for query in QUERIES[:3]:
        searcher.search(query)
    timings = []
    for i in range(50):
        started = time.perf_counter()
        searcher.search(f"{QUERIES[i % len(QUERIES)]} {i}")
        timings.append((time.perf_counter() - started) * 1000)
    figures.update(query_p50=percentile(timings, 0.5), query_p95=percentile(timings, 0.95))

    started = time.perf_counter()
    Indexer(tree, index_dir, embedder=embedder, extra_ignores=("*.po",)).run()
    figures["no_change_s"] = time.perf_counter() - started

    python_files = sorted(tree.rglob("*.py"))
    rng = random.Random(size)
    latencies = []
    with Watcher(tree, index_dir, embedder=embedder, extra_ignores=("*.po",)):
        reader = Searcher(index_dir, embedder=embedder)
        for edit in range(10):
            name = f"scale_probe_{size}_{edit}_{rng.randrange(10**6)}"
            target = rng.choice(python_files)
            written = time.perf_counter()
            with target.open("a", encoding="utf-8") as fh:
                fh.write(f"\n\ndef {name}(ledger, rate):\n    return ledger.balance * rate\n")
            deadline = written + 30
            while time.perf_counter() < deadline:
                if any(r.symbol == name for r in reader.search(name.replace("_", " "), k=3, mode="lexical")):
                    break
                time.sleep(0.02)
            latencies.append((time.perf_counter() - written) * 1000)
            time.sleep(0.5)
    figures.update(save_p50=statistics.median(latencies), save_p95=percentile(latencies, 0.95))
    return figures


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-build":
        child_build(Path(sys.argv[2]), Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    rows = []
    table = [
        "| chunks | files | build s | build peak RSS | index on disk | vector index build s | query p50 / p95 ms "
        "| save → searchable p50 / p95 ms | no-change re-index s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    stopped = ""
    for size in [int(s) for s in args.sizes.split(",")]:
        try:
            f = measure(size)
        except KeyboardInterrupt:  # the sizes done so far are still recorded
            stopped = f"Stopped by hand while measuring the {size:,}-chunk size."
            break
        rows.append(f)
        line = (
            f"| {f['chunks']:,} | {f['files']:,} | {f['build_s']:.0f} | {int(f['rss']) / 2**30:.2f} GiB | "  # type: ignore[call-overload]
            f"{int(f['disk']) / 2**30:.2f} GiB | {f['ann_s'] if f['ann_s'] is not None else 'none (exact)'} | "  # type: ignore[call-overload]
            f"{f['query_p50']:.0f} / {f['query_p95']:.0f} | {f['save_p50']:.0f} / {f['save_p95']:.0f} | "
            f"{f['no_change_s']:.2f} |"
        )
        print(line, flush=True)
        table.append(line)
    body = [
        machine_line(),
        "Trees: real PyPI sdists (" + ", ".join(PACKAGES[:6]) + ", ...), whole packages in order until the size is "
        "reached. **Vectors from a stand-in embedder** (hashed words, 384-d; no model): the store and the pipeline "
        "are measured, not the model. Queries: hybrid, k=10, in-process; save → searchable: lexical, watched.",
        "",
        *table,
        *(["", stopped] if stopped else []),
    ]
    print("\n".join(body))
    if not args.no_record and rows:
        append_results("Scale: 10k, 100k and 1M chunks", " ".join(["python benchmarks/scale.py", *sys.argv[1:]]), body)


if __name__ == "__main__":
    main()
