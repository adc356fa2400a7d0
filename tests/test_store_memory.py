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

from pathlib import Path

import numpy as np

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
