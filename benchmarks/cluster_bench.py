"""The local engine against the Ray engine with 1 and 2 workers, on one real tree, in one run.

Each run indexes the tree from scratch with ``codesearch index --json`` in a subprocess (Ray
runs inside ``unshare -n`` with only loopback up, as the tests do). Figures: wall time,
chunks/s, the ratio to the local engine, the driver's write time (the single writer), and the
cost of starting and stopping a local Ray cluster. Then a sized plan for a 10M-line monorepo,
from the measured lines per chunk, per-worker throughput, scaling and writer ceiling; a GPU
row only from a measured per-GPU figure (``--gpu-chunks-per-s``, e.g. from gpu_flash.py).

    python benchmarks/cluster_bench.py [--tree DIR] [--gpu-chunks-per-s X]

Default tree: the Flask 3.1.1 sdist (fetched once by index_bench.py into benchmarks/.work/).
Prints a table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line
from index_bench import SDIST, fetch_sdist

EXE = str(Path(sys.executable).with_name("codesearch"))
ISOLATED = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh"]
if os.geteuid() != 0:
    ISOLATED[1:2] = ["-r", "-n"]
MONOREPO_LINES = 10_000_000


def index(tree: Path, index_dir: Path, *engine: str) -> tuple[dict, float]:
    command = [EXE, "index", str(tree), "--index-dir", str(index_dir), "--json", *engine]
    if engine:
        command = [*ISOLATED, *command]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def ray_start_stop() -> float:
    code = (
        "import time; from codesearch.index.cluster import ClusterOptions, ray_session\n"
        "t = time.perf_counter()\n"
        "with ray_session(ClusterOptions(workers=2)): pass\n"
        "print(time.perf_counter() - t)"
    )
    done = subprocess.run([*ISOLATED, sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def indexed_lines(tree: Path, index_dir: Path) -> int:
    from codesearch.store import Store

    store = Store.open(index_dir)
    total = 0
    for path in store.file_catalog():
        with contextlib.suppress(OSError), (tree / path).open("rb") as handle:
            total += sum(1 for _ in handle)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help=f"folder to index (default: the {SDIST} sdist)")
    parser.add_argument("--gpu-chunks-per-s", type=float, help="measured chunks/s of one GPU worker")
    args = parser.parse_args()
    tree = args.tree or fetch_sdist(SDIST)
    label = str(args.tree) if args.tree else f"{SDIST} sdist"

    runs: dict[str, tuple[dict, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as tmp:
        runs["local engine"] = index(tree, Path(tmp) / "local")
        for workers in (1, 2):
            name = f"ray, {workers} worker{'s' if workers > 1 else ''}"
            runs[name] = index(tree, Path(tmp) / f"ray{workers}", "--engine", "ray", "--workers", str(workers))
        lines = indexed_lines(tree, Path(tmp) / "local")
    startup = ray_start_stop()

    local_stats, local_wall = runs["local engine"]
    chunks = local_stats["chunks"]
    rows = [
        "| engine | wall s | chunks/s | vs local | driver write s | writer ceiling chunks/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, (stats, wall) in runs.items():
        assert stats["chunks"] == chunks, (name, stats["chunks"], chunks)
        write = max(stats.get("write_seconds", 0.0), 1e-3)
        speed = f"{chunks / wall:.1f} | {local_wall / wall:.2f}x"
        rows.append(f"| {name} | {wall:.1f} | {speed} | {write:.1f} | {chunks / write:,.0f} |")

    one = chunks / runs["ray, 1 worker"][1]
    two = chunks / runs["ray, 2 workers"][1]
    scaling = two / (2 * one)
    writer = chunks / max(runs["ray, 2 workers"][0].get("write_seconds", 0.0), 1e-3)
    lines_per_chunk = lines / chunks
    target = MONOREPO_LINES / lines_per_chunk
    plan = [
        "",
        f"Sized plan for a {MONOREPO_LINES:,}-line monorepo: {lines:,} lines in {chunks:,} chunks here "
        f"({lines_per_chunk:.1f} lines/chunk) → about {target:,.0f} chunks. Measured per-worker "
        f"throughput {one:.1f} chunks/s (Ray, 1 CPU worker, this machine, whole run), 2-worker scaling "
        f"efficiency {scaling:.0%} on this 2-core machine, single-writer ceiling {writer:,.0f} chunks/s.",
        "",
        "| workers | kind | chunks/s (workers x per-worker, capped by the writer) | hours |",
        "| --- | --- | --- | --- |",
    ]
    for n in (1, 8, 32, 128):
        rate = min(n * one, writer)
        plan.append(f"| {n} | CPU worker like this one (1 core) | {rate:,.0f} | {target / rate / 3600:.2f} |")
    if args.gpu_chunks_per_s:
        for n in (1, 4, 8):
            rate = min(n * args.gpu_chunks_per_s, writer)
            plan.append(
                f"| {n} | GPU worker (measured {args.gpu_chunks_per_s:,.0f} chunks/s) | {rate:,.0f} | "
                f"{target / rate / 3600:.2f} |"
            )
    else:
        plan.append("| n | GPU worker | not measured: no GPU in this run (pass --gpu-chunks-per-s) | |")

    body = [
        machine_line(),
        "",
        f"Tree: {label}, {local_stats['files']} files, {chunks:,} chunks; model {local_stats['model']}, "
        f"every run from scratch (model load included). Local Ray cluster start + stop: {startup:.1f} s.",
        "",
        *rows,
        *plan,
    ]
    print("\n".join(body))
    append_results("Cluster indexing: local engine vs Ray", "python benchmarks/cluster_bench.py", body)


if __name__ == "__main__":
    main()
