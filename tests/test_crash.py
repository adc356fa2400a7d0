"""Crash safety: ``kill -9`` a real ``codesearch index`` subprocess at random moments, finish
the index with a new run, and compare it with a clean index of the same tree: no duplicate
rows, nothing missing or stale, and embeddings finished before the kill are reused."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from codesearch import Indexer
from codesearch.embedding import load_embedder
from codesearch.index.runs import read_progress
from codesearch.store import Store

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TRIALS = 20


def write_tree(root: Path, files: int = 120) -> None:
    """Enough chunks for several write batches (256 chunks each)."""
    for f in range(files):
        body = "\n\n".join(
            f"def step_{f}_{i}(state, limit={i}):\n    total = sum(state[:{i + 2}])\n    return total * limit"
            for i in range(8)
        )
        path = root / f"pkg{f % 6}" / f"module_{f}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body + "\n", encoding="utf-8")


def index_subprocess(root: Path, index_dir: Path, model: Path) -> subprocess.Popen[bytes]:
    exe = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [exe, "index", str(root), "--index-dir", str(index_dir), "--model", str(model)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_work(proc: subprocess.Popen[bytes], index_dir: Path, target: float) -> None:
    """Until the run has done ``target`` chunks of work (its lexical pass's chunks, then its dense
    pass's, as its progress file says) or has ended: a kill then lands at a random point of the
    writing whatever the machine's speed (a kill timed by the clock of a clean run landed after
    the end in most trials when the machine got faster than during that run)."""
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        progress = read_progress(index_dir) or {}
        if progress.get("chunks_done", 0) + progress.get("chunks_embedded", 0) >= target:
            return
        time.sleep(0.002)


def wait_for_index(index_dir: Path) -> float:
    """Poll until the subprocess created the index (model loaded, writing begins)."""
    deadline = time.monotonic() + 120
    while not (index_dir / "meta.json").exists():
        assert time.monotonic() < deadline, "the index was never created"
        time.sleep(0.005)
    return time.monotonic()


def snapshot(index_dir: Path) -> tuple[dict[str, str], list[tuple[str, int, int, str, str, bool]]]:
    store = Store.open(index_dir)
    return {path: record.file_hash for path, record in store.file_catalog().items()}, store.chunk_rows()


def test_kill_9_at_random_moments_then_rerun_gives_exactly_the_clean_index(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    root = tmp_path / "tree"
    write_tree(root)
    clean_dir = tmp_path / "clean"
    clean_run = index_subprocess(root, clean_dir, tiny_modernbert)
    writing_started = wait_for_index(clean_dir)
    assert clean_run.wait(timeout=300) == 0, clean_run.stderr.read() if clean_run.stderr else ""
    writing_seconds = time.monotonic() - writing_started  # from the index's creation to the end
    clean_files, clean_rows = snapshot(clean_dir)
    assert len(clean_files) == 120 and len(clean_rows) >= 960 and len(set(clean_rows)) == len(clean_rows)
    assert all(row[-1] for row in clean_rows)  # every row embedded

    embedder = load_embedder(str(tiny_modernbert))
    rng = random.Random(4)
    reused_after_kill = 0
    killed_while_writing = 0
    for trial in range(TRIALS):
        index_dir = tmp_path / f"trial-{trial}"
        proc = index_subprocess(root, index_dir, tiny_modernbert)
        wait_for_index(index_dir)
        wait_for_work(proc, index_dir, rng.uniform(0, 2 * len(clean_rows)))  # both passes: 2 x the chunks
        time.sleep(rng.uniform(0.0, min(0.2, writing_seconds / 10)))  # between two progress writes
        proc.send_signal(signal.SIGKILL)
        if proc.wait(timeout=60) == -signal.SIGKILL:
            killed_while_writing += 1
        stats = Indexer(root, index_dir, embedder=embedder).run()
        files, rows = snapshot(index_dir)
        assert len(rows) == len(set(rows)), f"trial {trial}: duplicate chunk rows"
        assert files == clean_files, f"trial {trial}: catalog differs"
        assert rows == clean_rows, f"trial {trial}: chunks differ"
        assert stats.chunks_embedded + stats.chunks_reused <= len(clean_rows)
        reused_after_kill += stats.chunks_reused + 8 * stats.files_unchanged
    # most kills land before the run has ended (a few may come after its last progress write)
    assert killed_while_writing >= TRIALS // 2
    assert reused_after_kill > 0  # work committed before a kill is not redone
