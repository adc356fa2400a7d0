"""The vector index (ANN) of a big chunk table: built once the dense pass is done, as exact as
measured on real vectors, never a flat scan of the indexed rows, and usable while the writer adds
rows and rebuilds it."""

from __future__ import annotations

import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import chunk_row

from codesearch.index import Indexer
from codesearch.store import FileRecord, Store, lance, lexical_terms

DIM = 32


def unit(rng: np.random.Generator, centre: np.ndarray | None = None) -> np.ndarray:
    v = rng.standard_normal(DIM).astype(np.float32) + (0 if centre is None else 3 * centre)
    return v / np.linalg.norm(v)


def add_file(store: Store, path: str, vectors: list[np.ndarray], embedded: bool = True) -> None:
    rows = [
        chunk_row(path, i, v if embedded else np.zeros(DIM, np.float32), embedded=embedded, terms=lexical_terms(path))
        for i, v in enumerate(vectors)
    ]
    store.replace_files([FileRecord(path, 10, 1, "h", "python", len(rows))], rows)


def clustered_store(tmp_path: Path, files: int = 40, per_file: int = 20) -> tuple[Store, np.random.Generator]:
    """A store of ``files * per_file`` rows in 16 clusters (as real embeddings are), not yet compacted."""
    rng = np.random.default_rng(3)
    centres = [unit(rng) for _ in range(16)]
    index = tmp_path / "index"
    store = Store.create(index, root="/src", model_name="m", model_id="org/m", cache_key="k", dimension=DIM)
    for f in range(files):
        add_file(store, f"pkg/f{f}.py", [unit(rng, centres[(f + i) % 16]) for i in range(per_file)])
    return store, rng


def vector_index(store: Store) -> Any:
    return next((ix for ix in store.chunks.list_indices() if ix.columns == ["vector"]), None)


def test_a_small_table_has_no_vector_index_and_a_big_one_gets_it_once_dense(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lance, "ANN_MIN_ROWS", 500)
    store, rng = clustered_store(tmp_path, files=20)  # 400 rows: below the threshold
    store.finish_writes()
    assert vector_index(store) is None and lance.ANN not in store.meta
    add_file(store, "pkg/late.py", [unit(rng) for _ in range(150)], embedded=False)  # 550 rows, 150 waiting
    store.finish_writes()
    assert vector_index(store) is None  # partitions are not trained on the zeros of rows still waiting
    add_file(store, "pkg/late.py", [unit(rng) for _ in range(150)])
    store.finish_writes()
    assert vector_index(store) is not None and store.meta[lance.ANN] == {"rows": 550, "partitions": 23}
    kinds = {tuple(ix.columns): ix.index_type for ix in store.chunks.list_indices()}
    assert kinds[("path",)] == "BTree" and kinds[("embedded",)] == "Bitmap" and kinds[("language",)] == "Bitmap"
    assert not store.ensure_vector_index()  # built once; again only when the table has doubled


def test_queries_use_the_index_and_find_rows_written_after_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lance, "ANN_MIN_ROWS", 500)
    store, rng = clustered_store(tmp_path)
    store.finish_writes()
    reader = Store.open(store.directory)
    probe = unit(rng)
    plan = reader.chunks.search(probe).distance_type("cosine").minimum_nprobes(reader._probes()).explain_plan(True)
    assert "ANNIvfPartition" in plan and reader._probes() < store.meta[lance.ANN]["partitions"]
    fresh = [unit(rng) for _ in range(3)]
    add_file(store, "pkg/new.py", fresh)  # not in the vector index yet: searched exactly
    for i, vector in enumerate(fresh):
        (top,) = reader.dense(vector, 1)
        assert (top.path, top.start_line) == ("pkg/new.py", i + 1)
    store.finish_writes()  # the compaction adds them to the index, untrained
    stats = store.chunks.index_stats(vector_index(store).name)
    assert stats.num_unindexed_rows == 0 and stats.num_indexed_rows == 803
    assert [(h.path, h.start_line) for h in reader.dense(fresh[0], 1)] == [("pkg/new.py", 1)]
    # a file whose rows wait for vectors: a filtered query still finds only rows with vectors
    add_file(store, "pkg/waiting.py", [unit(rng) for _ in range(5)], embedded=False)
    assert all(h.path != "pkg/waiting.py" for h in reader.dense(probe, 50))


def test_queries_during_writes_and_a_rebuild_of_the_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lance, "ANN_MIN_ROWS", 500)
    store, rng = clustered_store(tmp_path)
    store.finish_writes()
    reader = Store.open(store.directory)
    anchor = reader.dense(unit(rng), 1)[0]
    anchor_vector = store.chunks.search().where(f"id = '{anchor.path}:{anchor.start_line - 1}'").to_list()[0]["vector"]
    errors: list[BaseException] = []
    answers: list[int] = []
    done = threading.Event()

    def query() -> None:
        try:
            while not done.is_set():
                hits = reader.dense(np.asarray(anchor_vector, np.float32), 10)
                assert (hits[0].path, hits[0].start_line) == (anchor.path, anchor.start_line)
                assert len(reader.lexical("pkg f1", 5)) == 5
                answers.append(len(hits))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=query)
    thread.start()
    try:
        for f in range(40, 84):  # the table doubles (at f = 80): the index is trained again
            add_file(store, f"pkg/f{f}.py", [unit(rng) for _ in range(20)], embedded=f % 2 == 0)
            if f % 2:
                add_file(store, f"pkg/f{f}.py", [unit(rng) for _ in range(20)])
            if f % 10 == 0:
                store.finish_writes()
        store.finish_writes()
    finally:
        done.set()
        thread.join()
    assert not errors, errors[0]
    assert answers and set(answers) == {10}
    assert store.meta[lance.ANN]["rows"] == 1620  # retrained on the grown table (800 rows at first)
    assert vector_index(store) is not None


@pytest.mark.slow
def test_recall_on_real_vectors_of_a_real_package(tmp_path: Path, embedder, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Recall@10 of the vector index against exact search, with the offline default model's
    vectors of a package we did not write, at the probe share shipped."""
    import pathspec

    monkeypatch.setattr(lance, "ANN_MIN_ROWS", 200)
    root = tmp_path / "tree"
    shutil.copytree(Path(pathspec.__file__).parent, root / "pathspec", ignore=shutil.ignore_patterns("__pycache__"))
    Indexer(root, tmp_path / "index", embedder=embedder).run()
    store = Store.open(tmp_path / "index")
    partitions = store.meta[lance.ANN]["partitions"]
    assert store._probes() < partitions  # not every partition: the check below is not trivial
    texts = store.chunks.search().select(["text"]).limit(None).to_arrow().column("text").to_pylist()
    queries = [
        "match a path against gitignore patterns",
        "compile a wildcard pattern into a regular expression",
        "normalize a file path separator",
        "check whether a file is ignored",
        "iterate over the files of a directory tree",
        "escape special characters in a pattern",
        "parse lines of a pattern file",
        "combine several pattern sets",
    ]
    vectors = [*embedder.embed_queries(queries), *embedder.embed_documents(texts[:: max(1, len(texts) // 24)])]
    recalls = []
    for vector in vectors:
        got = {(h.path, h.start_line) for h in store.dense(vector, 10)}
        exact = {(h.path, h.start_line) for h in store.dense(vector, 10, exact=True)}
        recalls.append(len(got & exact) / len(exact))
    print(f"recall@10 {np.mean(recalls):.3f} over {len(vectors)} queries, {partitions} partitions", file=sys.stderr)
    assert np.mean(recalls) >= 0.98


def test_a_big_table_gets_its_scalar_indexes_before_its_dense_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queries during a first dense pass filter on ``embedded`` and read candidates' files by
    ``path``: a big table has those indexes while its rows still wait for vectors."""
    monkeypatch.setattr(lance, "ANN_MIN_ROWS", 500)
    store, rng = clustered_store(tmp_path, files=20)
    add_file(store, "pkg/late.py", [unit(rng) for _ in range(150)], embedded=False)  # 550 rows, 150 waiting
    store.finish_writes()
    kinds = {tuple(ix.columns): ix.index_type for ix in store.chunks.list_indices()}
    assert vector_index(store) is None
    assert kinds[("path",)] == "BTree" and kinds[("embedded",)] == "Bitmap" and kinds[("language",)] == "Bitmap"


def test_a_pre_emptible_dense_pass_keeps_its_rows_in_the_full_text_index(
    tmp_path: Path, tiny_modernbert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dense pass rewrites every row it embeds, and a rewritten row leaves the full-text
    index until a compaction: a words query scans it. A watcher's run (pre-emptible: readers are
    expected) compacts as it goes, so a reader never finds more than a few batches outside that
    index (before: every row embedded so far)."""
    from test_stopping import write_tree

    from codesearch.index import indexer

    monkeypatch.setattr(indexer, "INDEX_WORDS_ROWS", indexer.BATCH_CHUNKS)
    monkeypatch.setattr(indexer, "MAINTAIN_MIN_S", 0.0)
    monkeypatch.setattr(indexer, "MAINTAIN_DUTY", 1e9)  # after each batch here
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, 200)  # 1,200 functions: five dense batches
    unindexed: list[int] = []

    def seen(progress: Any) -> None:
        if progress.phase == "embedding" and progress.files_done:
            reader = Store.open(index_dir)
            name = next(ix.name for ix in reader.chunks.list_indices() if ix.columns == ["terms"])
            unindexed.append(reader.chunks.index_stats(name).num_unindexed_rows)

    run = Indexer(root, index_dir, model=str(tiny_modernbert), urgent=lambda: (), on_progress=seen)
    stats = run.run()
    assert stats.chunks == 1200 and len(unindexed) >= 4
    assert max(unindexed) <= 2 * indexer.BATCH_CHUNKS, unindexed
