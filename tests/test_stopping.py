"""Stopping a writer while it writes: ``Watcher.stop`` during an update, a folder removed from a
workspace during its first index, and the language server's ``shutdown`` + ``exit`` during its
first dense pass. Each stops at the next batch, releases the writer lock only once nothing
writes, and leaves an index the next run completes (equal to a clean one)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from codesearch import Indexer
from codesearch.index.runs import Progress, read_progress, writer_running
from codesearch.index.watcher import Watcher
from codesearch.service import ProjectOptions, Workspace
from codesearch.store import Store

pytestmark = pytest.mark.slow

EXE = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"


def write_tree(root: Path, files: int, functions: int = 6) -> None:
    """``files`` modules of distinct functions: a dense pass of many batches (nothing cached)."""
    for i in range(files):
        path = root / f"pkg{i // 100}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "\n\n".join(
                f'def handler_{i}_{j}(request, limit={i * 7 + j}):\n    """Handle request kind {i} in variant {j}."""\n'
                f"    total = {j}\n    for item in request.items[:limit]:\n"
                f"        total += item.weight_{j} * {i + j}\n    return total\n"
                for j in range(functions)
            )
        )


def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def embedding(index_dir: Path) -> bool:
    """The run writing ``index_dir`` (another process) is in its dense pass."""
    progress = read_progress(index_dir)
    return bool(progress and progress.get("phase") == "embedding")


def first_batch_embedded(progress: Progress, seen: threading.Event) -> None:
    """An ``on_progress`` callback: ``seen`` is set once a dense batch is committed (of three)."""
    if progress.phase == "embedding" and progress.chunks_embedded:
        seen.set()


def files_of(index_dir: Path) -> dict[str, tuple[int, int]]:
    """Every file of the index folder (tables, versions, meta) with its size and mtime."""
    found = {}
    for path in index_dir.rglob("*"):
        if path.is_file() and not path.name.endswith(".lock") and path.name != "progress.json":
            stat = path.stat()
            found[str(path.relative_to(index_dir))] = (stat.st_size, stat.st_mtime_ns)
    return found


def undone(index_dir: Path) -> int:
    """How many files of the index still lack their vectors."""
    return len(Store.open(index_dir).file_catalog(where="dense = false"))


def assert_nothing_writes(index_dir: Path) -> None:
    assert not writer_running(index_dir), "the writer lock is free"
    before = files_of(index_dir)
    time.sleep(3.0)
    assert files_of(index_dir) == before, "nothing writes the index after the writer stopped"


def assert_resumes_to_a_clean_index(root: Path, index_dir: Path, tmp_path: Path, embedder: Any) -> None:
    stats = Indexer(root, index_dir, embedder=embedder).run()
    clean = Indexer(root, tmp_path / "clean", embedder=embedder).run(dense=False)  # counts need no vectors
    assert (stats.files, stats.chunks) == (clean.files, clean.chunks)
    assert undone(index_dir) == 0


def test_watcher_stop_during_an_update_waits_for_the_writer_and_stops_it(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, 2)
    seen = threading.Event()
    watcher = Watcher(root, index_dir, embedder=embedder, on_progress=lambda p: first_batch_embedded(p, seen))
    watcher.start()
    seen.clear()  # the first update (2 files) embedded too
    try:
        write_tree(tmp_path / "staging", 100)
        (tmp_path / "staging" / "pkg0").rename(root / "more")  # one event: one long update (600 chunks)
        assert seen.wait(120), "the update's dense pass"
    finally:
        watcher.stop()  # waits for the batch being embedded, not for the rest of the update
    assert undone(index_dir) > 0, "the update stopped at a batch, not at its end"
    assert_nothing_writes(index_dir)
    assert_resumes_to_a_clean_index(root, index_dir, tmp_path, embedder)


def test_a_folder_removed_during_its_first_index_stops_its_writer(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, 100)
    seen = threading.Event()
    workspace = Workspace(ProjectOptions(index_dir=index_dir), on_progress=lambda _, p: first_batch_embedded(p, seen))
    try:
        workspace.add_folder(root)
        assert seen.wait(180), "the first dense pass"
        removed = time.monotonic()
        workspace.remove_folder(root)  # returns at once: the writer stops in the background
        assert time.monotonic() - removed < 1.0
        until(lambda: not writer_running(index_dir), 120, "the writer lock to be released")  # one batch at most
        assert undone(index_dir) > 0, "the first index stopped at a batch, not at its end"
        assert_nothing_writes(index_dir)
    finally:
        assert workspace.close(timeout=60)
    assert_resumes_to_a_clean_index(root, index_dir, tmp_path, embedder)


class _Stdio:
    """A language server over raw stdio: frames in, parsed messages out (on a reader thread)."""

    def __init__(self, env: dict[str, str], stderr: Any) -> None:
        self.proc = subprocess.Popen(
            [EXE, "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
        )
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            header = b""
            while not header.endswith(b"\r\n\r\n"):
                byte = self.proc.stdout.read(1)
                if not byte:
                    return
                header += byte
            length = int(header.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            self.messages.put(json.loads(self.proc.stdout.read(length)))

    def send(self, **fields: Any) -> None:
        assert self.proc.stdin is not None
        body = json.dumps({"jsonrpc": "2.0", **fields}).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def answer(self, id: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            if message.get("id") == id and "method" not in message:
                return message


@pytest.mark.e2e
def test_lsp_shutdown_and_exit_during_the_first_dense_pass(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, 100)
    stderr = (tmp_path / "stderr.txt").open("wb")
    server = _Stdio(dict(os.environ), stderr)
    try:
        server.send(
            id=1,
            method="initialize",
            params={
                "processId": None,
                "rootUri": root.as_uri(),
                "capabilities": {},
                "initializationOptions": {"indexDir": str(index_dir)},
            },
        )
        assert "result" in server.answer(1, 60)
        server.send(method="initialized", params={})
        until(lambda: embedding(index_dir), 180, "the first dense pass")
        asked = time.monotonic()
        server.send(id=2, method="shutdown")
        assert "result" in server.answer(2, 5)
        answered = time.monotonic() - asked
        server.send(method="exit")
        exited = time.monotonic()
        code = server.proc.wait(timeout=30)
        took = time.monotonic() - exited
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        stderr.close()
    errors = (tmp_path / "stderr.txt").read_text(errors="replace")
    print(f"shutdown answered in {answered:.2f} s; exited {took:.2f} s after exit")
    assert "terminate called" not in errors, errors[-2000:]
    assert code == 0, (code, errors[-2000:])
    assert took < 2.0, took  # exit code 0 within 2 s of the exit notification
    assert answered < 1.0, answered  # shutdown is answered at once: stopping runs off the event loop
    assert not writer_running(index_dir)
    # the next run completes what was left: the index equals a clean one
    assert_next_run_completes(root, index_dir, tmp_path, embedder)


def assert_next_run_completes(root: Path, index_dir: Path, tmp_path: Path, embedder: Any) -> None:
    """``codesearch index`` completes what a stopped writer left: as many files and chunks as a
    clean index of the tree, and every chunk embedded."""
    done = subprocess.run(
        [EXE, "index", str(root), "--index-dir", str(index_dir), "--json"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    clean = Indexer(root, tmp_path / "clean", embedder=embedder).run(dense=False)
    assert (stats["files"], stats["chunks"]) == (clean.files, clean.chunks)
    assert undone(index_dir) == 0


def _start_server(tmp_path: Path, root: Path, index_dir: Path, **options: Any) -> tuple[_Stdio, Any]:
    stderr = (tmp_path / "stderr.txt").open("wb")
    server = _Stdio(dict(os.environ), stderr)
    params = {
        "processId": None,
        "rootUri": root.as_uri(),
        "capabilities": {},
        "initializationOptions": {"indexDir": str(index_dir), **options},
    }
    server.send(id=1, method="initialize", params=params)
    assert "result" in server.answer(1, 60)
    server.send(method="initialized", params={})
    return server, stderr


def _close_stdin_and_wait(server: _Stdio, stderr: Any, tmp_path: Path, shutdown: bool) -> tuple[int, str]:
    """Close the server's stdin (a client gone without ``exit``, after ``shutdown`` or not):
    its exit code and stderr. The 30 s are a hang detector, not a time bound."""
    try:
        if shutdown:
            server.send(id=2, method="shutdown")
            assert "result" in server.answer(2, 30)
        assert server.proc.stdin is not None
        closed = time.monotonic()
        server.proc.stdin.close()
        try:
            code = server.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError("the server still runs 30 s after its stdin closed") from None
        print(f"exited {time.monotonic() - closed:.2f} s after its stdin closed, code {code}")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        stderr.close()
    return code, (tmp_path / "stderr.txt").read_text(errors="replace")


@pytest.mark.e2e
def test_lsp_end_of_stdin_during_the_first_dense_pass_exits_0_and_the_next_run_completes(
    tmp_path: Path,
    embedder,  # type: ignore[no-untyped-def]
) -> None:
    """An editor killed mid-index: no ``exit``, its end of the pipe closes."""
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, 60)
    server, stderr = _start_server(tmp_path, root, index_dir)
    until(lambda: embedding(index_dir), 180, "the first dense pass")
    code, errors = _close_stdin_and_wait(server, stderr, tmp_path, shutdown=False)
    assert "terminate called" not in errors and "Traceback" not in errors, errors[-2000:]
    assert code == 0, (code, errors[-2000:])
    assert not writer_running(index_dir)
    assert_next_run_completes(root, index_dir, tmp_path, embedder)


@pytest.mark.e2e
@pytest.mark.parametrize("shutdown", [False, True], ids=["no-shutdown", "after-shutdown"])
def test_lsp_end_of_stdin_while_the_writer_is_stuck_exits_0_as_exit_does(
    tmp_path: Path, tiny_modernbert: Path, shutdown: bool
) -> None:
    """The writer cannot stop (its model's weights do not come: a FIFO nobody writes stands for a
    stalled network disk or download): the end of stdin ends the server anyway, as ``exit``
    does, instead of waiting for ever for the writer. The next run, weights back, completes."""
    model = tmp_path / "model"
    shutil.copytree(tiny_modernbert, model)
    weights = model / "model.safetensors"
    weights.rename(tmp_path / "weights")
    os.mkfifo(weights)
    root, index_dir = tmp_path / "ws", tmp_path / "index"
    write_tree(root, 20)
    server, stderr = _start_server(tmp_path, root, index_dir, model=str(model))
    until(lambda: writer_running(index_dir), 60, "the writer to start")
    time.sleep(1.0)  # it is stuck reading the weights
    code, errors = _close_stdin_and_wait(server, stderr, tmp_path, shutdown)
    assert "terminate called" not in errors and "Traceback" not in errors, errors[-2000:]
    assert code == 0, (code, errors[-2000:])
    assert not writer_running(index_dir)
    weights.unlink()
    (tmp_path / "weights").rename(weights)
    stats = Indexer(root, index_dir, model=str(model)).run()
    clean = Indexer(root, tmp_path / "clean", model=str(model)).run()
    assert (stats.files, stats.chunks) == (clean.files, clean.chunks) and stats.files == 20
    assert undone(index_dir) == 0
