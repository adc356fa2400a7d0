"""Faults: the disk filling up while the index is written (the run stops with a clear message
and exit code 8, nothing committed is lost, and the next run ends with exactly the index a
clean run writes); the index folder deleted or corrupted under a running watcher and searcher
(a clear error, then the index is rebuilt by itself, keeping its computed vectors); the
embedding model failing to load under the real language server (words still answer, and a
reindex once the model is back fills in the vectors); and a file changing while it is chunked
(the next run sees it changed and re-reads it).

The small disk is a tmpfs mounted in a private mount namespace (``unshare -m``, as root, or
``unshare -r -m`` where user namespaces are allowed), so the test needs no privileges outside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from test_crash import snapshot, write_tree
from test_lsp import request, serve

from codesearch.chunking import Chunk
from codesearch.embedding import TokenSizer
from codesearch.errors import IndexCorruptError
from codesearch.index import Indexer
from codesearch.service import ProjectOptions, Workspace
from codesearch.store import Store

EXE = str(Path(sys.executable).with_name("codesearch"))

SCENARIO = r"""
set -u
mount -t tmpfs -o size=$SMALL tmpfs "$MNT" || exit 90
"$EXE" index "$TREE" --index-dir "$MNT/idx" --model "$MODEL" --json > "$OUT/first.json" 2> "$OUT/first.err"
echo $? > "$OUT/first.rc"
mount -o remount,size=256m "$MNT" || exit 91
"$EXE" index "$TREE" --index-dir "$MNT/idx" --model "$MODEL" --json > "$OUT/second.json" 2> "$OUT/second.err"
echo $? > "$OUT/second.rc"
"$PYTHON" -c '
import json, sys
sys.path.insert(0, sys.argv[2])
from test_crash import snapshot
from pathlib import Path
files, rows = snapshot(Path(sys.argv[1]))
print(json.dumps({"files": files, "rows": rows}))
' "$MNT/idx" "$TESTS" > "$OUT/index.json"
"""


def _mount_namespace() -> list[str] | None:
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-r", "-m"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


NAMESPACE = _mount_namespace()


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.skipif(NAMESPACE is None and not os.environ.get("CI"), reason="needs unshare -m to mount a tmpfs")
def test_a_full_disk_stops_the_run_clearly_and_the_next_run_repairs_the_index(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    assert NAMESPACE is not None, "CI must be able to mount a small tmpfs in a private mount namespace"
    tree = tmp_path / "tree"
    write_tree(tree)
    clean_dir = tmp_path / "clean"
    Indexer(tree, clean_dir, model=str(tiny_modernbert)).run()
    clean_files, clean_rows = snapshot(clean_dir)

    mnt, out = tmp_path / "small-disk", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    env = {
        **os.environ,
        "SMALL": "1200k",
        "MNT": str(mnt),
        "OUT": str(out),
        "EXE": EXE,
        "TREE": str(tree),
        "MODEL": str(tiny_modernbert),
        "PYTHON": sys.executable,
        "TESTS": str(Path(__file__).parent),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run([*NAMESPACE, "sh", "-c", SCENARIO], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr

    first_rc = int((out / "first.rc").read_text())
    first_err = (out / "first.err").read_text().strip()
    assert first_rc == 8, first_err  # the disk filled up mid-run
    assert first_err.count("\n") == 0 and "no space left writing the index" in first_err
    assert "run the same command again" in first_err and "Traceback" not in first_err

    assert int((out / "second.rc").read_text()) == 0, (out / "second.err").read_text()
    second = json.loads((out / "second.json").read_text())
    assert second["chunks_reused"] + second["files_unchanged"] > 0  # what the full disk had committed was kept
    index = json.loads((out / "index.json").read_text())
    assert index["files"] == clean_files
    assert [tuple(row) for row in index["rows"]] == clean_rows


@pytest.mark.slow
def test_an_index_deleted_under_a_watcher_gives_a_clear_error_then_is_rebuilt(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    tree = tmp_path / "tree"
    write_tree(tree)
    index_dir = tmp_path / "index"
    workspace = Workspace(ProjectOptions(index_dir=index_dir, model=str(tiny_modernbert)))
    try:
        project = workspace.add_folder(tree)
        _wait(lambda: project.state == "ready" and project.watching, "the first index")
        assert workspace.search("sum of the state", 3).results

        # deleted while the server runs, then a file changes: the watcher's update rebuilds the
        # whole index, not just the changed file
        shutil.rmtree(index_dir)
        (tree / "pkg0" / "late.py").write_text("def settle_invoice(lines):\n    return sum(lines)\n")
        clean = tmp_path / "clean"
        Indexer(tree, clean, model=str(tiny_modernbert)).run()
        _wait(lambda: snapshot(index_dir) == snapshot(clean), "the whole tree in the rebuilt index")

        # deleted again, then searched: a clear error, and the project rebuilds by itself
        shutil.rmtree(index_dir)
        with pytest.raises(IndexCorruptError, match="deleted or damaged while in use"):
            workspace.search("sum of the state", 3)
        _wait(lambda: snapshot(index_dir) == snapshot(clean), "the index rebuilt after the error")
        assert workspace.search("settle invoice", 1).results[0].result.symbol == "settle_invoice"
    finally:
        workspace.close()


def _garble_chunks(index_dir: Path) -> None:
    """Overwrite the chunk table's data files with random bytes of the same size."""
    for data in (index_dir / "chunks.lance" / "data").glob("*.lance"):
        data.write_bytes(os.urandom(data.stat().st_size))


@pytest.mark.slow
def test_an_index_corrupted_under_a_watcher_gives_a_clear_error_then_is_repaired(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    tree = tmp_path / "tree"
    write_tree(tree, files=30)
    (tree / "pkg0" / "late.py").write_text("def settle_invoice(lines):\n    return sum(lines)\n")
    index_dir, clean = tmp_path / "index", tmp_path / "clean"
    Indexer(tree, clean, model=str(tiny_modernbert)).run()
    workspace = Workspace(ProjectOptions(index_dir=index_dir, model=str(tiny_modernbert)))
    try:
        project = workspace.add_folder(tree)
        _wait(lambda: project.state == "ready" and project.watching, "the first index")
        assert workspace.search("settle invoice", 1).results[0].result.symbol == "settle_invoice"

        _garble_chunks(index_dir)  # the files look unchanged: only reading the tables finds the damage
        with pytest.raises(IndexCorruptError, match="deleted or damaged while in use"):
            workspace.search("settle invoice", 3)
        _wait(lambda: snapshot(index_dir) == snapshot(clean), "the index repaired")
        assert workspace.search("settle invoice", 1).results[0].result.symbol == "settle_invoice"
        assert not (index_dir / "damaged.txt").exists()
    finally:
        workspace.close()


def _cli_tree(tmp_path: Path, model: Path) -> tuple[Path, dict[str, str], list[str]]:
    """A 30-file tree to index from the command line with ``model``, offline: the index folder,
    the environment, and the ``codesearch index --json`` command."""
    tree, index_dir = tmp_path / "tree", tmp_path / "index"
    write_tree(tree, files=30)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return index_dir, env, [EXE, "index", str(tree), "--index-dir", str(index_dir), "--model", str(model), "--json"]


@pytest.mark.slow
@pytest.mark.e2e
def test_the_command_line_says_how_to_repair_a_corrupted_index_and_repairing_embeds_nothing_again(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    index_dir, env, index = _cli_tree(tmp_path, tiny_modernbert)
    search = [EXE, "search", "sum of the state", "--index-dir", str(index_dir)]
    assert subprocess.run(index, env=env, capture_output=True).returncode == 0
    before = snapshot(index_dir)

    _garble_chunks(index_dir)
    failed = subprocess.run(search, env=env, capture_output=True, text=True)
    assert failed.returncode == 6
    message = failed.stderr.strip().splitlines()[-1]
    assert "cannot read the index" in message and "run codesearch index to repair it" in message

    repaired = subprocess.run(index, env=env, capture_output=True, text=True)
    assert repaired.returncode == 0, repaired.stderr
    assert "rebuilding the index from the files (its computed vectors are kept)" in repaired.stderr
    stats = json.loads(repaired.stdout)
    assert stats["repaired"] and stats["chunks_embedded"] == 0 and stats["chunks_reused"] == stats["chunks"]
    assert snapshot(index_dir) == before
    assert subprocess.run(search, env=env, capture_output=True).returncode == 0


def test_a_damaged_folder_holding_files_codesearch_did_not_write_is_never_emptied(
    tmp_path: Path, sample_tree: Path
) -> None:
    folder = tmp_path / "not-an-index"
    folder.mkdir()
    (folder / "meta.json").write_text("{ not json")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(IndexCorruptError, match=r"not repaired, because .* holds notes.txt"):
        Indexer(sample_tree, folder).run()
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "meta.json").read_text() == "{ not json"


class _EditWhileChunking(Indexer):
    """Rewrites one file the moment the real chunker gets its text (the race made certain)."""

    target = "pkg0/module_0.py"
    edited = "def edited_while_chunked(state):\n    return state\n"

    def _chunk(self, sizer: TokenSizer, rel: str, text: str, language: str) -> list[Chunk]:
        if rel == self.target and not getattr(self, "_done", False):
            self._done = True
            (self.root / rel).write_text(self.edited)
        return super()._chunk(sizer, rel, text, language)


@pytest.mark.slow
def test_a_file_changing_while_it_is_chunked_is_indexed_as_read_then_re_read_by_the_next_run(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    tree, index_dir = tmp_path / "tree", tmp_path / "index"
    write_tree(tree, files=12)
    old_text = (tree / _EditWhileChunking.target).read_text()
    _EditWhileChunking(tree, index_dir, model=str(tiny_modernbert)).run()

    # the rows are the text that was read, whole: not a mix of the two versions
    rows = Store.open(index_dir).chunks.to_arrow().to_pylist()
    texts = sorted((r["start_line"], r["text"]) for r in rows if r["path"] == _EditWhileChunking.target)
    assert texts and all(text in old_text for _line, text in texts)

    again = Indexer(tree, index_dir, model=str(tiny_modernbert)).run()
    assert again.files_changed == 1 and again.files_unchanged == 11  # its stat no longer matches
    clean = tmp_path / "clean"
    Indexer(tree, clean, model=str(tiny_modernbert)).run()
    assert snapshot(index_dir) == snapshot(clean)


@pytest.mark.slow
@pytest.mark.e2e
async def test_a_model_that_fails_to_load_leaves_search_by_words_then_a_reindex_repairs(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    tree, index_dir, model = tmp_path / "tree", tmp_path / "index", tmp_path / "model"
    write_tree(tree, files=12)
    shutil.copytree(tiny_modernbert, model)
    Indexer(tree, index_dir, model=str(model)).run()
    weights = model / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # a truncated download or a full disk
    (tree / "pkg0" / "late.py").write_text("def settle_invoice(lines):\n    return sum(lines)\n")

    async with serve([tree], {"indexDir": str(index_dir), "model": str(model)}) as client:
        errors = [m.message for m in client.messages if m.type == types.MessageType.Error]
        assert any("indexing failed" in m and "cannot load model" in m for m in errors), errors
        # words still answer, new files included (the lexical pass needs the tokenizer only)
        found = await request(client, "codesearch/search", {"query": "settle invoice"})
        assert found[0]["symbol"] == "settle_invoice" and found[0]["partial"]
        with pytest.raises(JsonRpcException) as raised:
            await request(client, "codesearch/search", {"query": "settle invoice", "mode": "dense"})
        assert raised.value.code == -32803 and "cannot load model" in raised.value.message
        status = (await request(client, "codesearch/status", None))["folders"][0]
        assert status["state"] == "failed" and "cannot load model" in status["error"]

        weights.write_bytes(good)  # the model is back: a reindex computes the missing vectors
        await request(client, "codesearch/reindex", {})

        async def complete() -> bool:  # every chunk has its vector, as the server's reader sees it
            found = await request(client, "codesearch/search", {"query": "settle invoice", "mode": "dense"})
            return bool(found) and not found[0]["partial"]

        deadline = time.monotonic() + 120
        while not await complete():
            assert time.monotonic() < deadline, "the reindex never completed"
            await asyncio.sleep(0.2)
        folder = (await request(client, "codesearch/status", None))["folders"][0]
        assert folder["state"] == "ready" and folder["index"]["chunks_embedded"] == folder["index"]["chunks"]
        found = await request(client, "codesearch/search", {"query": "settle invoice"})
        assert found[0]["symbol"] == "settle_invoice" and not found[0]["partial"]


def _wait(check, what: str, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # the index is being rebuilt: reads may fail meanwhile
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _listing(folder: Path) -> list[str]:
    """Every path under ``folder`` (what a reader must leave as it found it)."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.mark.slow
@pytest.mark.e2e
def test_a_missing_chunk_table_is_an_error_for_readers_who_create_nothing_and_the_next_index_rebuilds_it(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    index_dir, env, index = _cli_tree(tmp_path, tiny_modernbert)
    search = [EXE, "search", "sum of the state", "--index-dir", str(index_dir), "--json"]
    status = [EXE, "status", "--index-dir", str(index_dir), "--json"]
    built = subprocess.run(index, env=env, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    chunks = json.loads(built.stdout)["chunks"]
    before = snapshot(index_dir)
    assert chunks == len(before[1]) > 0

    shutil.rmtree(index_dir / "chunks.lance")
    listing = _listing(index_dir)
    for reader in (search, status):  # read-only: no table made for the occasion, no "No results."
        failed = subprocess.run(reader, env=env, capture_output=True, text=True)
        assert failed.returncode == 6, (failed.returncode, failed.stdout, failed.stderr)
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and "no chunks table" in lines[0] and "run codesearch index to repair it" in lines[0]
        assert failed.stdout == ""
        assert _listing(index_dir) == listing, reader[1]

    # the next run does not trust its snapshot or meta.json: it finds the catalog without its
    # chunks and rebuilds, embedding nothing again
    repaired = subprocess.run(index, env=env, capture_output=True, text=True)
    assert repaired.returncode == 0, repaired.stderr
    stats = json.loads(repaired.stdout)
    assert stats["repaired"] and stats["chunks"] == chunks and stats["chunks_embedded"] == 0
    assert snapshot(index_dir) == before
    found = subprocess.run(search, env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)
    shown = subprocess.run(status, env=env, capture_output=True, text=True)
    assert shown.returncode == 0 and json.loads(shown.stdout)["chunks"] == chunks


@pytest.mark.slow
def test_a_table_missing_when_the_editor_first_searches_is_an_error_then_the_watcher_rebuilds_it(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    tree, index_dir = tmp_path / "tree", tmp_path / "index"
    write_tree(tree, files=30)
    (tree / "pkg0" / "late.py").write_text("def settle_invoice(lines):\n    return sum(lines)\n")
    workspace = Workspace(ProjectOptions(index_dir=index_dir, model=str(tiny_modernbert)))
    try:
        project = workspace.add_folder(tree)
        _wait(lambda: project.state == "ready" and project.watching, "the first index")
        before = snapshot(index_dir)
        shutil.rmtree(index_dir / "chunks.lance")  # before the first search opens the index
        with pytest.raises(IndexCorruptError, match="has no chunks table"):
            workspace.search("settle invoice", 3)
        _wait(lambda: snapshot(index_dir) == before, "the index rebuilt after the error")
        assert workspace.search("settle invoice", 1).results[0].result.symbol == "settle_invoice"
    finally:
        workspace.close()
