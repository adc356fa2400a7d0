"""Load: 16 concurrent searchers against the real language server while its watcher absorbs a
burst of file changes. No request fails, the latencies are recorded, and once the burst is
absorbed the index equals a clean index of the final tree.

The model is the tiny random ModernBERT (the load is on the server, the watcher and LanceDB,
not on the encoder). ``CODESEARCH_LOAD_FILES`` sets the burst (default 5,000 changes);
``CODESEARCH_LOAD_REPORT=path.json`` writes the figures (``benchmarks/lsp_load.py`` does, and
appends them to RESULTS.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from pathlib import Path

import pytest
from test_crash import snapshot
from test_lsp import request, serve

from codesearch.index import Indexer

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SEARCHERS = 16
CHANGES = int(os.environ.get("CODESEARCH_LOAD_FILES", "5000"))
QUERIES = ["parse the header", "open a database connection", "compute the total", "retry on failure"]


def module(i: int, version: int) -> str:
    return (
        f'"""Generated module {i}, version {version}."""\n\n\n'
        f"def compute_total_{i}(values):\n"
        f'    """Total of stage {i} (v{version})."""\n'
        f"    return sum(values) * {version + 1} + {i}\n\n\n"
        f"def retry_{i}(action, attempts={version + 2}):\n"
        f"    for _ in range(attempts):\n"
        f"        if action():\n"
        f"            return True\n"
        f"    return False\n"
    )


async def test_sixteen_searchers_during_a_burst_of_changes(tmp_path: Path, tiny_modernbert: Path) -> None:
    workspace = tmp_path / "ws"
    existing = CHANGES // 2  # half the burst edits files the index has, half adds new ones
    for i in range(existing):
        path = workspace / f"pkg{i % 50}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(module(i, 0))

    async with serve([workspace], {"model": str(tiny_modernbert), "maxResults": 10}) as client:
        status = await request(client, "codesearch/status", {})
        index_dir = Path(status["folders"][0]["index_dir"])
        assert status["folders"][0]["index"]["files"] == existing

        latencies: list[float] = []
        errors: list[str] = []
        burst_done = asyncio.Event()

        async def searcher(n: int) -> None:
            i = 0
            while not burst_done.is_set() or i < 5:
                started = time.perf_counter()
                try:
                    if i % 2:
                        await client.workspace_symbol_async(_symbol_params(QUERIES[(n + i) % len(QUERIES)]))
                    else:
                        await request(client, "codesearch/search", {"query": QUERIES[(n + i) % len(QUERIES)]})
                except Exception as exc:  # every failure is counted, none may happen
                    errors.append(f"{type(exc).__name__}: {exc}")
                latencies.append(time.perf_counter() - started)
                i += 1

        async def burst() -> float:
            started = time.perf_counter()
            for i in range(CHANGES):
                version, index = (1, i) if i < existing else (0, i)
                path = workspace / f"pkg{index % 50}" / f"mod_{index}.py"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(module(index, version))
                if i % 200 == 0:
                    await asyncio.sleep(0)  # let the searchers run between writes
            written = time.perf_counter() - started
            await _absorbed(client, CHANGES)
            burst_done.set()
            return written

        started = time.perf_counter()
        tasks = [asyncio.create_task(searcher(n)) for n in range(SEARCHERS)]
        written = await burst()
        await asyncio.gather(*tasks)
        absorbed = time.perf_counter() - started

    assert not errors, errors[:5]
    # the index the watcher kept equals a clean index of the final tree
    clean = tmp_path / "clean"
    Indexer(workspace, clean, model=str(tiny_modernbert)).run()
    assert snapshot(index_dir) == snapshot(clean)

    ms = sorted(1000 * s for s in latencies)
    figures = {
        "searchers": SEARCHERS,
        "changes": CHANGES,
        "requests": len(ms),
        "errors": len(errors),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 1),
        "max_ms": round(ms[-1], 1),
        "burst_written_s": round(written, 1),
        "burst_absorbed_s": round(absorbed, 1),
    }
    print(json.dumps(figures))
    report = os.environ.get("CODESEARCH_LOAD_REPORT")
    if report:
        Path(report).write_text(json.dumps(figures))


def _symbol_params(query: str):  # type: ignore[no-untyped-def]
    from lsprotocol import types

    return types.WorkspaceSymbolParams(query=query)


async def _absorbed(client, files: int, timeout: float = 600) -> None:  # type: ignore[no-untyped-def]
    """Until the watcher has indexed ``files`` files, all with vectors, and has been idle (no
    run, no new commit) for two seconds: longer than its debounce, so no event is pending."""
    deadline = time.monotonic() + timeout
    quiet_since, last = 0.0, None
    while time.monotonic() < deadline:
        (folder,) = (await request(client, "codesearch/status", {}))["folders"]
        index = folder.get("index") or {}
        done = (
            folder["state"] == "ready"
            and index.get("files") == files
            and index.get("chunks") == index.get("chunks_embedded")
            and not index.get("running")
        )
        state = (index.get("chunks"), index.get("updated"), index.get("last_run"))
        if not done or state != last:
            quiet_since, last = time.monotonic(), state
        elif time.monotonic() - quiet_since >= 2.0:
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"the watcher did not absorb the burst in {timeout} s")
