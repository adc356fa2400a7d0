"""Readers and the writer at the same time: a reader never sees a half-applied update (a file's
rows are all old or all new, never none or both), and no query counts rows: "fully embedded"
and the counts come from the meta the writer commits, mid-dense-pass too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import chunk_row
from test_stopping import write_tree

from codesearch import Indexer
from codesearch.index.indexer import IndexStopped
from codesearch.index.runs import Progress
from codesearch.search import Searcher
from codesearch.store import FileRecord, Remote, Store, lance, lexical_terms

EXE = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
EDITS = 200


class CountingTable:
    """A LanceDB table that records each ``count_rows`` call made on it (and does the rest as is)."""

    def __init__(self, table: Any, calls: list[str]) -> None:
        self._table, self._calls = table, calls

    def count_rows(self, *args: Any, **kwargs: Any) -> int:
        self._calls.append(repr(args or kwargs))
        return int(self._table.count_rows(*args, **kwargs))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def count_calls(store: Store) -> list[str]:
    calls: list[str] = []
    store.chunks, store.files, store.vectors = (
        CountingTable(t, calls) for t in (store.chunks, store.files, store.vectors)
    )
    return calls


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory, tiny_modernbert: Path) -> dict[str, Path]:
    """A complete index, and one whose writer stopped after its first dense batch (mid-dense-pass)."""
    base = tmp_path_factory.mktemp("atomic")
    root = base / "tree"
    write_tree(root, 60)
    Indexer(root, base / "complete", model=str(tiny_modernbert)).run()
    stop = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.phase == "embedding" and progress.chunks_embedded:
            stop.set()

    with pytest.raises(IndexStopped):
        Indexer(root, base / "partial", model=str(tiny_modernbert), stop=stop, on_progress=on_progress).run()
    return {"complete": base / "complete", "partial": base / "partial", "root": root}


def made_rows(path: str, count: int, vector: np.ndarray, embedded: bool) -> list[dict[str, Any]]:
    return [
        chunk_row(
            path,
            i,
            vector,
            embedded,
            id=f"{path}-{i}-{embedded}",
            vkey=f"{path}-{i}-{embedded}",
            symbol=f"stale_{i}",
            text=f"def stale_{i}(): pass",
            terms=lexical_terms(f"stale_{i}"),
        )
        for i in range(count)
    ]


def embedded_rows(index_dir: Path) -> tuple[int, int]:
    rows = Store.open(index_dir).chunk_rows()
    return sum(1 for row in rows if row[-1]), len(rows)


@pytest.mark.slow  # the tiny random model (torch)
@pytest.mark.parametrize("which", ["complete", "partial"])
def test_queries_count_no_rows(indexes: dict[str, Path], which: str) -> None:
    index_dir = indexes[which]
    embedded, total = embedded_rows(index_dir)
    assert (0 < embedded < total) if which == "partial" else embedded == total
    searcher = Searcher(index_dir)
    calls = count_calls(searcher.store)
    vector = searcher.embedder.embed_query("handle the request items")
    dense = searcher.store.dense(vector, total)  # every row it may return
    assert searcher.search("handle the request items", k=5, mode="dense")
    assert searcher.search("handler request weight", k=5, mode="hybrid")
    assert searcher.search("handler request weight", k=5, mode="lexical")
    assert searcher.dense_coverage() == pytest.approx(embedded / total)
    assert calls == [], "queries read the counts from the meta, they count no rows"
    assert len(dense) == embedded  # the rows still waiting for the dense pass are never dense hits
    unembedded = {
        (path, start, end) for path, start, end, _s, _id, _k, done in Store.open(index_dir).chunk_rows() if not done
    }
    assert not {(h.path, h.start_line, h.end_line) for h in dense} & unembedded


@pytest.mark.slow
def test_status_mid_dense_pass_reports_the_committed_counts(indexes: dict[str, Path]) -> None:
    index_dir = indexes["partial"]
    embedded, total = embedded_rows(index_dir)
    done = subprocess.run(
        [EXE, "status", "--index-dir", str(index_dir), "--json"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    files = len(Store.open(index_dir).file_catalog())
    assert (status["files"], status["chunks"], status["chunks_embedded"]) == (files, total, embedded)


@pytest.mark.slow
def test_a_commit_newer_than_the_meta_never_returns_unembedded_rows(tmp_path: Path, indexes: dict[str, Path]) -> None:
    """A reader's meta may say "fully embedded" while its view of the table already holds rows
    without vectors (it read the meta just before the writer said otherwise and committed them;
    its view of the tables refreshes on its own clock): dense search still leaves them out."""
    index_dir = tmp_path / "index"
    shutil.copytree(indexes["complete"], index_dir)
    reader = Store.open(index_dir)
    probe = np.full(reader.dimension, reader.dimension**-0.5, dtype=np.float32)
    assert reader.counts()["complete"] and reader.dense(probe, 3)
    meta = (index_dir / "meta.json").read_bytes()
    writer = Store.open(index_dir, writable=True)
    rows = made_rows("new.py", 5, probe, embedded=False)  # whatever such a row holds, meaning never finds it
    writer.replace_files([FileRecord("new.py", 10, 1, "h", "python", len(rows))], rows)
    (index_dir / "meta.json.tmp").write_bytes(meta)  # the meta as it was before that commit
    os.replace(index_dir / "meta.json.tmp", index_dir / "meta.json")
    fresh = Store.open(index_dir)
    for store in (reader, fresh):
        assert store.counts()["complete"]
        hits = store.dense(probe, 10)
        assert hits and all(hit.path != "new.py" for hit in hits)


@pytest.mark.slow
def test_a_reader_told_complete_sees_every_vector(
    tmp_path: Path, indexes: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The meta is written after the commits it counts, but a reader's view of the tables
    refreshes on its own clock: once its meta says "complete", its view holds no row without a
    vector (else a hybrid search ranked a file by words only while reporting full coverage)."""
    index_dir = tmp_path / "index"
    shutil.copytree(indexes["partial"], index_dir)
    monkeypatch.setattr(lance, "READ_CONSISTENCY_S", 3600.0)  # a view that would lag for an hour
    reader = Store.open(index_dir)
    assert not reader.counts()["complete"]
    assert reader.chunks.count_rows("embedded = false")
    Indexer(indexes["root"], index_dir, model=str(Store.read_meta(index_dir)["model_name"])).run()
    assert reader.counts()["complete"]
    assert reader.chunks.count_rows("embedded = false") == 0, "the view matches the meta it read"
    probe = np.full(reader.dimension, reader.dimension**-0.5, dtype=np.float32)
    assert len(reader.dense(probe, 10_000)) == reader.counts()["chunks"]


@pytest.mark.slow
def test_a_reader_never_sees_a_half_applied_update(tmp_path: Path, tiny_modernbert: Path) -> None:
    """A reader polls one file's rows while a writer replaces that file 200 times (lexical then
    dense commit each time, as a watcher does): it sees all of one version's rows, never none,
    never some of both, never a row twice."""
    root, index_dir = tmp_path / "tree", tmp_path / "index"
    write_tree(root, files=3)
    target = root / "pkg0" / "mod_0.py"
    versions = [
        "\n\n".join(f"def alpha_{j}(x):\n    return x + {j}\n" for j in range(3)),
        "# edited\n\n" + "\n\n".join(f"def beta_{j}(y, z):\n    return y * z - {j}\n" for j in range(5)),
    ]
    rel = "pkg0/mod_0.py"
    indexer = Indexer(root, index_dir, model=str(tiny_modernbert), compact=False)
    expected = []
    stamp = 1_700_000_000_000_000_000
    for version in versions:
        target.write_text(version)
        stamp += 1_000_000_000
        os.utime(target, ns=(stamp, stamp))
        indexer.run()
        expected.append(sorted((h.start_line, h.end_line, h.symbol) for h in Store.open(index_dir).file_chunks([rel])))
    assert expected[0] and expected[1] and expected[0] != expected[1]
    done = threading.Event()
    seen: list[list[tuple[int, int, str]]] = []
    failures: list[BaseException] = []

    def poll() -> None:
        long_lived = Store.open(index_dir)
        try:
            while not done.is_set():
                for store in (long_lived, Store.open(index_dir)):  # one lags up to READ_CONSISTENCY_S, one is fresh
                    seen.append(sorted((h.start_line, h.end_line, h.symbol) for h in store.file_chunks([rel])))
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for edit in range(EDITS):
            target.write_text(versions[edit % 2])
            stamp += 1_000_000_000
            os.utime(target, ns=(stamp, stamp))
            indexer.run(paths=[rel])
    finally:
        done.set()
        reader.join(60)
    assert not failures, failures
    assert len(seen) > EDITS  # the reader polled throughout
    odd = [rows for rows in seen if rows not in expected]
    assert not odd, f"{len(odd)} of {len(seen)} reads saw a half-applied update, e.g. {odd[0]}"


def test_a_remote_index_keeps_its_counts_in_its_meta_table(tmp_path: Path) -> None:
    """An object-store index: "not fully embedded" is in its meta table before such rows are, and
    the counts with the writer's next meta write (one table version per run, not per batch)."""
    location = Remote(f"file://{tmp_path}/remote index")
    writer = Store.create(location, root="/src", model_name="m", model_id="org/m", cache_key="k", dimension=4)
    vector = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    reader = Store.open(location)
    assert reader.counts() == dict(files=0, chunks=0, chunks_embedded=0, complete=True)
    writer.replace_files([FileRecord("a.py", 1, 1, "h", "python", 3)], made_rows("a.py", 3, vector, embedded=True))
    writer.replace_files([FileRecord("b.py", 1, 1, "h", "python", 2)], made_rows("b.py", 2, vector, embedded=False))
    assert Store.open(location).counts()["complete"] is False  # written before b.py's rows
    assert [hit.path for hit in Store.open(location).dense(vector, 10)] == ["a.py"] * 3
    writer.write_meta()  # the run's last meta write
    assert Store.open(location).counts() == dict(files=2, chunks=5, chunks_embedded=3, complete=False)
    writer.replace_files([FileRecord("b.py", 1, 2, "h", "python", 2)], made_rows("b.py", 2, vector, embedded=True))
    writer.write_meta()
    assert Store.open(location).counts() == dict(files=2, chunks=5, chunks_embedded=5, complete=True)
    writer.delete_files(["a.py"])
    writer.write_meta()
    assert Store.open(location).counts() == dict(files=1, chunks=2, chunks_embedded=2, complete=True)


def test_a_writer_killed_before_its_meta_write_leaves_counts_the_next_writer_corrects(tmp_path: Path) -> None:
    index_dir = tmp_path / "index"
    store = Store.create(index_dir, root="/src", model_name="m", model_id="org/m", cache_key="k", dimension=4)
    vector = np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32)
    store.replace_files([FileRecord("b.py", 1, 1, "h", "python", 2)], made_rows("b.py", 2, vector, embedded=False))
    lexical_meta = (index_dir / "meta.json").read_bytes()
    store.replace_files([FileRecord("b.py", 1, 1, "h", "python", 2)], made_rows("b.py", 2, vector, embedded=True))
    assert Store.open(index_dir).counts() == dict(files=1, chunks=2, chunks_embedded=2, complete=True)
    (index_dir / "meta.json").write_bytes(lexical_meta)  # killed after the dense commit, before its meta write
    assert Store.open(index_dir).counts() == dict(files=1, chunks=2, chunks_embedded=0, complete=False)
    assert [hit.path for hit in Store.open(index_dir).dense(vector, 5)] == ["b.py"] * 2  # searched all the same
    Store.open(index_dir, writable=True)  # the next writer
    assert Store.open(index_dir).counts() == dict(files=1, chunks=2, chunks_embedded=2, complete=True)
