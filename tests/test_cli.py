"""The installed ``codesearch`` command, end to end in subprocesses: --json shapes, human
output, and one-line errors with exit codes (never a traceback)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_samples

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

INDEX_KEYS = {"files", "chunks", "chunks_embedded", "chunks_reused", "files_skipped", "seconds", "model"}
RESULT_KEYS = {"path", "start_line", "end_line", "symbol", "kind", "language", "score", "snippet", "root"}


def codesearch(*args: str, cwd: Path | None = None, env_home: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
    env = {**os.environ, "CODESEARCH_HOME": str(env_home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run([exe, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:  # type: ignore[type-arg]
    base = tmp_path_factory.mktemp("cli")
    root = base / "my project's naïve 100% tree"
    write_samples(root)
    (root / "data.bin").write_bytes(b"\x00" * 100)
    (root / "blob.py").write_bytes(b"\x00binary")
    home = base / "home"
    done = codesearch("index", str(root), "--json", env_home=home)
    assert done.returncode == 0, done.stderr
    return root, home, json.loads(done.stdout)


def test_index_json_shape(indexed) -> None:  # type: ignore[no-untyped-def]
    _root, _home, stats = indexed
    assert set(stats) >= INDEX_KEYS
    assert stats["files"] == 13 and stats["files_skipped"] == 1 and stats["model"] == "minilm-code"
    assert stats["chunks"] == stats["chunks_embedded"] > 13 and stats["chunks_reused"] == 0


def test_reindex_is_a_no_op(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, stats = indexed
    again = codesearch("index", "--json", cwd=root, env_home=home)  # PATH defaults to the current folder
    assert again.returncode == 0, again.stderr
    data = json.loads(again.stdout)
    assert data["chunks_embedded"] == 0 and data["chunks"] == stats["chunks"]


def test_search_json_shape_and_ranking(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    done = codesearch("search", "parse the links in an HTTP header", str(root), "--json", "-k", "5", env_home=home)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert len(results) == 5 and all(set(r) == RESULT_KEYS for r in results)
    top = results[0]
    assert (top["path"], top["start_line"], top["end_line"], top["symbol"]) == (
        "pkg/links.py",
        7,
        12,
        "parse_header_links",
    )
    assert top["kind"] == "function" and top["language"] == "python" and 0 < top["score"] <= 1
    assert top["snippet"].startswith("def parse_header_links(value):")
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_search_filters_and_modes(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    done = codesearch(
        "search", "get a value by key", str(root), "--json", "--lang", "java,rust", "--mode", "dense", env_home=home
    )
    results = json.loads(done.stdout)
    assert results and {r["language"] for r in results} <= {"java", "rust"}
    done = codesearch("search", "matrix", str(root), "--json", "--mode", "lexical", "--path", "*.cpp", env_home=home)
    results = json.loads(done.stdout)
    assert results and {r["path"] for r in results} == {"src/matrix.cpp"}


def test_search_human_output_from_a_subfolder(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    done = codesearch("search", "greet the world by default", "-k", "2", cwd=root / "lib", env_home=home)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0].split()
    assert first[0] == "greeter.rb:9" and first[1] == "Greeting.Greeter.default"  # relative to lib/, where the user is
    assert "def self.default" in done.stdout


def test_status(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, stats = indexed
    done = codesearch("status", str(root), "--json", env_home=home)
    status = json.loads(done.stdout)
    assert status["files"] == 13 and status["chunks"] == stats["chunks"] == status["chunks_embedded"]
    assert status["model"] == "minilm-code" and status["size_bytes"] > 0 and status["updated"]
    assert status["model_reason"].startswith("auto: no ModernBERT weights")  # which model, and why
    human = codesearch("status", str(root), env_home=home).stdout
    assert "chunks" in human and "minilm-code" in human and "using the offline default" in human


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["search", "anything", "{empty}"], 3, "codesearch index"),
        (["status", "{empty}"], 3, "codesearch index"),
        (["index", "/does/not/exist"], 2, "does not exist"),
        (["index", "{empty}", "--model", "no-such-model"], 5, "unknown model"),
        (["search", "x", "{root}", "--path", "!"], 2, "invalid path glob"),
        (["search", "x", "{root}", "-k", "0"], 2, "k must be at least 1"),
        (["index", "{root}", "--model", "some-org/not-here"], 4, "--rebuild"),
        (["watch", "{root}", "--index-dir", "file://{empty}/idx"], 2, "watch needs a local --index-dir"),
        (["index", "{root}", "--storage-option", "region=x"], 2, "--storage-option needs a URI"),
        (["index", "{root}", "--index-dir", "s3://b/i", "--storage-option", "novalue"], 2, "KEY=VALUE"),
        (["search", "x", "--index-dir", "file://{empty}/none"], 3, "no index at file://"),
    ],
)
def test_errors_are_one_line_with_exit_codes(indexed, tmp_path: Path, args: list[str], code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    args = [a.replace("{empty}", str(tmp_path)).replace("{root}", str(root)) for a in args]
    done = codesearch(*args, env_home=home)
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_progress_is_shown_on_a_terminal(tmp_path: Path) -> None:
    import pty

    root = tmp_path / "tty project"
    write_samples(root)
    exe = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
    env = {
        **os.environ,
        "CODESEARCH_HOME": str(tmp_path / "home"),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "160",
        "TERM": "xterm",
    }
    master, slave = pty.openpty()
    proc = subprocess.Popen([exe, "index", str(root)], stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    output = b""
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        output += data
    assert proc.wait(timeout=300) == 0
    os.close(master)
    text = output.decode("utf-8", errors="replace")
    assert "indexing" in text and "files" in text and "embedded/s" in text  # the live bar
    assert "Indexed 13 files" in text  # the summary
    assert "Model: auto: no ModernBERT weights" in text  # a new index says which model, and why


def test_an_object_store_uri_index(tmp_path: Path) -> None:
    """``--index-dir`` takes a URI LanceDB accepts; ``file://`` runs the same code as ``s3://``."""
    root = tmp_path / "project"
    write_samples(root)
    home = tmp_path / "home"
    uri = f"file://{tmp_path}/remote index"
    first = codesearch("index", str(root), "--index-dir", uri, "--json", env_home=home)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["chunks_embedded"] > 0
    assert sorted(p.name for p in (tmp_path / "remote index").iterdir()) == [
        "chunks.lance",
        "files.lance",
        "meta.lance",  # the meta is a table there: no meta.json, snapshot, progress file or lock
        "vectors.lance",
    ]
    again = json.loads(codesearch("index", str(root), "--index-dir", uri, "--json", env_home=home).stdout)
    assert again["chunks_embedded"] == 0 and again["files_unchanged"] == again["files"]
    found = codesearch("search", "parse header links", "--index-dir", uri, "--json", env_home=home)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)[0]["symbol"] == "parse_header_links"
    status = json.loads(codesearch("status", "--index-dir", uri, "--json", env_home=home).stdout)
    assert status["files"] == again["files"] and status["size_bytes"] is None and status["running"] is None
