"""A live index under load: readers search in every mode while a 5,000-file burst lands in a
watched tree and the writer is stopped at a random moment (``Watcher.stop`` in process; the
language server's ``shutdown`` + ``exit`` over stdio). No reader sees an error, nothing aborts,
and the next run completes an index equal to a clean one (the same chunk rows). The moment is
drawn from a seed printed by each test (set ``CODESEARCH_TEST_SEED`` to replay one). The model is
the tests' tiny random ModernBERT: 5,000 files embedded twice stay quick on two cores."""

from __future__ import annotations

import os
import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_stopping import _start_server, undone, until

from codesearch import MODES, Indexer, Searcher
from codesearch.embedding import Embedder, load_embedder
from codesearch.index.runs import writer_running
from codesearch.index.watcher import Watcher
from codesearch.store import Store

pytestmark = pytest.mark.slow

BURST = 5000
QUERIES = ("handle request weight", "tally the items", "def tally_17")


def seeded() -> random.Random:
    seed = int(os.environ.get("CODESEARCH_TEST_SEED") or random.randrange(2**32))
    print(f"seed {seed} (CODESEARCH_TEST_SEED={seed} replays it)")
    return random.Random(seed)


def write_burst(root: Path, files: int = BURST) -> None:
    """``files`` tiny modules, 100 to a folder, written in place as a checkout would."""
    for i in range(files):
        path = root / f"burst{i // 100}" / f"m{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def tally_{i}(items):\n    return sum(item.weight * {i} for item in items)\n")


@pytest.fixture(scope="module")
def tiny(tiny_modernbert: Path) -> Embedder:
    return load_embedder(str(tiny_modernbert))


def rows(index_dir: Path) -> list[tuple[Any, ...]]:
    """Every chunk row without its embedded flag (a clean index made without vectors compares)."""
    return [row[:-1] for row in Store.open(index_dir).chunk_rows()]


def assert_equals_a_clean_index(root: Path, index_dir: Path, tmp_path: Path, embedder: Any) -> None:
    Indexer(root, index_dir, embedder=embedder).run()  # the next run completes what the stop left
    clean = tmp_path / "clean"
    Indexer(root, clean, embedder=embedder).run(dense=False)  # the same rows; vectors are not compared
    assert rows(index_dir) == rows(clean)
    assert len(rows(clean)) >= BURST
    assert undone(index_dir) == 0


class Readers:
    """Threads searching ``index_dir`` in every mode until stopped; what they saw go wrong."""

    def __init__(self, index_dir: Path, embedder: Any, threads: int = 2) -> None:
        self.searcher = Searcher(index_dir, embedder=embedder)  # one, shared, as a server shares it
        self.errors: list[str] = []
        self.done = {mode: 0 for mode in MODES}
        self.empty = {mode: 0 for mode in MODES}  # answers with no result (the index always has some)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(n,), daemon=True) for n in range(threads)]
        for thread in self._threads:
            thread.start()

    def _read(self, n: int) -> None:
        turn = n
        while not self._stop.is_set():
            mode, query = MODES[turn % len(MODES)], QUERIES[turn % len(QUERIES)]
            turn += 1
            try:
                found = self.searcher.search(query, k=10, mode=mode)
                self.done[mode] += 1
                self.empty[mode] += not found
            except Exception as exc:  # every error counts, whatever its kind
                self.errors.append(f"{mode} {query!r}: {type(exc).__name__}: {exc}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
            assert not thread.is_alive(), "a reader is stuck"


def test_readers_during_a_burst_with_the_watcher_writing_then_stop_at_a_random_moment(
    tmp_path: Path, tiny: Embedder
) -> None:
    embedder = tiny
    rng = seeded()
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_burst(root / "base", 20)
    watcher = Watcher(root, index_dir, embedder=embedder)
    watcher.start()
    readers = Readers(index_dir, embedder)
    burst = threading.Thread(target=write_burst, args=(root,))
    try:
        started = time.monotonic()
        burst.start()
        stop_after = rng.uniform(0.5, 20.0)  # while the burst is written, or being indexed, or after
        while time.monotonic() - started < stop_after and watcher.error is None:
            time.sleep(0.05)
        print(f"stopping {stop_after:.1f} s into the burst; searches {readers.done}, empty {readers.empty}")
    finally:
        stopped = watcher.stop(timeout=120)
        readers.stop()
        burst.join()
    assert stopped, "the watcher stopped"
    assert watcher.error is None, watcher.error
    assert not readers.errors, readers.errors[:5]
    assert all(readers.done.values()), readers.done
    assert not any(readers.empty.values()), readers.empty
    assert not writer_running(index_dir)
    assert_equals_a_clean_index(root, index_dir, tmp_path, embedder)


@pytest.mark.e2e
def test_lsp_symbols_during_a_burst_then_shutdown_and_exit_at_a_random_moment(
    tmp_path: Path, tiny_modernbert: Path, tiny: Embedder
) -> None:
    embedder = tiny
    rng = seeded()
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_burst(root / "base", 20)
    server, stderr = _start_server(tmp_path, root, index_dir, model=str(tiny_modernbert))
    errors: list[dict[str, Any]] = []
    answered, found = [0], [0]
    hammering = threading.Event()
    burst = threading.Thread(target=write_burst, args=(root,))

    def hammer() -> None:  # one request at a time, each answered before the next
        ids = iter(range(100, 10**9))
        while hammering.is_set():
            request = next(ids)
            server.send(id=request, method="workspace/symbol", params={"query": QUERIES[request % len(QUERIES)]})
            answer = server.answer(request, 60)
            if "result" in answer:
                answered[0] += 1
                found[0] += bool(answer["result"])
            else:
                errors.append(answer)

    def ready() -> bool:
        server.send(id=3, method="codesearch/status", params={})
        return bool(server.answer(3, 60)["result"]["folders"][0]["state"] == "ready")

    try:
        until(ready, 120, "the first index")
        hammering.set()
        symbols = threading.Thread(target=hammer, daemon=True)
        symbols.start()
        burst.start()
        started = time.monotonic()
        stop_after = rng.uniform(0.0, 20.0)  # while the burst is written, or being indexed, or after
        while time.monotonic() - started < stop_after:
            time.sleep(0.05)
        until(lambda: bool(answered[0] or errors), 60, "a first workspace/symbol answer")
        hammering.clear()
        symbols.join(60)
        assert not symbols.is_alive(), "a workspace/symbol request went unanswered"
        print(f"shutdown {stop_after:.1f} s into the burst, after {answered[0]} answers ({found[0]} not empty)")
        server.send(id=2, method="shutdown")
        assert "result" in server.answer(2, 30)
        server.send(method="exit")
        try:
            code = server.proc.wait(timeout=30)  # a hang detector, not a time bound
        except subprocess.TimeoutExpired:
            raise AssertionError("the server still runs 30 s after exit") from None
    finally:
        hammering.clear()
        if burst.is_alive():
            burst.join()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        stderr.close()
    log = (tmp_path / "stderr.txt").read_text(errors="replace")
    assert "terminate called" not in log and "Traceback" not in log, log[-3000:]
    assert code == 0, (code, log[-3000:])
    assert not errors, errors[:5]
    assert found[0] == answered[0] > 0, "every workspace/symbol answer has symbols (the index always has some)"
    until(lambda: not writer_running(index_dir), 10, "the writer lock to be free")
    assert_equals_a_clean_index(root, index_dir, tmp_path, embedder)
