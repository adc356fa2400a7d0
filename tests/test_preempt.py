"""Fresh while the backlog runs: during a watcher's first dense pass (many batches, nothing
cached), a saved file is found by words and by meaning, and a file opened in the editor gets its
vectors, before the backlog ends; the index still ends equal to a clean one. Ordering is what
is asserted (the backlog still unfinished when the edit is found), never a wall-clock bound."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_stopping import until, write_tree
from test_watch import assert_index_matches_disk

from codesearch import Indexer, Searcher, foreground
from codesearch.foreground import querying
from codesearch.index.runs import Progress
from codesearch.index.watcher import Watcher
from codesearch.store import Store

pytestmark = pytest.mark.slow

FILES = 120  # 720 distinct functions: three dense batches of the default model (nothing cached)


class FirstPass:
    """A watcher whose first update (the whole tree) runs on a thread, as the language server runs it."""

    def __init__(self, root: Path, index_dir: Path, embedder: Any) -> None:
        self.index_dir = index_dir
        self.progress: list[tuple[str, int, int]] = []  # (phase, files done, files total) as reported
        self.watcher = Watcher(root, index_dir, embedder=embedder, on_progress=self._seen)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._start, daemon=True)
        self.thread.start()

    def _seen(self, progress: Progress) -> None:
        self.progress.append((progress.phase, progress.files_done, progress.files_total))

    def _start(self) -> None:
        try:
            self.watcher.start()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def embedding(self) -> bool:
        """The dense pass has committed its first batch."""
        return any(phase == "embedding" and done for phase, done, _total in self.progress)

    def backlog(self) -> int:
        """Files of the index still without vectors (the first pass is not over while any are)."""
        return len(Store.open(self.index_dir).file_catalog(where="dense = false"))

    def finish(self) -> None:
        self.thread.join(600)
        assert not self.thread.is_alive(), "the first pass ends"
        assert self.error is None, self.error
        until(lambda: self.watcher.idle, 120, "the watcher to settle")


def test_a_file_saved_during_the_first_dense_pass_is_found_before_the_pass_ends(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, FILES)
    run = FirstPass(root, index_dir, embedder)
    try:
        until(run.embedding, 300, "the first dense pass")
        edited = root / "pkg1" / "mod_150.py"
        with edited.open("a", encoding="utf-8") as fh:
            fh.write("\n\ndef compute_invoice_total(items, tax_rate):\n    return sum(items) * (1 + tax_rate)\n")
        reader = Searcher(index_dir, embedder=embedder)

        def found(query: str, mode: str) -> bool:
            return any(r.symbol == "compute_invoice_total" for r in reader.search(query, k=5, mode=mode))

        until(lambda: found("compute_invoice_total", "lexical") or not run.thread.is_alive(), 300, "words")
        by_words = run.backlog()
        until(lambda: found("sum of the invoice items with tax", "dense") or not run.thread.is_alive(), 300, "meaning")
        by_meaning = run.backlog()
        reported = run.progress[-1]
        assert run.thread.is_alive(), "the edit was found while the first pass still ran"
        assert by_words > 0 and by_meaning > 0, "found by words and by meaning with the backlog unfinished"
        assert reported[0] == "embedding" and reported[1] < reported[2], reported  # progress: the backlog's
        run.finish()
    finally:
        run.watcher.stop()
    assert run.backlog() == 0
    assert_index_matches_disk(root, index_dir, embedder, tmp_path)


def test_a_file_opened_during_the_first_dense_pass_is_embedded_before_the_pass_ends(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, FILES)
    opened = "pkg0/mod_7.py"
    os.utime(root / opened, ns=(10**18, 10**18))  # the oldest file: the backlog's last (newest first)
    run = FirstPass(root, index_dir, embedder)
    try:
        until(run.embedding, 300, "the first dense pass")
        assert not Store.open(index_dir).file_catalog(paths=[opened])[opened].dense
        run.watcher.note_opened(opened)

        def embedded() -> bool:
            record = Store.open(index_dir).file_catalog(paths=[opened]).get(opened)
            return (record is not None and record.dense) or not run.thread.is_alive()

        until(embedded, 300, "the opened file's vectors")
        assert run.thread.is_alive() and run.backlog() > 0, "embedded before the backlog"
        run.finish()
    finally:
        run.watcher.stop()
    assert run.backlog() == 0
    assert_index_matches_disk(root, index_dir, embedder, tmp_path)


def test_a_saved_file_missing_many_vectors_gets_the_edits_at_once_and_the_rest_at_the_front(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    """A big file saved before its vectors came: urgent work embeds what the edit added (found by
    meaning in the same commit) and leaves the file's other chunks to the head of the backlog,
    instead of embedding the whole file before the backlog resumes."""
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, 20)
    big = root / "big.py"
    write_tree(tmp_path / "big", 1, functions=80)
    big.write_text((tmp_path / "big" / "pkg0" / "mod_0.py").read_text().replace("handler_0_", "big_handler_"))
    Indexer(root, index_dir, embedder=embedder).run(dense=False)  # a first pass stopped after its words
    with big.open("a", encoding="utf-8") as fh:
        fh.write("\n\ndef compute_invoice_total(items, tax_rate):\n    return sum(items) * (1 + tax_rate)\n")
    seen: list[tuple[bool, int, int, bool]] = []

    def urgent() -> list[str]:
        if not seen:  # the watcher's burst: the saved file
            seen.append((False, 0, 0, False))
            return ["big.py"]
        if len(seen) == 1:  # the next pre-emption point: urgent work is done, the backlog resumes
            store = Store.open(index_dir)
            record = store.file_catalog(paths=["big.py"])["big.py"]
            rows = store.file_chunks(["big.py"])
            hits = Searcher(index_dir, embedder=embedder).search("sum of invoice items with tax", k=3, mode="dense")
            embedded = len(store.chunks.search().where("path = 'big.py' AND embedded = true").limit(None).to_list())
            seen.append((record.dense, embedded, len(rows), any(h.symbol == "compute_invoice_total" for h in hits)))
        return []

    stats = Indexer(root, index_dir, embedder=embedder, urgent=urgent).run()
    assert len(seen) == 2, "pre-empted, then resumed"
    dense, embedded, rows, found = seen[1]
    assert found, "the edit is found by meaning as soon as urgent work is done"
    assert not dense and 1 <= embedded < rows // 2, f"{embedded} of {rows} chunks embedded by urgent work"
    assert stats.chunks_embedded == Store.open(index_dir).count_chunks(), "every vector computed once"
    assert all(record.dense for record in Store.open(index_dir).file_catalog().values())
    assert_index_matches_disk(root, index_dir, embedder, tmp_path)


def test_the_backlog_waits_while_a_query_is_in_flight(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A search in flight in the server's process holds the dense backlog between two slices (it
    does not share the cores with the model), and the pass resumes once the search ends."""
    monkeypatch.setattr(foreground, "MAX_HOLD_S", 60.0)  # the bound is the unit tests' concern
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, FILES)
    run = FirstPass(root, index_dir, embedder)
    try:
        until(run.embedding, 300, "the first dense pass")
        with querying():
            time.sleep(1.5)  # the slice under way ends (and its batch, when it was the last slice)
            held = run.backlog()
            time.sleep(3.0)  # a few batches' work on a free machine
            assert run.backlog() == held > 0, "no batch committed while a query was in flight"
        run.finish()
    finally:
        run.watcher.stop()
    assert run.backlog() == 0
