"""Faults: the disk filling up while the index is written (the run stops with a clear message
and exit code 8, nothing committed is lost, and the next run ends with exactly the index a
clean run writes), and the index folder deleted under a running watcher and searcher (a clear
error, then the watcher rebuilds the whole index by itself).

The small disk is a tmpfs mounted in a private mount namespace (``unshare -m``, as root, or
``unshare -r -m`` where user namespaces are allowed), so the test needs no privileges outside it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_crash import snapshot, write_tree

from codesearch.errors import IndexCorruptError
from codesearch.index import Indexer
from codesearch.service import ProjectOptions, Workspace

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
