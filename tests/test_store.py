"""The LanceDB store: safe quoting, filters, identifier-split full-text search, fusion, and
model identity, on a real LanceDB folder with hand-made vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import chunk_row

from codesearch.errors import IndexCorruptError, IndexNotFoundError, ModelMismatchError, UsageError
from codesearch.store import FileRecord, Hit, Store, fuse, glob_filter, lexical_terms, split_identifier, sql_str

DIM = 8


def vec(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def make_store(tmp_path: Path) -> Store:
    return Store.create(tmp_path / "index", root="/src", model_name="m", model_id="org/m", cache_key="k", dimension=DIM)


def add_file(store: Store, path: str, chunks: list[tuple[str, str, int]], language: str = "python") -> None:
    rows = []
    for i, (symbol, text, seed) in enumerate(chunks):
        rows.append(
            dict(
                vkey=f"{path}#{i}",
                path=path,
                start_line=i * 10 + 1,
                end_line=i * 10 + 5,
                symbol=symbol,
                kind="function",
                language=language,
                text=text,
                terms=lexical_terms(f"{symbol}\n{path}\n{text}"),
                file_hash="h",
                embedded=True,
                vector=vec(seed),
            )
        )
    store.replace_files([FileRecord(path, 10, 1, "h", language, len(rows))], rows)


def test_split_identifier_and_terms() -> None:
    assert split_identifier("parseHeaderLinks") == ["parse", "header", "links"]
    assert split_identifier("parse_header_links") == ["parse", "header", "links"]
    assert split_identifier("HTTPServerError") == ["http", "server", "error"]
    assert "parse header links" in lexical_terms("def parseHeaderLinks(v): pass")


def test_sql_quoting() -> None:
    assert sql_str("it's") == "'it''s'"
    assert sql_str("100%") == "'100%'"
    with pytest.raises(UsageError):
        glob_filter("!")


@pytest.mark.parametrize("path", ["src/it's.py", "src/100%/a.py", "dir with space/naïve 日本.py", "a'b''c%_d.py"])
def test_paths_with_quotes_percent_and_unicode(tmp_path: Path, path: str) -> None:
    store = make_store(tmp_path)
    add_file(store, path, [("alpha", "def alpha(): pass", 1)])
    add_file(store, "other.py", [("beta", "def beta(): pass", 2)])
    assert {h.path for h in store.lexical("alpha", 5)} == {path}
    assert set(store.file_catalog()) == {path, "other.py"}
    store.cache_vectors({f"{path}#0": vec(1)})
    assert set(store.cached_vectors([f"{path}#0", "other.py#0"])) == {f"{path}#0"}
    store.delete_files([path])
    assert set(store.file_catalog()) == {"other.py"}
    assert set(store.cached_vectors([f"{path}#0"])) == {f"{path}#0"}  # the cache outlives the chunks
    assert store.count_chunks() == 1


def test_identifier_split_lexical_search(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    add_file(store, "a.js", [("parseHeaderLinks", "function parseHeaderLinks(value) { return value; }", 1)])
    add_file(store, "b.py", [("parse_header_links", "def parse_header_links(value): return value", 2)])
    add_file(store, "c.py", [("unrelated", "def unrelated(): return 42", 3)])
    store.finish_writes()
    for query in ["parse header links", "parseHeaderLinks", "parse_header_links"]:
        assert {h.path for h in store.lexical(query, 2)} == {"a.js", "b.py"}, query


def test_dense_search_and_filters(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    add_file(store, "src/a.py", [("a", "alpha", 1)])
    add_file(store, "src/b.ts", [("b", "beta", 2)], language="typescript")
    add_file(store, "tests/test_a.py", [("t", "gamma", 3)])
    store.finish_writes()
    top = store.dense(vec(2), 3)
    assert top[0].path == "src/b.ts" and top[0].score == pytest.approx(1.0, abs=1e-5)
    assert {h.path for h in store.dense(vec(2), 3, "language IN ('python')")} == {"src/a.py", "tests/test_a.py"}
    assert {h.path for h in store.dense(vec(2), 3, glob_filter("tests/"))} == {"tests/test_a.py"}
    assert {h.path for h in store.dense(vec(2), 3, glob_filter("*.ts"))} == {"src/b.ts"}
    assert {h.path for h in store.dense(vec(2), 3, glob_filter("src/**/*.py"))} == {"src/a.py"}


def test_replace_files_leaves_no_duplicates(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    for _ in range(3):
        add_file(store, "a.py", [("f", "one", 1), ("g", "two", 2)])
    assert store.count_chunks() == 2
    assert len(store.file_catalog()) == 1


def test_fuse_rewards_agreement_and_weighs_dense_over_lexical() -> None:
    def hit(path: str, score: float) -> Hit:
        return Hit(path, 1, 2, path, "function", "python", "", score)

    dense = [hit("a", 0.9), hit("b", 0.8), hit("c", 0.5)]
    lexical = [hit("b", 1.0), hit("d", 0.6), hit("e", 0.2)]
    fused = fuse([dense, lexical], k=4)
    # min-max: dense a 1, b 0.75, c 0; lexical b 1, d 0.5, e 0; then 0.7 x dense + 0.3 x lexical
    assert [h.path for h in fused] == ["b", "a", "d", "c"]
    assert [round(h.score, 3) for h in fused] == [0.825, 0.7, 0.15, 0.0]
    assert fuse([[hit("x", 0.4)], []], k=1)[0].score == pytest.approx(0.7)  # a lone candidate is its side's best
    top_everywhere = fuse([[hit("a", 0.9), hit("b", 0.1)], [hit("a", 5.0), hit("c", 1.0)]], k=1)[0]
    assert top_everywhere.path == "a" and top_everywhere.score == pytest.approx(1.0)


def test_open_checks_model_and_existence(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError):
        Store.open(tmp_path / "nothing")
    make_store(tmp_path)
    assert Store.open(tmp_path / "index", model_id="org/m").dimension == DIM
    with pytest.raises(ModelMismatchError, match="re-index"):
        Store.open(tmp_path / "index", model_id="org/other")
    (tmp_path / "index" / "meta.json").write_text("{not json")
    with pytest.raises(IndexCorruptError):
        Store.open(tmp_path / "index")


def test_index_folder_is_private(tmp_path: Path) -> None:
    make_store(tmp_path)
    assert (tmp_path / "index").stat().st_mode & 0o077 == 0


def test_cache_keeps_vectors_exactly_and_prunes_oldest_unused_first(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    add_file(store, "live.py", [("alpha", "def alpha(): pass", 1)])  # vkey live.py#0
    store.cache_vectors({"live.py#0": vec(1)})
    for generation in range(3):  # three writes, oldest first
        store.cache_vectors({f"old{generation}-{i}": vec(10 * generation + i) for i in range(2)})
    assert store.count_cached() == 7
    cached = store.cached_vectors(["old1-1", "missing"])
    assert list(cached) == ["old1-1"] and np.array_equal(cached["old1-1"], vec(11))
    assert store.prune_cache(keep=3) == 4
    assert set(store.cached_vectors(["live.py#0", "old0-0", "old0-1", "old1-0", "old1-1", "old2-0", "old2-1"])) == {
        "live.py#0",  # used by a chunk: never pruned, however old
        "old2-0",
        "old2-1",
    }
    assert store.prune_cache() == 0  # within the default allowance


def _listing(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.parametrize("table", ["chunks", "files", "vectors"])
def test_a_reader_never_creates_a_missing_table_and_a_writer_does(tmp_path: Path, table: str) -> None:
    import shutil

    from codesearch.store import damage_note

    add_file(make_store(tmp_path), "a.py", [("alpha", "def alpha(): pass", 1)])
    folder = tmp_path / "index"
    assert damage_note(folder) is None
    shutil.rmtree(folder / f"{table}.lance")
    listing = _listing(folder)
    with pytest.raises(IndexCorruptError, match=f"has no {table} table; run codesearch index to repair it"):
        Store.open(folder)
    assert _listing(folder) == listing  # nothing created, not even a damage mark
    assert damage_note(folder) == f"the index at {folder} has no {table} table"  # the next run looks
    assert Store.open(folder, writable=True).created == (table,)
    assert damage_note(folder) is None


def test_a_reader_keeps_a_vector_cache_of_another_shape(tmp_path: Path) -> None:
    import json

    store = make_store(tmp_path)
    store.cache_vectors({"k": vec(1)})
    meta = tmp_path / "index" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "dimension": DIM * 2}))
    listing = _listing(tmp_path / "index")
    assert Store.open(tmp_path / "index").count_cached() == 1  # read as it is: a reader drops nothing
    assert _listing(tmp_path / "index") == listing
    assert Store.open(tmp_path / "index", writable=True).count_cached() == 0  # the writer starts it anew


def test_check_finds_chunk_rows_that_do_not_match_the_file_catalog(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    add_file(store, "a.py", [("alpha", "def alpha(): pass", 1), ("beta", "def beta(): pass", 2)])
    add_file(store, "b.py", [("gamma", "def gamma(): pass", 3)])
    store.finish_writes()
    store.check()  # whole and consistent
    store.chunks.delete("symbol = 'beta'")  # a row lost: the catalog still lists it
    with pytest.raises(IndexCorruptError, match="lists 3 chunks of 2 files, the chunk table holds 2 of 2"):
        store.check()
    store.chunks.delete("true")  # a chunk table made empty under a catalog (a lost table, recreated)
    with pytest.raises(IndexCorruptError, match="does not match its file catalog"):
        store.check()
    store.files.delete("true")
    store.check()  # an empty index is consistent


def test_the_counts_a_writer_keeps_match_the_rows_after_any_mix_of_writes(tmp_path: Path) -> None:
    """The writer tracks rows without vectors from what each commit replaced (no count per
    commit): after first-index appends, replacements that keep, add or drop rows, with and
    without vectors, deletions and a reopened writer, the meta says what the rows say."""
    import random

    rng = random.Random(5)
    store = make_store(tmp_path)
    for step in range(60):
        if step == 30:
            store = Store.open(tmp_path / "index", writable=True)  # a later run: counts from its open
        path = f"f{rng.randrange(8)}.py"
        if rng.random() < 0.15:
            store.delete_files([path])
        else:
            n = rng.randrange(0, 5)
            keep = rng.random() < 0.5  # the same ids as a file's earlier rows (an upsert), else new ones
            rows = []
            for i in range(n):
                embedded = rng.random() < 0.5
                vector = vec(i) if embedded else np.zeros(DIM, np.float32)
                row_id, vkey = f"{path}:{i}:{0 if keep else step}", f"{path}:{i}:{step}"
                rows.append(chunk_row(path, i, vector, embedded, id=row_id, vkey=vkey, file_hash=str(step)))
            store.replace_files([FileRecord(path, n, step, str(step), "python", n, dense=False)], rows)
        chunks, unembedded = store.chunks.count_rows(), store.chunks.count_rows("embedded = false")
        counts = Store.open(tmp_path / "index").counts()
        assert counts == dict(
            files=store.files.count_rows(),
            chunks=chunks,
            chunks_embedded=chunks - unembedded,
            complete=unembedded == 0,
        ), f"step {step}"


def test_a_long_lived_reader_finds_a_commit_by_words_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader (the language server's searcher) finds a file by words as soon as the writer has
    committed it (the meta it writes after each commit brings the reader's view up to date), not
    when its tables' own consistency clock next looks: a saved file is searchable at once."""
    from codesearch.store import lance

    monkeypatch.setattr(lance, "READ_CONSISTENCY_S", 3600.0)  # a view that would lag for an hour
    writer = make_store(tmp_path)
    add_file(writer, "a.py", [("first_function", "def first_function(): return 1", 1)])
    writer.finish_writes()
    reader = Store.open(tmp_path / "index")
    assert [h.path for h in reader.lexical("first function", 5)] == ["a.py"]
    add_file(writer, "b.py", [("freshly_saved_helper", "def freshly_saved_helper(): return 2", 2)])
    assert [h.path for h in reader.lexical("freshly saved helper", 5)] == ["b.py"]
    assert [h.path for h in reader.dense(vec(2), 1)] == ["b.py"]


def test_a_long_lived_store_renews_its_connection_when_its_caches_grow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader and a writer that live for thousands of commits drop the caches of old versions
    (a new connection) once those grow past the bound, and read and write on as before."""
    from codesearch.store import lance

    writer = make_store(tmp_path)
    add_file(writer, "a.py", [("first_function", "def first_function(): return 1", 1)])
    writer.finish_writes()
    reader = Store.open(tmp_path / "index")
    assert reader.lexical("first function", 5)
    kept = reader._db, writer._db
    add_file(writer, "b.py", [("second_function", "def second_function(): return 2", 2)])
    assert reader.lexical("second function", 5)[0].path == "b.py"
    assert (reader._db, writer._db) == kept, "caches under the bound: the same connections"
    monkeypatch.setattr(lance, "RENEW_CACHE_MIB", 0)
    monkeypatch.setattr(lance, "RENEW_MIN_S", 0.0)
    add_file(writer, "c.py", [("third_function", "def third_function(): return 3", 3)])
    assert writer._db is not kept[1]
    assert reader.lexical("third function", 5)[0].path == "c.py"
    assert reader._db is not kept[0]
    assert [h.path for h in reader.dense(vec(3), 1)] == ["c.py"]
    add_file(writer, "a.py", [("renamed_function", "def renamed_function(): return 4", 4)])
    assert reader.lexical("renamed function", 5)[0].path == "a.py"
    assert reader.counts()["files"] == 3 and len(reader.file_chunks(["a.py", "b.py", "c.py"])) == 3
