"""File names real trees hold: bytes that are not UTF-8, newlines, quotes, brackets, spaces, a
leading dash, a backslash, decomposed Unicode. Each such file is indexed under a printable path
that names it exactly (the store's form: ``\\xNN`` for a byte that is not UTF-8 or a control
character, ``\\\\`` for a backslash), through the real command line, the watcher and the
language server; every other file is indexed as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_samples

# the name on disk (bytes) → a word only its file holds, and the path the index shows for it
ODD: dict[bytes, tuple[str, str]] = {
    b"bad\xe9name.py": ("zanzibar", "bad\\xe9name.py"),
    b"new\nline.py": ("quokka", "new\\x0aline.py"),
    b'it\'s "quoted".py': ("marzipan", 'it\'s "quoted".py'),
    b"app/[slug]/page.py": ("xylophone", "app/[slug]/page.py"),
    b"util [v2].py": ("nebula", "util [v2].py"),
    b"-leading-dash.py": ("tamarind", "-leading-dash.py"),
    b"with spaces/and more.py": ("gondola", "with spaces/and more.py"),
    b"back\\slash.py": ("pelican", "back\\\\slash.py"),
    b"caf\x65\xcc\x81.py": ("saffron", "cafe\u0301.py"),  # decomposed (NFD), kept as it is
    b"d\xff\xfeir/inner.py": ("albatross", "d\\xff\\xfeir/inner.py"),  # a folder's name too
}
SAMPLE_FILES = 13


def write_odd(root: Path) -> None:
    base = os.fsencode(root)
    for name, (word, _) in ODD.items():
        path = os.path.join(base, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(f"def {word}_helper(value):\n    return value + '{word}'\n".encode())


def cli(*args: str, home: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CODESEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "codesearch.cli", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def index_json(root: Path, home: Path) -> dict:  # type: ignore[type-arg]
    done = cli("index", str(root), "--json", home=home)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout)


def found(words: list[str], root: Path, home: Path) -> dict[str, str]:
    """One lexical search for all ``words``: word → the path of the result that holds it."""
    query = " ".join(words)
    done = cli("search", query, str(root), "--json", "--mode", "lexical", "-k", "40", home=home, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    paths: dict[str, str] = {}
    for result in json.loads(done.stdout):
        for word in words:
            if word in result["snippet"]:
                paths.setdefault(word, result["path"])
    return paths


@pytest.mark.e2e
@pytest.mark.slow
def test_odd_file_names_are_indexed_under_printable_paths(tmp_path: Path) -> None:
    root, home = tmp_path / "tree", tmp_path / "home"
    write_samples(root)
    write_odd(root)
    stats = index_json(root, home)
    assert stats["files"] == SAMPLE_FILES + len(ODD) and stats["skipped"] == {}
    words = [word for word, _ in ODD.values()]
    assert found(words, root, home) == {word: shown for word, shown in ODD.values()}
    assert found(["parse_header_links"], root, home) == {"parse_header_links": "pkg/links.py"}  # the rest as before

    # human output prints the printable path, on one line
    done = cli("search", "zanzibar helper", str(root), "--mode", "lexical", "-k", "1", home=home, cwd=root)
    assert done.returncode == 0 and "bad\\xe9name.py" in done.stdout, done.stdout + done.stderr
    assert cli("status", str(root), home=home).returncode == 0

    # the stored paths name the real files: nothing is stale on the next run
    again = index_json(root, home)
    assert (again["files"], again["files_changed"], again["chunks_embedded"]) == (stats["files"], 0, 0)
    # an edit of the odd file is seen as an edit of that file, and its deletion as a deletion
    bad = os.path.join(os.fsencode(root), b"bad\xe9name.py")
    with open(bad, "wb") as fh:
        fh.write(b"def chinchilla_helper():\n    return 1\n")
    edited = index_json(root, home)
    assert (edited["files_changed"], edited["files_deleted"]) == (1, 0)
    assert found(["chinchilla"], root, home) == {"chinchilla": "bad\\xe9name.py"}
    os.unlink(bad)
    gone = index_json(root, home)
    assert (gone["files"], gone["files_deleted"]) == (stats["files"] - 1, 1)


@pytest.mark.slow
def test_the_watcher_indexes_odd_names(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from test_watch import settle

    from codesearch import Searcher
    from codesearch.index.watcher import Watcher

    root = tmp_path / "tree"
    write_samples(root)
    index_dir = tmp_path / "index"
    with Watcher(root, index_dir, embedder=embedder) as watcher:
        before = watcher.updates
        write_odd(root)
        settle(watcher, before)
        searcher = Searcher(index_dir, embedder=embedder)
        for word, shown in ODD.values():
            hits = searcher.search(f"{word} helper", mode="lexical", k=1)
            assert hits and hits[0].path == shown, (word, hits[:1])
        before = watcher.updates
        os.unlink(os.path.join(os.fsencode(root), b"bad\xe9name.py"))
        settle(watcher, before)
        hits = searcher.search("zanzibar helper", mode="lexical", k=1)
        assert not hits or hits[0].path != "bad\\xe9name.py"


@pytest.mark.e2e
@pytest.mark.slow
async def test_editor_uris_of_odd_names_name_the_real_files(tmp_path: Path) -> None:
    from lsprotocol import types
    from test_lsp import request, serve

    root = tmp_path / "tree"
    write_samples(root)
    write_odd(root)
    async with serve([root]) as client:
        for name, (word, _) in ODD.items():
            symbols = await client.workspace_symbol_async(types.WorkspaceSymbolParams(query=f"{word} helper"))
            real = Path(os.fsdecode(os.path.join(os.fsencode(root.resolve()), name)))
            mine = [symbol for symbol in symbols or [] if word in symbol.name]
            assert mine and mine[0].location.uri == real.as_uri(), (name, (symbols or [])[:3])  # type: ignore[union-attr]
        # a URI with percent-encoded bytes that are not UTF-8 comes back to the same file
        bad = Path(os.fsdecode(os.path.join(os.fsencode(root.resolve()), b"bad\xe9name.py")))
        assert "%E9" in bad.as_uri()
        found = await request(
            client,
            "codesearch/similar",
            {"uri": bad.as_uri(), "range": {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 0}}},
        )
        assert found and all(r["uri"] != bad.as_uri() for r in found)  # read, and itself left out of its answer
