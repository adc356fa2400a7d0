"""Freshness of a live index on a real tree of thousands of files, with the offline default model.

Default tree: the Django 5.1.4 sdist (downloaded once into benchmarks/.work/, about 4,300
files once translation catalogues ``*.po`` are ignored), copied and made a git repository.
Measured in one run, in-process (as the language server would run it):

- fresh index: seconds until the lexical pass is done (the tree is searchable by words) and
  until every vector is computed;
- no-change re-index: ``codesearch index`` as a subprocess (process start included) and in-process;
- save-to-searchable: with a :class:`Watcher` running, append a new function to a random
  Python file; time from the write until a long-lived :class:`Searcher` (hybrid mode) returns
  it; p50/p95 over ``--edits`` edits;
- branch switch: ``git checkout`` of a branch that changes 1,000 files, and back; seconds until
  the watcher has absorbed it, with the chunks embedded.

``--first-pass`` measures save-to-searchable while the first dense pass runs instead: a fresh
index of the tree by a :class:`Watcher` (its first update on a thread, as the language server
runs it); once the dense pass has committed a batch, ``--edits`` edits (one new function appended
to a random Python file, a random 0.5-1.5 s apart), each timed from the write until the catalog
holds its new rows (the writer's share: urgent work commits the new function with its vector;
the rest of the file, when it had no vectors yet, goes to the front of the backlog), and until
one long-lived reader finds it by words (lexical mode) and another by meaning (dense mode): the
readers start querying once the catalog holds the rows (a query before that cannot find them;
readers querying without pause from the write on would take the CPU the writer needs: 3 threads
of flat scans on 2 cores), each query timed in full; then the watcher stops, the pass unfinished
(about 4 minutes in all on 2 quiet cores).

    python benchmarks/freshness.py [--edits 20] [--first-pass] [--no-record]

Prints a table and appends it to benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_results, machine_line
from index_bench import WORK, fetch_sdist, percentile

from codesearch import Indexer, Searcher
from codesearch.embedding import load_embedder
from codesearch.index import IndexStats, Progress
from codesearch.index.watcher import Watcher
from codesearch.store import Store

SDIST = "Django==5.1.4"
IGNORES = ("*.po",)


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@example.com", *args], cwd=root, check=True, capture_output=True
    )


def prepare(tree: Path, work: Path) -> Path:
    root = work / "tree"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(tree, root, symlinks=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    return root


def make_branch(root: Path, files: int) -> int:
    """A branch 'wide' that appends a function to ``files`` Python files; returns how many."""
    git(root, "checkout", "-q", "-b", "wide")
    paths = sorted(p for p in root.rglob("*.py") if ".git" not in p.parts)[:files]
    for i, path in enumerate(paths):
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"\n\ndef branch_helper_{i}(value):\n    return value * {i + 2}\n")
    git(root, "commit", "-qam", "wide")
    git(root, "checkout", "-q", "main")
    return len(paths)


def wait_idle(watcher: Watcher, before: int, timeout: float = 1800) -> None:
    deadline = time.monotonic() + timeout
    while not (watcher.updates > before and watcher.idle):
        if time.monotonic() > deadline:
            raise SystemExit("the watcher did not settle")
        time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", type=Path, help=f"real tree (default: the {SDIST} sdist)")
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--branch-files", type=int, default=1000)
    parser.add_argument("--no-change-only", action="store_true", help="only the no-change re-index")
    parser.add_argument("--index-dir", type=Path, help="with --no-change-only: a complete index of the tree")
    parser.add_argument("--edits-only", action="store_true", help="only save-to-searchable, on an earlier run's index")
    parser.add_argument("--lexical-only", action="store_true", help="only time the fresh index's lexical pass")
    parser.add_argument("--first-pass", action="store_true", help="only save-to-searchable during the first dense pass")
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    work = WORK / "freshness"
    work.mkdir(parents=True, exist_ok=True)
    if args.no_change_only:  # on the tree of an earlier run and a complete index of it
        figures = no_change(work / "tree", args.index_dir or work / "index")
        print(figures)
        if not args.no_record:
            body = [machine_line(), f"Index: {args.index_dir or work / 'index'} (complete; no model loads).", ""]
            body += ["| figure | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in figures]]
            append_results(
                "Freshness: no-change re-index (Django sdist)", "python benchmarks/freshness.py --no-change-only", body
            )
        return
    if args.edits_only:  # on the tree and index of an earlier full run
        root, index_dir, embedder = work / "tree", work / "index", load_embedder()
        git(root, "checkout", "-q", "-f", "main")
        with Watcher(root, index_dir, embedder=embedder, extra_ignores=IGNORES) as watcher:
            figure = save_to_searchable(root, index_dir, embedder, watcher, args.edits)
        print(figure)
        if not args.no_record:
            body = [machine_line(), "On the Django tree and index of the full run above.", "", "| figure | value |"]
            body += ["| --- | --- |", f"| {figure[0]} | {figure[1]} |"]
            append_results("Freshness: save-to-searchable", "python benchmarks/freshness.py --edits-only", body)
        return
    root = prepare(args.tree or fetch_sdist(SDIST), work)
    index_dir = work / "index"
    shutil.rmtree(index_dir, ignore_errors=True)
    figures: list[tuple[str, str]] = []
    if args.first_pass:
        figures = during_first_pass(root, index_dir, load_embedder(), args.edits)
        table = ["| figure | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in figures]]
        print("\n".join(table))
        if not args.no_record:
            append_results(
                "Freshness: save-to-searchable during the first dense pass (Django sdist)",
                " ".join(["python benchmarks/freshness.py", *sys.argv[1:]]),
                [
                    machine_line(),
                    "Model: the offline default. A fresh index by a watcher; the edits start once its dense "
                    "pass has committed a batch. For comparison, save-to-searchable on a finished index "
                    "(hybrid query) was 547 / 852 ms p50 / p95 in the steady-state run above.",
                    "",
                    *table,
                ],
            )
        return

    # fresh index: lexical pass, then dense pass
    started = time.perf_counter()
    embedder = load_embedder()
    lexical_at: list[float] = []
    first_results: list[float] = []

    def first_searchable(progress: Progress) -> None:  # a reader polls as the lexical pass commits
        if first_results or progress.phase != "indexing" or not progress.chunks_done:
            return
        if Searcher(index_dir, embedder=embedder).search("request", mode="lexical", k=1):
            first_results.append(time.perf_counter() - started)

    stats = Indexer(
        root,
        index_dir,
        embedder=embedder,
        extra_ignores=IGNORES,
        on_progress=first_searchable,
        on_lexical_done=lambda s: lexical_at.append(time.perf_counter() - started),
    ).run(**({"dense": False} if args.lexical_only else {}))
    total = time.perf_counter() - started
    figures += [
        ("tree", f"{args.tree or SDIST} as a git repo, `*.po` ignored: {stats.files} files, {stats.chunks} chunks"),
        ("fresh index: first lexical results (model load included)", f"{first_results[0]:.1f} s"),
        ("fresh index: every file searchable by words (lexical pass done)", f"{lexical_at[0]:.1f} s"),
    ]
    if args.lexical_only:
        print(figures, flush=True)
        if not args.no_record:
            table = ["| figure | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in figures]]
            append_results(
                "Freshness: a fresh index's first lexical results (Django sdist)",
                "python benchmarks/freshness.py --lexical-only",
                [machine_line(), "", *table],
            )
        return
    figures.append(
        ("fresh index: every vector computed", f"{total:.0f} s ({stats.chunks_embedded / total:.0f} chunks/s)")
    )
    print(figures, flush=True)

    figures += no_change(root, index_dir)

    # save-to-searchable with a watcher and a long-lived reader
    updates: list[IndexStats] = []
    with Watcher(root, index_dir, embedder=embedder, on_update=updates.append, extra_ignores=IGNORES) as watcher:
        figures.append(save_to_searchable(root, index_dir, embedder, watcher, args.edits))
        print(figures[-1], flush=True)

        # branch switch of 1,000 files, and back
        changed = make_branch_while_watching(root, args.branch_files, watcher)
        for branch in ("wide", "main"):
            seen = len(updates)
            before = watcher.updates
            switched = time.perf_counter()
            git(root, "checkout", "-q", branch)
            wait_idle(watcher, before)
            time.sleep(0.5)
            while not watcher.idle:
                time.sleep(0.01)
            absorbed = time.perf_counter() - switched
            batch = updates[seen:]
            figures.append(
                (
                    f"branch switch to '{branch}' ({changed} files differ)",
                    f"{absorbed:.1f} s: {sum(u.files_changed for u in batch)} files re-read, "
                    f"{sum(u.chunks_embedded for u in batch)} chunks embedded, {len(batch)} update(s)",
                )
            )
            print(figures[-1], flush=True)

    table = ["| figure | value |", "| --- | --- |", *[f"| {k} | {v} |" for k, v in figures]]
    print("\n".join(table))
    if not args.no_record:
        append_results(
            "Freshness of a live index (Django sdist)",
            "python benchmarks/freshness.py",
            [machine_line(), "Model: the offline default (all-MiniLM-L6-v2, bf16 autocast).", "", *table],
        )


def no_change(root: Path, index_dir: Path, repeats: int = 3) -> list[tuple[str, str]]:
    """A no-change re-index: the CLI (process start included; no model loads) and in-process."""
    exe = Path(sys.executable).parent / "codesearch"
    cli = [str(exe), "index", str(root), "--index-dir", str(index_dir), "--json", "--ignore", IGNORES[0]]
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run(
            cli, capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}
        )
        timings.append(time.perf_counter() - started)
        assert json.loads(done.stdout)["chunks_embedded"] == 0 and json.loads(done.stdout)["files_changed"] == 0
    again = Indexer(root, index_dir, extra_ignores=IGNORES).run()
    (index_dir / "snapshot.json").unlink(missing_ok=True)  # the slow path: open the tables, plan by catalog
    started = time.perf_counter()
    done = subprocess.run(cli, capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    slow = time.perf_counter() - started
    assert json.loads(done.stdout)["files_changed"] == 0 and (index_dir / "snapshot.json").exists()
    return [
        (
            f"no-change re-index, CLI (process start included, median of {repeats})",
            f"{statistics.median(timings):.2f} s",
        ),
        ("no-change re-index, in-process", f"{again.seconds:.2f} s"),
        ("no-change re-index, CLI, no stat snapshot (tables opened, catalog compared)", f"{slow:.2f} s"),
    ]


def save_to_searchable(root: Path, index_dir: Path, embedder, watcher: Watcher, edits: int) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """Append a new function to a random Python file; time until a long-lived reader's hybrid
    search returns it."""
    reader = Searcher(index_dir, embedder=embedder)
    rng = random.Random(7)
    candidates = sorted(p for p in root.rglob("*.py") if ".git" not in p.parts and "tests" not in p.parts)
    latencies: list[float] = []
    for i in range(edits):
        path = rng.choice(candidates)
        name = f"compute_invoice_total_{i}_{rng.randrange(10**6)}"
        before = watcher.updates
        written = time.perf_counter()
        with path.open("a", encoding="utf-8") as fh:
            fh.write(f"\n\ndef {name}(items, tax_rate):\n    return sum(items) * (1 + tax_rate)\n")
        while not any(r.symbol == name for r in reader.search(f"{name} invoice total with tax", k=5)):
            if time.perf_counter() - written > 60:
                raise SystemExit(f"edit {i} never became searchable")
            time.sleep(0.01)
        latencies.append(time.perf_counter() - written)
        wait_idle(watcher, before)
    return (
        f"save-to-searchable, one-function edit (p50 / p95 of {edits}, hybrid query)",
        f"{statistics.median(latencies) * 1000:.0f} / {percentile(latencies, 0.95) * 1000:.0f} ms",
    )


def during_first_pass(root: Path, index_dir: Path, embedder, edits: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Save-to-searchable by words and by meaning while a watcher's first dense pass runs."""
    reported: list[Progress] = []
    watcher = Watcher(root, index_dir, embedder=embedder, extra_ignores=IGNORES, on_progress=reported.append)
    failed: list[BaseException] = []

    def first_update() -> None:
        try:
            watcher.start()
        except BaseException as exc:  # IndexStopped when stopped below, with the pass unfinished
            failed.append(exc)

    started = time.perf_counter()
    thread = threading.Thread(target=first_update, daemon=True)
    thread.start()
    while not (reported and reported[-1].phase == "embedding" and reported[-1].chunks_embedded):
        if not thread.is_alive():
            raise SystemExit(f"the first update ended before its dense pass: {failed}")
        time.sleep(0.05)
    dense_at = time.perf_counter() - started
    rng = random.Random(11)
    candidates = sorted(p for p in root.rglob("*.py") if ".git" not in p.parts and "tests" not in p.parts)
    words: list[float] = []
    meaning: list[float] = []
    committed: list[float] = []
    READERS["catalog"] = Store.open(index_dir)
    try:
        for i in range(edits):
            time.sleep(rng.uniform(0.5, 1.5))  # edits land anywhere in a batch: its slices, its commit
            name = f"compute_invoice_total_{i}_{rng.randrange(10**6)}"
            found = {"lexical": 0.0, "dense": 0.0, "committed": 0.0}
            path = rng.choice(candidates)
            rel = path.relative_to(root).as_posix()
            written = time.perf_counter()
            with path.open("a", encoding="utf-8") as fh:
                fh.write(f"\n\ndef {name}(items, tax_rate):\n    return sum(items) * (1 + tax_rate)\n")
            size = path.stat().st_size
            poll_catalog(rel, size, written, found)  # cheap: a stat of the meta, then one catalog row
            pollers = [  # then, as a user's query would: each reader queries until it finds the function
                threading.Thread(target=poll, args=(index_dir, embedder, query, mode, name, written, found))
                for mode, query in (("lexical", name), ("dense", f"{name} invoice total with tax"))
            ]
            for poller in pollers:
                poller.start()
            for poller in pollers:
                poller.join()
            if not all(found.values()):
                raise SystemExit(f"edit {i} was not found within 60 s: {found}")
            words.append(found["lexical"])
            meaning.append(found["dense"])
            committed.append(found["committed"])
            print(
                f"edit {i}: rows committed {found['committed'] * 1000:.0f} ms, found by words "
                f"{found['lexical'] * 1000:.0f} ms, by meaning {found['dense'] * 1000:.0f} ms",
                flush=True,
            )
        progress = reported[-1]
        if not thread.is_alive() or progress.phase != "embedding" or progress.files_done >= progress.files_total:
            raise SystemExit("the first dense pass ended before the edits did: the figures are not of a backlog")
    finally:
        watcher.stop(timeout=120)
        thread.join(120)

    def ms(latencies: list[float]) -> str:
        return f"{statistics.median(latencies) * 1000:.0f} / {percentile(latencies, 0.95) * 1000:.0f} ms"

    return [
        ("tree", f"{SDIST} as a git repo, `*.po` ignored"),
        ("first pass: dense pass under way (first batch committed)", f"{dense_at:.0f} s after start"),
        (f"save to rows committed (the writer's share; p50 / p95 of {edits})", ms(committed)),
        (f"save-to-searchable by words during the first dense pass (p50 / p95 of {edits}, lexical query)", ms(words)),
        (f"save-to-searchable by meaning during the first dense pass (p50 / p95 of {edits}, dense query)", ms(meaning)),
        (
            "backlog when the edits ended",
            f"{progress.files_done} of {progress.files_total} files embedded ({progress.chunks_embedded} chunks) "
            f"{time.perf_counter() - started - dense_at:.0f} s into the dense pass",
        ),
    ]


def poll(index_dir: Path, embedder, query: str, mode: str, name: str, written: float, found: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
    """A long-lived reader's view: search ``query`` until ``name`` is among the results (60 s at most)."""
    reader = READERS.setdefault(mode, Searcher(index_dir, embedder=embedder))
    while time.perf_counter() - written < 60:
        if any(r.symbol == name for r in reader.search(query, k=10, mode=mode)):
            found[mode] = time.perf_counter() - written
            return
        time.sleep(READER_PAUSE_S)


def poll_catalog(rel: str, size: int, written: float, found: dict[str, float]) -> None:
    """The writer's share: until the catalog holds ``rel`` at ``size`` (its rows are committed), as
    a long-lived read-only store sees it (``counts`` first: a changed meta brings its view up to date)."""
    store = READERS["catalog"]
    while time.perf_counter() - written < 60:
        store.counts()
        record = store.file_catalog(paths=[rel]).get(rel)
        if record is not None and record.size == size:
            found["committed"] = time.perf_counter() - written
            return
        time.sleep(0.05)


READERS: dict[str, Any] = {}  # one long-lived reader per mode, as an editor keeps its searcher; and a store
READER_PAUSE_S = 0.1  # between two queries of a reader (each one costs the writer CPU time)


def make_branch_while_watching(root: Path, files: int, watcher: Watcher) -> int:
    """Build the branch, then let the watcher absorb the commits' file churn before timing."""
    before = watcher.updates
    changed = make_branch(root, files)
    wait_idle(watcher, before)
    while not watcher.idle:
        time.sleep(0.01)
    return changed


if __name__ == "__main__":
    main()
