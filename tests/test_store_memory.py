"""Memory of a long-lived index connection (issue 20, item 8).

LanceDB caches table metadata and index pages per connection, keyed by table version. With its
default limits (1 GiB and 6 GiB) a connection that lives through many commits (a language
server's reader, a watcher's writes, a long first index) kept every version it read: RSS grew
by about 1 MiB per write batch. Each connection the store opens now has bounded caches.

The test records the session each connection gets (the one LanceDB would make itself when it
is given none, on the code before the fix), lowers the limits so a few dozen commits exceed them,
and checks the caches stay within them while one store writes and reads.
"""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codesearch.store import FileRecord
from codesearch.store import lance as store_lance
from codesearch.store.lance import Store

DIM = 8
LIMIT_MIB = 1  # each of the two caches, in this test


def _rows(path: str, edit: int) -> tuple[FileRecord, list[dict[str, object]]]:
    rng = np.random.default_rng(edit)
    rows: list[dict[str, object]] = [
        dict(
            id=f"{path}:{edit}:{j}",
            vkey=f"{edit}:{j}",
            path=path,
            start_line=j * 3 + 1,
            end_line=j * 3 + 3,
            symbol=f"helper_{j}",
            kind="function",
            language="python",
            text=f"def helper_{j}(x):\n    return x + {edit}\n",
            terms=f"helper {j} return {edit}",
            file_hash=str(edit),
            embedded=True,
            vector=rng.standard_normal(DIM).astype(np.float32),
        )
        for j in range(3)
    ]
    record = FileRecord(
        path=path,
        size=100,
        mtime_ns=edit,
        file_hash=str(edit),
        language="python",
        chunks=len(rows),
        dense=True,
        chunk_ids=tuple(str(r["id"]) for r in rows),
        policy="",
    )
    return record, rows


def test_one_connection_keeps_bounded_caches_through_many_commits(tmp_path: Path, monkeypatch) -> None:
    sessions = []
    connect = store_lance.lancedb.connect

    def recording_connect(*args, session=None, **kwargs):  # type: ignore[no-untyped-def]
        session = session or store_lance.lancedb.Session()  # what LanceDB makes itself when given none
        sessions.append(session)
        return connect(*args, session=session, **kwargs)

    monkeypatch.setattr(store_lance.lancedb, "connect", recording_connect)
    monkeypatch.setattr(store_lance, "METADATA_CACHE_MIB", LIMIT_MIB, raising=False)
    monkeypatch.setattr(store_lance, "INDEX_CACHE_MIB", LIMIT_MIB, raising=False)
    store = Store.create(
        tmp_path / "index", root=str(tmp_path), model_name="m", model_id="m", cache_key="k", dimension=DIM
    )
    seed = [_rows(f"pkg/module_{i}.py", 0) for i in range(30)]
    store.replace_files([r for r, _ in seed], [row for _, rows in seed for row in rows])
    store.finish_writes()
    for edit in range(1, 61):  # one-file edits, each read back as a watcher's reader would
        record, rows = _rows(f"pkg/module_{edit % 30}.py", edit)
        store.replace_files([record], rows)
        assert [h.symbol for h in store.file_chunks([record.path])] == ["helper_0", "helper_1", "helper_2"]
        store.lexical("helper return", 5)
        store.dense(np.ones(DIM, dtype=np.float32), 5)
    used = max(session.size_bytes for session in sessions)
    assert sessions and used <= 2 * LIMIT_MIB * 2**20 * 1.25, f"{used / 2**20:.1f} MiB cached in one connection"


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_a_watcher_gives_freed_heap_pages_back(tmp_path: Path) -> None:
    """What a long-lived watcher does after each compaction: freed C-heap pages that glibc kept
    (freed blocks pinned below live ones, as native libraries leave them) go back to the system."""
    from codesearch.heap import release_free_heap

    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(2000) for _ in range(60_000)]  # ~120 MiB below the mmap threshold: the heap
    for block in blocks:
        ctypes.memset(block, 1, 2000)  # touched: resident
    kept = blocks[1999::2000]  # a live block every 4 MiB keeps the heap from shrinking by itself
    for block in blocks:
        if block not in kept:
            libc.free(block)
    try:
        before = _rss_mib()
        release_free_heap()
        assert _rss_mib() < before - 60, "the freed pages stayed resident"
    finally:
        for block in kept:
            libc.free(block)


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.parametrize(("preset", "expected"), [(None, "system"), ("mimalloc", "mimalloc")])
def test_arrow_allocates_from_the_c_heap(preset: str | None, expected: str) -> None:
    """Arrow's mimalloc kept what a watcher freed in a region of its own (~15 MiB per 1,000
    updates, returned by nothing): opening the store makes Arrow use the C heap, which the
    watcher trims, unless the user chose another pool."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    code = "from codesearch.store import Store; import pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == expected
