"""Run bookkeeping on real trees and a real LanceDB folder: the no-change fast path (the stat
snapshot), chunk ids in the catalog, the dense pass's priority (open files, git, mtime), and
the progress another process sees while a run writes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codesearch import Indexer, index_status
from codesearch.embedding import load_embedder
from codesearch.files.walk import content_hash
from codesearch.index.priority import dense_order
from codesearch.index.runs import PROGRESS, read_progress
from codesearch.store import FileRecord, Store, read_snapshot

GIT = shutil.which("git")


@pytest.fixture(scope="module")
def tiny(tiny_modernbert: Path):  # type: ignore[no-untyped-def]
    return load_embedder(str(tiny_modernbert))


def run(root: Path, index_dir: Path, tiny, **kwargs):  # type: ignore[no-untyped-def]
    return Indexer(root, index_dir, embedder=tiny, **kwargs).run()


def subprocess_run(code: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


NO_CHANGE_RUN = """
import json, sys
from pathlib import Path
from codesearch import Indexer
stats = Indexer(Path(sys.argv[1]), Path(sys.argv[2])).run()
print(json.dumps([stats.as_dict(), "lancedb" in sys.modules, "torch" in sys.modules]))
"""


def test_a_no_change_run_stops_at_the_stat_snapshot(sample_tree: Path, tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    (sample_tree / "data.py").write_bytes(b"\x00\x01binary")  # skipped at load: the snapshot keeps why
    index_dir = tmp_path / "index"
    first = run(sample_tree, index_dir, tiny)
    assert read_snapshot(index_dir) is not None and first.skipped == {"binary": 1}

    stats, imported_lancedb, imported_torch = json.loads(
        subprocess_run(NO_CHANGE_RUN, str(sample_tree), str(index_dir))
    )
    assert not imported_lancedb and not imported_torch  # the fast path opens no table and loads no model
    (index_dir / "snapshot.json").unlink()  # the slow path (read the catalog, plan) must agree
    slow = run(sample_tree, index_dir, tiny)
    for key in ("files", "chunks", "files_unchanged", "files_changed", "files_deleted", "skipped", "chunks_embedded"):
        assert stats[key] == getattr(slow, key), key
    assert (stats["files"], stats["files_changed"], stats["skipped"]) == (first.files, 0, {"binary": 1})
    assert read_snapshot(index_dir) is not None  # the slow run wrote it again


def test_every_write_clears_the_snapshot(sample_tree: Path, tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    index_dir = tmp_path / "index"
    run(sample_tree, index_dir, tiny)
    path = sample_tree / "pkg" / "links.py"
    original, stat = path.read_bytes(), path.stat()
    path.write_text(path.read_text() + "\n\ndef extra_helper():\n    return 1\n")
    Indexer(sample_tree, index_dir, embedder=tiny).run(paths=["pkg/links.py"])  # a watcher's update
    assert read_snapshot(index_dir) is None
    # put the old bytes and stat back: the old snapshot would now match the disk, not the index
    path.write_bytes(original)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = run(sample_tree, index_dir, tiny)
    assert again.files_changed == 1
    record = Store.open(index_dir).file_catalog()["pkg/links.py"]
    assert record.file_hash == content_hash(original)


def test_changed_options_are_not_a_no_change_run(sample_tree: Path, tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    index_dir = tmp_path / "index"
    first = run(sample_tree, index_dir, tiny)
    fewer = run(sample_tree, index_dir, tiny, extra_ignores=("*.js",))
    assert fewer.files_deleted == 1 and fewer.files == first.files - 1
    bigger = run(sample_tree, index_dir, tiny, extra_ignores=("*.js",), max_file_bytes=10)
    assert bigger.files == 0 and bigger.skipped.get("too_large")


def test_the_catalog_lists_each_files_chunk_ids(sample_tree: Path, tmp_path: Path, tiny) -> None:  # type: ignore[no-untyped-def]
    run(sample_tree, tmp_path / "a", tiny)
    store = Store.open(tmp_path / "a")
    rows = store.chunk_rows()
    ids_by_path: dict[str, list[tuple[int, str]]] = {}
    for path, start, _end, _symbol, cid, _vkey, _embedded in rows:
        ids_by_path.setdefault(path, []).append((start, cid))
    catalog = store.file_catalog()
    assert set(catalog) == set(ids_by_path)
    for path, record in catalog.items():
        assert list(record.chunk_ids) == [cid for _start, cid in sorted(ids_by_path[path])], path
        assert record.chunks == len(record.chunk_ids)
    assert len({row[4] for row in rows}) == len(rows)  # unique
    run(sample_tree, tmp_path / "b", tiny)  # deterministic: another index of the tree has the same ids
    assert Store.open(tmp_path / "b").file_catalog() == catalog

    path = sample_tree / "pkg" / "links.py"
    path.write_text(path.read_text().replace("links.append(val.strip())", "links.append(val.strip().lower())"))
    run(sample_tree, tmp_path / "a", tiny)
    after = Store.open(tmp_path / "a").file_catalog()["pkg/links.py"].chunk_ids
    before = catalog["pkg/links.py"].chunk_ids
    assert len(set(before) - set(after)) == 1  # only the edited function's chunk has a new id


def record(path: str, mtime_ns: int = 10**18) -> FileRecord:
    return FileRecord(path, 1, mtime_ns, "h", "python", 1, dense=False)


@pytest.mark.skipif(GIT is None, reason="needs git")
def test_dense_order_open_files_then_work_in_progress_then_recent_commits(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(
            ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True, capture_output=True
        )

    git("init", "-q")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("old.py", "older.py", "recent.py", "opened.py", "edited.py"):
        (src / name).write_text(f"# {name}\n")
    git("add", ".")
    git("commit", "-qm", "first")
    (src / "recent.py").write_text("# recent, committed last\n")
    git("commit", "-qam", "second")
    (src / "edited.py").write_text("# edited, not committed\n")
    (src / "new.py").write_text("# untracked\n")
    root = src  # a sub-folder of the repository: paths come relative to it
    names = ["old.py", "older.py", "recent.py", "opened.py", "edited.py", "new.py"]
    records = [record(n, mtime_ns=10**18 + (5 if n == "older.py" else 0)) for n in names]  # one checkout time
    order = [r.path for r in dense_order(records, root, {"opened.py": 1.0})]
    assert order[0] == "opened.py"
    assert set(order[1:3]) == {"edited.py", "new.py"}
    assert order[3] == "recent.py"
    assert order[4:] == ["older.py", "old.py"]  # same commit: newer mtime first


def test_dense_order_without_git_is_newest_first(tmp_path: Path) -> None:
    records = [record("a.py", 1), record("b.py", 3), record("c.py", 2)]
    assert [r.path for r in dense_order(records, tmp_path)] == ["b.py", "c.py", "a.py"]
    assert [r.path for r in dense_order(records, tmp_path, {"a.py": 5.0})] == ["a.py", "b.py", "c.py"]


def test_status_shows_a_running_index_from_another_process(
    sample_tree: Path, tmp_path: Path, tiny, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import codesearch.index.indexer as indexer_module
    import codesearch.index.runs as runs_module

    monkeypatch.setattr(indexer_module, "BATCH_CHUNKS", 1)  # one file per batch: the opened file shows first
    monkeypatch.setattr(runs_module, "WRITE_EVERY_S", 0.0)  # every step reaches the file (else twice a second)
    index_dir = tmp_path / "index"
    seen: dict[str, object] = {}
    exe = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"

    def progress(p) -> None:  # type: ignore[no-untyped-def]
        key = f"{p.phase} {p.files_done}"
        if key in ("indexing 1", "embedding 1") and key not in seen:
            seen[key] = subprocess.run(
                [exe, "status", "--index-dir", str(index_dir)], capture_output=True, text=True, timeout=60
            ).stdout
            seen[key + " status"] = index_status(index_dir)["running"]
        if key == "embedding 1":
            seen["first dense"] = [r.path for r in Store.open(index_dir).file_catalog().values() if r.dense]

    indexer = Indexer(sample_tree, index_dir, embedder=tiny, on_progress=progress)
    indexer.note_opened("src/util.js")
    indexer.run()
    assert "running  lexical pass" in str(seen["indexing 1"]) and "changed files" in str(seen["indexing 1"])
    assert "running  dense pass" in str(seen["embedding 1"]) and "1 of" in str(seen["embedding 1"])
    running = seen["embedding 1 status"]
    assert isinstance(running, dict) and running["pid"] == os.getpid() and running["phase"] == "embedding"
    assert seen["first dense"] == ["src/util.js"]  # the file open in the editor got its vectors first
    assert read_progress(index_dir) is None and not (index_dir / PROGRESS).exists()
    assert index_status(index_dir)["running"] is None


def test_progress_left_by_a_killed_run_is_ignored(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / PROGRESS).write_text(json.dumps({"pid": dead.pid, "phase": "indexing", "files_done": 3}))
    assert read_progress(tmp_path) is None
