"""Memory of a long-lived watcher: RSS while a :class:`Watcher` absorbs thousands of one-file edits.

A generated tree of ``--files`` Python files (a few functions each) is indexed by a real
watcher (real file-system events, the offline default model), as the language server runs it.
Then ``--edits`` edits follow, one file at a time, round robin: each rewrites one function of
the file under a new name. After each edit the script waits until the watcher has absorbed it
(its update count moved and it is idle) and a long-lived reader (a :class:`Searcher`, as the
language server keeps one per folder) finds the new name by words; every tenth edit the reader
also runs a hybrid query. RSS (``VmRSS`` of /proc/self/status) is sampled every ``--every``
edits. The figure that matters is the growth after warm-up (the first ``--every`` edits: the
model loaded, the first compactions done), target: under 100 MiB over 10,000 edits.

    python benchmarks/watcher_memory.py [--files 300] [--edits 10000] [--every 500] [--minutes M] [--no-record]

``--minutes`` ends the edits early (the figures say how many ran): on a busy machine a watcher
update takes a second, not a tenth.

Prints a table (edits → RSS MiB) and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("LANCEDB_LOG", "error")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line

import codesearch
from codesearch import Searcher
from codesearch.embedding import load_embedder
from codesearch.index.watcher import Watcher

WORK = Path(__file__).resolve().parent / ".work" / "watcher_memory"
FUNCTIONS = 4  # per file, besides the one each edit renames


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmRSS in /proc/self/status (Linux only)")


def source(file: int, edit: int) -> str:
    parts = [f'"""Module {file} of the generated tree."""\n']
    for f in range(FUNCTIONS):
        parts.append(
            f"def helper_{file}_{f}(values, factor={f + 2}):\n"
            f'    """Scale the values of table {file} by a factor."""\n'
            f"    total = 0\n    for value in values:\n        total += value * factor\n    return total\n"
        )
    parts.append(
        f"def edited_function_{edit}(items, tax_rate):\n"
        f'    """Edit number {edit}: the invoice total with tax."""\n'
        f"    return sum(items) * (1 + tax_rate) + {edit}\n"
    )
    return "\n\n".join(parts)


def make_tree(root: Path, files: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for file in range(files):
        path = root / f"pkg{file % 10}" / f"module_{file}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source(file, -1 - file), encoding="utf-8")


def absorb(watcher: Watcher, reader: Searcher, before: int, name: str, hybrid: bool, timeout: float = 120) -> None:
    """Until the watcher has written the edit and the reader finds it."""
    deadline = time.monotonic() + timeout
    while not (watcher.updates > before and watcher.idle):
        if watcher.error is not None:
            raise SystemExit(f"the watcher failed: {watcher.error}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: the watcher did not absorb it within {timeout:.0f} s")
        time.sleep(0.002)
    while not any(h.symbol == name for h in reader.search(name, mode="lexical", k=3)):
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: absorbed but not found by the reader")
        time.sleep(0.01)
    if hybrid:
        reader.search(f"{name} invoice total with tax", k=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--edits", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=500, help="sample RSS every this many edits")
    parser.add_argument("--minutes", type=float, default=0, help="stop editing after this long (0: no limit)")
    parser.add_argument("--debounce", type=float, default=0.02, help="the watcher's quiet time (s) ending a burst")
    parser.add_argument("--note", default="", help="a line recorded above the table (e.g. which code ran)")
    parser.add_argument("--work", type=Path, default=WORK)
    parser.add_argument(
        "--reuse-index", action="store_true", help="start from the index an earlier run left (its vectors are reused)"
    )
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    root, index_dir = args.work / "tree", args.work / "index"
    make_tree(root, args.files)
    if not args.reuse_index:
        shutil.rmtree(index_dir, ignore_errors=True)

    print(f"code: {Path(codesearch.__file__).parent}", flush=True)
    started = time.perf_counter()
    embedder = load_embedder()
    watcher = Watcher(root, index_dir, embedder=embedder, debounce_s=args.debounce, max_wait_s=1.0)
    first = watcher.start()
    reader = Searcher(index_dir, embedder=embedder)
    gc.collect()
    samples: list[tuple[int, float, float]] = [(0, rss_mib(), 0.0)]
    print(f"indexed {first.files} files, {first.chunks} chunks in {time.perf_counter() - started:.0f} s", flush=True)
    print(f"| edits | RSS MiB | s per edit |\n| --- | --- | --- |\n| 0 | {samples[0][1]:.0f} | |", flush=True)
    last = time.perf_counter()
    stop_at = last + args.minutes * 60 if args.minutes else float("inf")
    try:
        for edit in range(1, args.edits + 1):
            file = edit % args.files
            path = root / f"pkg{file % 10}" / f"module_{file}.py"
            before = watcher.updates
            path.write_text(source(file, edit), encoding="utf-8")
            absorb(watcher, reader, before, f"edited_function_{edit}", hybrid=edit % 10 == 0)
            out_of_time = time.perf_counter() > stop_at
            if edit % args.every == 0 or edit == args.edits or out_of_time:
                gc.collect()
                now = time.perf_counter()
                samples.append((edit, rss_mib(), (now - last) / (edit - samples[-1][0])))
                last = now
                print(f"| {edit} | {samples[-1][1]:.0f} | {samples[-1][2]:.3f} |", flush=True)
            if out_of_time:
                print(f"stopped after {edit} edits: --minutes {args.minutes:g} ran out", flush=True)
                break
    finally:
        watcher.stop()
    total = time.perf_counter() - started

    warm = next((s for s in samples if s[0] >= args.every), samples[0])
    growth = samples[-1][1] - warm[1]
    per_k = growth / max(1, samples[-1][0] - warm[0]) * 1000
    table = ["| edits | RSS MiB | s per edit |", "| --- | --- | --- |"]
    table += [f"| {n:,} | {r:.0f} | {f'{s:.3f}' if n else ''} |" for n, r, s in samples]
    summary = (
        f"RSS after warm-up ({warm[0]:,} edits): {warm[1]:.0f} MiB; after {samples[-1][0]:,}: {samples[-1][1]:.0f} MiB "
        f"({growth:+.0f} MiB, {per_k:+.1f} MiB per 1,000 edits; target: within 100 MiB). Run: {total / 60:.1f} min."
    )
    print("\n".join(table), summary, sep="\n", flush=True)
    if not args.no_record:
        command = (
            "python benchmarks/watcher_memory.py"
            + "".join(
                f" --{k} {v}"
                for k, v in (
                    ("files", args.files),
                    ("edits", args.edits),
                    ("every", args.every),
                    ("minutes", args.minutes),
                )
                if v != parser.get_default(k)
            )
            + (" --reuse-index" if args.reuse_index else "")
        )
        tree = (
            f"Tree: {args.files} generated Python files, {first.chunks} chunks; one-file edits (a function "
            f"renamed), each absorbed by a Watcher (debounce {args.debounce} s, offline default model) and "
            "found by a long-lived Searcher (lexical every edit, hybrid every tenth)."
        )
        body = [machine_line(), tree, *([args.note] if args.note else []), "", *table, "", summary]
        append_results(f"Memory of a long-lived watcher ({samples[-1][0]:,} one-file edits)", command, body)


if __name__ == "__main__":
    main()
