"""Indexing real trees with the real model into a real LanceDB folder: incremental runs, the
content-hash cache, deletions, bad inputs, the writer lock, and model changes."""

from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import pytest
from conftest import write_samples
from samples import SAMPLES
from test_chunking import EXPECTED

from codesearch import Indexer, Searcher, default_index_dir, index_status
from codesearch.errors import CodesearchError, ModelMismatchError
from codesearch.index.indexer import writer_lock
from codesearch.store import FileRecord, Store

pytestmark = pytest.mark.slow


def index(root: Path, embedder, **kwargs):  # type: ignore[no-untyped-def]
    return Indexer(root, default_index_dir(root), embedder=embedder, **kwargs).run()


def long_function(lines: int) -> str:
    body = "\n".join(f"    total_{i} = compute_step_{i}(value, offset={i})" for i in range(lines))
    return f"def long_pipeline(value):\n{body}\n    return value\n"


def rows_by_path(index_dir: Path) -> dict[str, list[tuple[int, int, str, str]]]:
    """(start line, end line, symbol, chunk id) of every stored chunk, by file, in file order."""
    rows: dict[str, list[tuple[int, int, str, str]]] = {}
    for path, start, end, symbol, chunk_id, _vkey, _embedded in Store.open(index_dir).chunk_rows():
        rows.setdefault(path, []).append((start, end, symbol, chunk_id))
    return rows


def test_index_then_reindex_unchanged_embeds_nothing(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    # a function that one chunk of the model's chunk size (below its window) cannot hold: a
    # chunk keeps a quarter of its tokens (96 at most) for the header the embedder adds, so
    # the text may use the rest. It would fit one chunk sized by the window: the chunks show
    # which size the index used.
    budget = embedder.spec.chunk_tokens
    text_budget = budget - min(96, budget // 4)
    assert budget < embedder.max_tokens
    source = long_function(10)
    lines = source.split("\n")
    assert text_budget < sum(embedder.count_tokens(lines, special=False)) <= budget
    (sample_tree / "pkg" / "long.py").write_text(source)

    first = index(sample_tree, embedder)
    assert first.files == 14 and first.files_changed == 14
    rows = rows_by_path(default_index_dir(sample_tree))
    # the sample files: the chunks the golden table of the chunker tests lists, written by hand
    for language, (rel, _source) in SAMPLES.items():
        assert [row[:3] for row in rows[rel]] == [(a, b, symbol) for symbol, _kind, a, b in EXPECTED[language]], rel
    assert [row[:3] for row in rows["README.md"]] == [(1, 3, "Demo")]
    # the long function: split, every piece within the budget, together all of its lines
    pieces = rows["pkg/long.py"]
    assert len(pieces) >= 2 and {symbol for _, _, symbol, _ in pieces} == {"long_pipeline"}
    assert pieces[0][0] == 1 and pieces[-1][1] == len(lines) - 1
    for (_, end, _, _), (start, _, _, _) in itertools.pairwise(pieces):
        assert start == end + 1
    for start, end, _, _ in pieces:
        assert sum(embedder.count_tokens(lines[start - 1 : end], special=False)) <= text_budget
    expected = sum(len(chunks) for chunks in rows.values())
    assert (
        first.chunks
        == first.chunks_embedded
        == expected
        == sum(len(EXPECTED[lang]) for lang in SAMPLES) + 1 + len(pieces)
    )

    second = index(sample_tree, embedder)
    assert (second.chunks_embedded, second.chunks_reused, second.files_changed) == (0, 0, 0)
    assert second.files_unchanged == 14 and second.chunks == first.chunks
    # mtime changes without content changes: re-read, nothing embedded
    for path in sample_tree.rglob("*.py"):
        os.utime(path, ns=(1, 1))
    third = index(sample_tree, embedder)
    assert third.chunks_embedded == 0 and third.files_changed == 0
    assert rows_by_path(default_index_dir(sample_tree)) == rows


def test_editing_one_function_embeds_only_that_chunk(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    index(sample_tree, embedder)
    index_dir = default_index_dir(sample_tree)
    before = rows_by_path(index_dir)["pkg/links.py"]
    path = sample_tree / "pkg" / "links.py"
    path.write_text(path.read_text().replace("links.append(val.strip())", "links.append(val.strip().lower())"))
    stats = index(sample_tree, embedder)
    assert stats.files_changed == 1
    assert stats.chunks_embedded == 1
    after = rows_by_path(index_dir)["pkg/links.py"]
    # the same chunks at the same lines; only the edited function's has a new id (new text)
    assert [row[:3] for row in after] == [row[:3] for row in before]
    changed = [new[2] for old, new in zip(before, after, strict=True) if old[3] != new[3]]
    assert changed == ["parse_header_links"]
    assert stats.chunks_reused == len(after) - 1
    hits = Searcher(index_dir, embedder=embedder).search("lower", mode="lexical", k=1)
    assert hits[0].symbol == "parse_header_links" and "links.append(val.strip().lower())" in hits[0].snippet
    assert (hits[0].start_line, hits[0].end_line) == (7, 12)  # where the function is in the file


def test_deleted_and_new_files(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    index(sample_tree, embedder)
    (sample_tree / "src" / "util.js").unlink()
    (sample_tree / "new.py").write_text("def brand_new_helper():\n    return 'fresh'\n")
    stats = index(sample_tree, embedder)
    assert stats.files_deleted == 1 and stats.files_changed == 1 and stats.files == 13
    searcher = Searcher(default_index_dir(sample_tree), embedder=embedder)
    paths = {r.path for r in searcher.search("EventBus readConfig debounce", mode="lexical", k=20)}
    assert "src/util.js" not in paths
    assert searcher.search("brand new helper", mode="lexical", k=1)[0].path == "new.py"


def test_bad_inputs_are_counted_and_the_rest_indexed(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "bad"
    write_samples(root)
    (root / "blob.py").write_bytes(b"\x00\x01\x02binary")
    (root / "huge.py").write_text("x = 1\n" * 300_000)
    (root / "broken.py").write_text("def oops(:\n    return ((\n\ndef fine():\n    return 1\n")
    (root / "latin1.py").write_bytes(b"def cafe():\n    return 'caf\xe9'\n")
    (root / "loop").symlink_to(root, target_is_directory=True)
    stats = index(root, embedder)
    assert stats.skipped == {"binary": 1, "symlink_loop": 1, "too_large": 1}
    assert stats.files == 15
    searcher = Searcher(default_index_dir(root), embedder=embedder)
    assert searcher.search("fine", mode="lexical", k=1)[0].path == "broken.py"
    assert searcher.search("cafe", mode="lexical", k=1)[0].path == "latin1.py"


def test_files_vanishing_mid_index(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    doomed = sample_tree / "src" / "api.ts"

    def remove_after_first_batch(progress) -> None:  # type: ignore[no-untyped-def]
        if progress.files_done == 0 and doomed.exists():
            doomed.unlink()

    stats = Indexer(
        sample_tree, default_index_dir(sample_tree), embedder=embedder, on_progress=remove_after_first_batch
    ).run()
    assert stats.skipped == {"vanished": 1} and stats.files == 12


def test_search_finds_the_right_function(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    index(sample_tree, embedder)
    searcher = Searcher(default_index_dir(sample_tree), embedder=embedder)
    for mode in ("hybrid", "dense", "lexical"):
        assert searcher.search("parse header links", mode=mode, k=3)[0].symbol == "parse_header_links", mode
    assert searcher.search("read a JSON configuration file", k=1)[0].symbol == "readConfig"
    only_go = searcher.search("serve an http request", k=5, languages=["go"])
    assert only_go and {r.language for r in only_go} == {"go"}
    under_src = searcher.search("cache", k=20, path_glob="src/**")
    assert under_src and all(r.path.startswith("src/") for r in under_src)
    status = index_status(default_index_dir(sample_tree))
    assert status["files"] == 13 and status["model"] == "minilm-code" and status["size_bytes"] > 0


def test_second_writer_is_refused(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    index_dir = default_index_dir(sample_tree)
    with writer_lock(index_dir), pytest.raises(CodesearchError, match="another codesearch process"):
        Indexer(sample_tree, index_dir, embedder=embedder).run()


def test_model_change_needs_rebuild(sample_tree: Path, embedder, tiny_modernbert: Path) -> None:  # type: ignore[no-untyped-def]
    index(sample_tree, embedder)
    index_dir = default_index_dir(sample_tree)
    with pytest.raises(ModelMismatchError, match="--rebuild"):
        Indexer(sample_tree, index_dir, model=str(tiny_modernbert)).run()
    with pytest.raises(ModelMismatchError, match="re-index"):
        Searcher(index_dir, model=str(tiny_modernbert))
    stats = Indexer(sample_tree, index_dir, model=str(tiny_modernbert), rebuild=True).run()
    assert stats.files == 13 and stats.chunks_reused == 0
    assert index_status(index_dir)["dimension"] == 32
    assert Searcher(index_dir).search("parse header links", k=3)  # loads the index's own model


def test_an_index_of_an_updated_preset_is_re_embedded(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """A preset whose weights changed with codesearch (a new adapter): the old vectors would be
    searched with the new model's queries. Search ranks by words until `codesearch index`
    re-embeds the index, which it does even when no file changed."""
    index(sample_tree, embedder)
    index_dir = default_index_dir(sample_tree)
    meta_file = index_dir / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    current = meta["model_id"]
    meta["model_id"] = "sentence-transformers/all-MiniLM-L6-v2+codesearch-code-v0"  # as an older codesearch wrote it
    meta_file.write_text(json.dumps(meta), encoding="utf-8")

    searcher = Searcher(index_dir)
    assert searcher.search("parse header links", k=3)[0].symbol == "parse_header_links"
    assert "codesearch index to re-embed it" in searcher.words_only
    with pytest.raises(ModelMismatchError, match="is now " + re.escape(current)):
        searcher.search("parse header links", mode="dense", k=3)

    stats = Indexer(sample_tree, index_dir, embedder=embedder).run()
    assert stats.files == 13 and stats.chunks_embedded == stats.chunks and stats.chunks_reused == 0
    assert json.loads(meta_file.read_text(encoding="utf-8"))["model_id"] == current
    again = Searcher(index_dir)
    assert again.search("parse header links", mode="dense", k=3)[0].symbol == "parse_header_links"
    assert not again.words_only


def test_renamed_moved_and_copied_files_embed_nothing(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    first = index(sample_tree, embedder)
    (sample_tree / "pkg" / "links.py").rename(sample_tree / "pkg" / "header_links.py")
    (sample_tree / "src").rename(sample_tree / "frontend")
    (sample_tree / "copy.go").write_bytes(next(sample_tree.rglob("*.go")).read_bytes())
    stats = index(sample_tree, embedder)
    assert stats.chunks_embedded == 0 and stats.chunks_reused > 0
    assert stats.files == 14 and stats.chunks > first.chunks
    searcher = Searcher(default_index_dir(sample_tree), embedder=embedder)
    assert searcher.search("parse header links", k=1)[0].path == "pkg/header_links.py"
    assert not searcher.search("cache", k=50, path_glob="src/**")


def git(root: Path, *args: str) -> None:
    import subprocess

    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True, capture_output=True
    )


def test_switching_git_branches_back_and_forth_embeds_nothing_new(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    git(sample_tree, "init", "-q", "-b", "main")
    git(sample_tree, "add", "-A")
    git(sample_tree, "commit", "-q", "-m", "main")
    on_main = index(sample_tree, embedder)
    git(sample_tree, "checkout", "-q", "-b", "feature")
    links = sample_tree / "pkg" / "links.py"
    links.write_text(links.read_text().replace("links.append(val.strip())", "links.append(val.strip().lower())"))
    (sample_tree / "feature.py").write_text("def feature_flag(name):\n    return name in FLAGS\n")
    (sample_tree / "src" / "util.js").unlink()
    git(sample_tree, "add", "-A")
    git(sample_tree, "commit", "-q", "-m", "feature")
    on_feature = index(sample_tree, embedder)
    assert on_feature.chunks_embedded == 2  # the edited function and the new file's
    for branch in ("main", "feature", "main"):
        git(sample_tree, "checkout", "-q", branch)
        again = index(sample_tree, embedder)
        assert again.chunks_embedded == 0, branch
    assert again.chunks == on_main.chunks


def test_an_index_from_an_older_codesearch_is_rebuilt(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    import json

    from codesearch.errors import IndexCorruptError

    index(sample_tree, embedder)
    meta_path = default_index_dir(sample_tree) / "meta.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "format": 1}))
    with pytest.raises(IndexCorruptError, match=r"an older codesearch; run codesearch index to upgrade") as raised:
        Searcher(default_index_dir(sample_tree), embedder=embedder)
    assert "--rebuild" not in str(raised.value)  # a plain index run upgrades it, keeping its vectors
    stats = index(sample_tree, embedder)
    assert stats.files == 13 and stats.files_changed == 13
    assert stats.chunks_embedded == 0 and stats.chunks_reused == stats.chunks  # the vector cache survives
    assert Searcher(default_index_dir(sample_tree), embedder=embedder).search("parse header links", k=1)
    # --rebuild (for instance to change model) starts from nothing, cache included
    again = index(sample_tree, embedder, rebuild=True)
    assert again.chunks_embedded == again.chunks


def test_words_find_a_fresh_tree_before_any_vector_is_computed(
    sample_tree: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import codesearch.index.indexer as indexer_module
    from codesearch.store import Store

    monkeypatch.setattr(indexer_module, "BATCH_CHUNKS", 1)  # one file per dense batch: the order shows
    newest = sample_tree / "src" / "util.js"
    for path in sample_tree.rglob("*"):
        if path.is_file():
            os.utime(path, ns=(10**18, 10**18 if path == newest else 10**17))
    index_dir = default_index_dir(sample_tree)
    seen: dict[str, object] = {}

    def lexical_done(stats) -> None:  # type: ignore[no-untyped-def]
        searcher = Searcher(index_dir, embedder=embedder)
        seen["coverage"] = searcher.dense_coverage()
        seen["lexical"] = searcher.search("parse header links", mode="lexical", k=1)[0].symbol
        seen["hybrid"] = searcher.search("parse header links", k=1)[0].symbol  # words alone rank it
        seen["dense"] = searcher.search("parse header links", mode="dense", k=1)

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        if p.phase == "embedding" and p.files_done == 1 and "first dense" not in seen:
            seen["first dense"] = [r.path for r in Store.open(index_dir).file_catalog().values() if r.dense]

    stats = Indexer(sample_tree, index_dir, embedder=embedder, on_progress=progress, on_lexical_done=lexical_done).run()
    assert seen["coverage"] == 0.0 and seen["dense"] == []
    assert seen["lexical"] == seen["hybrid"] == "parse_header_links"
    assert seen["first dense"] == ["src/util.js"]  # the most recently modified file is embedded first
    assert stats.chunks_embedded == stats.chunks
    assert Searcher(index_dir, embedder=embedder).dense_coverage() == 1.0


def _catalog(root: Path) -> dict[str, FileRecord]:
    from codesearch.store import Store

    return Store.open(default_index_dir(root)).file_catalog()


def test_secrets_skip_after_off_removes_the_file_with_a_secret_from_disk(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "svc"
    write_samples(root)
    key = "AKIA" + "IOSFODNN7" + "EXAMPLE"  # built here: this file holds no token a scanner would flag
    (root / "settings.py").write_text(
        f'AWS_ACCESS_KEY_ID = "{key}"\n\n\ndef bucket_name() -> str:\n    return "assets"\n'
    )
    index_dir = default_index_dir(root)
    assert index(root, embedder, secrets="off").files == 14
    reader = Searcher(index_dir, embedder=embedder)  # a live reader, open across the switch and its purge
    assert reader.search(key, mode="lexical", k=1)[0].path == "settings.py"
    before = _catalog(root)

    stats = index(root, embedder, secrets="skip")  # no file changed on disk: the policy did
    assert stats.files == 13 and stats.skipped == {"secret": 1} and stats.chunks_embedded == 0
    after = _catalog(root)
    assert set(after) == set(before) - {"settings.py"}
    assert all(after[path].chunk_ids == before[path].chunk_ids for path in after)  # read again, rows the same
    blob = b"".join(path.read_bytes() for path in index_dir.rglob("*") if path.is_file())
    assert key.encode() not in blob and key.lower().encode() not in blob.lower()
    assert "settings.py" not in {hit.path for hit in reader.search("bucket name assets", mode="lexical", k=20)}
    assert reader.search("parse header links", k=1)[0].path == "pkg/links.py"  # the reader lived through it
    from codesearch.options import IndexOptions

    assert {record.policy for record in after.values()} == {IndexOptions(secrets="skip").policy}


def test_a_new_chunker_version_reads_every_file_again(
    sample_tree: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import codesearch.options as options_module

    index(sample_tree, embedder)
    old_policy = options_module.IndexOptions().policy
    assert {record.policy for record in _catalog(sample_tree).values()} == {old_policy}
    monkeypatch.setattr(options_module, "CHUNKER_VERSION", options_module.CHUNKER_VERSION + 1)  # an upgrade
    new_policy = options_module.IndexOptions().policy
    assert new_policy != old_policy
    stats = index(sample_tree, embedder)  # no file changed: the stat snapshot alone would stop here
    assert stats.files == 13 and stats.files_unchanged == 13 and stats.chunks_embedded == 0
    assert {record.policy for record in _catalog(sample_tree).values()} == {new_policy}
    assert index(sample_tree, embedder).seconds < stats.seconds  # and now the snapshot holds again


def test_changing_the_ignore_rules_removes_and_adds_their_files(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    index(sample_tree, embedder)
    src = {path for path in _catalog(sample_tree) if path.startswith("src/")}
    assert len(src) == 9
    stats = index(sample_tree, embedder, extra_ignores=("src/",))
    assert stats.files == 4 and stats.files_deleted == 9 and not src & set(_catalog(sample_tree))
    hits = Searcher(default_index_dir(sample_tree), embedder=embedder).search("EventBus readConfig", k=20)
    assert not {hit.path for hit in hits} & src
    (sample_tree / ".codesearchignore").write_text("pkg/\n")  # an ignore file counts the same
    assert index(sample_tree, embedder, extra_ignores=("src/",)).files_deleted == 1
    assert "pkg/links.py" not in _catalog(sample_tree)
    (sample_tree / ".codesearchignore").unlink()
    back = index(sample_tree, embedder)  # let in again: added back from the vector cache
    assert back.files == 13 and back.chunks_embedded == 0 and src <= set(_catalog(sample_tree))


def test_changing_the_size_limit_removes_and_adds_files(sample_tree: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    (sample_tree / "big.py").write_text("def big_table():\n    return [\n" + "        1,\n" * 400 + "    ]\n")
    first = index(sample_tree, embedder)
    assert first.files == 14 and "big.py" in _catalog(sample_tree)
    smaller = index(sample_tree, embedder, max_file_bytes=2000)
    assert smaller.files == 13 and smaller.files_deleted == 1 and smaller.skipped == {"too_large": 1}
    assert "big.py" not in _catalog(sample_tree)
    assert not Searcher(default_index_dir(sample_tree), embedder=embedder).search("big table", mode="lexical", k=5)
    back = index(sample_tree, embedder)
    assert back.files == 14 and back.chunks_embedded == 0 and "big.py" in _catalog(sample_tree)


def test_a_run_stopped_before_its_purge_leaves_it_to_the_next_run(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "svc"
    write_samples(root)
    key = "AKIA" + "IOSFODNN7" + "EXAMPLE"
    (root / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{key}"\n')
    index_dir = default_index_dir(root)
    index(root, embedder, secrets="off")

    def stop(stats) -> None:  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # Ctrl-C after the lexical pass: the rows are redacted, old versions remain

    with pytest.raises(KeyboardInterrupt):
        Indexer(root, index_dir, embedder=embedder, on_lexical_done=stop).run()
    assert key.encode() in b"".join(path.read_bytes() for path in index_dir.rglob("*") if path.is_file())
    stats = index(root, embedder)  # nothing left to read again: the purge is still owed
    assert stats.files_changed == 0
    blob = b"".join(path.read_bytes() for path in index_dir.rglob("*") if path.is_file())
    assert key.encode() not in blob and key.lower().encode() not in blob.lower()
