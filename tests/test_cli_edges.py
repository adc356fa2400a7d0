"""What a new user meets at the edges of the real ``codesearch`` command (run as a subprocess on
real indexes): odd file names and error text printed literally, usage errors that are usage
errors (also in the library, for every front end), paths relative to where the user stands, a
PATH that scopes the search, and what a query or Ctrl-C says while an index is being built."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import write_samples

from codesearch.errors import UsageError
from codesearch.search import Searcher
from codesearch.store import damage_note

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# file name -> source, each with words found nowhere else
ODD_FILES = {
    "app/[slug]/page.tsx": "export function renderSlugPage(slug: string): string {\n  return slug.toUpperCase();\n}\n",
    "util [v2].py": "def version_two_helper():\n    return 2\n",
    "odd [/x] :smile:.py": "def smiley_closing_tag():\n    return 'x'\n",
    "[bold]loud[red].py": "def shouting_markup_name():\n    return 'LOUD'\n",
}


def codesearch(*args: str, cwd: Path | None = None, home: Path) -> subprocess.CompletedProcess[str]:
    """The command line as ``python -m codesearch.cli`` (the code on PYTHONPATH, so the same
    test also runs against another checkout)."""
    env = {**os.environ, "CODESEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    command = [sys.executable, "-m", "codesearch.cli", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *parts: str) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    for part in parts:
        assert part in done.stderr, done.stderr
    return done.stderr.strip()


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(root, home, index folder) of the samples plus files with markup-like names."""
    base = tmp_path_factory.mktemp("edges")
    root = base / "project"
    write_samples(root)
    for rel, source in ODD_FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(source, encoding="utf-8")
    home = base / "home"
    done = codesearch("index", str(root), home=home)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    (index_dir,) = (home / "indexes").iterdir()
    return root, home, index_dir


# -- 8: text is printed literally ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("render slug page", "app/[slug]/page.tsx"),
        ("version two helper", "util [v2].py"),
        ("smiley closing tag", "odd [/x] :smile:.py"),
        ("shouting markup name", "[bold]loud[red].py"),
    ],
)
def test_odd_file_names_print_literally(indexed, query: str, path: str) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    done = codesearch("search", query, "--mode", "lexical", "-k", "1", cwd=root, home=home)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.splitlines()[0].startswith(f"{path}:1  "), done.stdout


def test_error_text_with_markup_prints_literally(indexed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, home, _ = indexed
    gone = tmp_path / "gone [/x] [bold]"
    line = one_line_error(codesearch("index", str(gone), home=home), 2)
    assert line == f"codesearch: error: {gone} does not exist"
    unindexed = tmp_path / "a[" / "x] :smile:"
    unindexed.mkdir(parents=True)
    line = one_line_error(codesearch("search", "anything", str(unindexed), home=home), 3)
    assert f"no index for {unindexed} yet" in line


# -- 9: usage errors are usage errors ---------------------------------------------------------------
def test_a_malformed_glob_is_a_usage_error_not_damage(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, index_dir = indexed
    done = codesearch("search", "value", str(root), "--mode", "lexical", "--path", "[z-a].py", home=home)
    one_line_error(done, 2, "invalid path glob '[z-a].py'", "bad character range")
    assert damage_note(index_dir) is None  # no mark, so the next run does not re-check everything
    done = codesearch("search", "value", str(root), "--mode", "lexical", "--path", "[a&&b].py", home=home)
    one_line_error(done, 2, "invalid path glob")


def test_an_unknown_language_is_a_usage_error(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    done = codesearch("search", "value", str(root), "--lang", "pyton", "--mode", "lexical", home=home)
    one_line_error(done, 2, "unknown language 'pyton'", "did you mean python?", "typescript", "rust")
    done = codesearch("search", "value", str(root), "--lang", "Python,rs", "--mode", "lexical", "--json", home=home)
    assert done.returncode == 0, done.stderr
    found = {r["language"] for r in json.loads(done.stdout)}
    assert found == {"python", "rust"}  # names in any case, or file extensions


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("app/[slug]/page.tsx", {"app/[slug]/page.tsx"}),  # the literal path is in the index: it matches itself
        ("app/[slug]/", {"app/[slug]/page.tsx"}),
        ("util [v2].py", {"util [v2].py"}),
        ("util \\[v2\\].py", {"util [v2].py"}),  # escaped brackets are literal
        ("[bu]*.py", {"util [v2].py"}),  # still a glob when no such path
    ],
)
def test_a_path_with_brackets_is_findable(indexed, glob: str, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    done = codesearch(
        "search", "return", str(root), "--mode", "lexical", "--json", "-k", "50", "--path", glob, home=home
    )
    assert done.returncode == 0, done.stderr
    assert {r["path"] for r in json.loads(done.stdout)} == expected


def test_the_library_raises_usage_errors_for_every_front_end(indexed) -> None:  # type: ignore[no-untyped-def]
    _, _, index_dir = indexed
    searcher = Searcher(index_dir)
    for call in (
        lambda: searcher.search("value", mode="lexical", path_glob="[z-a].py"),
        lambda: searcher.search("value", mode="lexical", languages=["pyton"]),
        lambda: searcher.similar("def f(): pass", path_glob="[z-a].py"),
        lambda: searcher.similar("def f(): pass", languages=["klingon"]),
    ):
        with pytest.raises(UsageError):
            call()
    assert damage_note(index_dir) is None
    found = searcher.search("return", k=50, mode="lexical", under="pkg")
    assert found and {r.path.split("/")[0] for r in found} == {"pkg"}


# -- 13: paths relative to where the user stands ------------------------------------------------------
def test_human_paths_are_relative_to_the_current_folder(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    lib = root / "lib"
    done = codesearch("search", "greet the world by default", "--mode", "lexical", "-k", "10", cwd=lib, home=home)
    assert done.returncode == 0, done.stderr
    heads = [line.split("  ")[0] for line in done.stdout.splitlines() if line and not line.startswith(" ")]
    assert heads[0] == "greeter.rb:9"  # not lib/greeter.rb: the user stands in lib/
    assert len(heads) > 1 and any(h.startswith("../") for h in heads)  # the rest of the index, from here
    for head in heads:  # every path opens from where the user stands
        assert (lib / head.rsplit(":", 1)[0]).is_file(), head


def test_a_path_inside_the_tree_scopes_the_search(indexed) -> None:  # type: ignore[no-untyped-def]
    root, home, _ = indexed
    pkg = root / "pkg"
    done = codesearch("search", "return a value", ".", "--mode", "lexical", "-k", "50", "--json", cwd=pkg, home=home)
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    assert results and all(r["path"].startswith("pkg/") for r in results)  # --json stays root-relative...
    assert {r["root"] for r in results} == {str(root.resolve())}  # ...and names the root
    human = codesearch("search", "return a value", ".", "--mode", "lexical", "-k", "50", cwd=pkg, home=home)
    heads = [line.split("  ")[0] for line in human.stdout.splitlines() if line and not line.startswith(" ")]
    assert heads and all(not h.startswith(("pkg/", "../")) for h in heads)
    # a file, and a folder combined with --path
    done = codesearch("search", "value", "pkg/links.py", "--mode", "lexical", "--json", cwd=root, home=home)
    assert done.returncode == 0, done.stderr
    assert {r["path"] for r in json.loads(done.stdout)} == {"pkg/links.py"}
    done = codesearch(
        "search", "return", str(root / "app"), "--path", "*.tsx", "--mode", "lexical", "--json", home=home
    )
    assert {r["path"] for r in json.loads(done.stdout)} == {"app/[slug]/page.tsx"}


# -- 14: say what is going on -------------------------------------------------------------------------
def test_a_query_while_indexing_says_so_and_ctrl_c_says_how_to_resume(tmp_path: Path) -> None:
    root = tmp_path / "big"
    for f in range(60):
        body = "\n\n".join(
            f"def handler_{f}_{i}(request, value):\n    total = value * {i}\n    return request.reply(total)\n"
            for i in range(6)
        )
        (root / f"pkg{f % 4}").mkdir(parents=True, exist_ok=True)
        (root / f"pkg{f % 4}" / f"module_{f}.py").write_text(body, encoding="utf-8")
    home = tmp_path / "home"
    env = {**os.environ, "CODESEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    run = subprocess.Popen(
        [sys.executable, "-m", "codesearch.cli", "index", str(root)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not list(home.glob("indexes/*/progress.json")):  # the run is writing the index
            assert run.poll() is None and time.monotonic() < deadline, run.communicate()
            time.sleep(0.05)
        run.send_signal(signal.SIGSTOP)  # hold it there: still running, index half written
        try:
            empty = codesearch("search", "zebra unicorn", str(root), "--mode", "lexical", home=home)
            assert empty.returncode == 0, empty.stderr
            assert empty.stdout.strip() == "No results yet: indexing is under way."
            assert "codesearch: indexing: " in empty.stderr and " of 60 files; results so far" in empty.stderr
            listed = codesearch("search", "handler request", str(root), "--mode", "lexical", "--json", home=home)
            assert listed.returncode == 0 and " of 60 files" in listed.stderr  # --json too, on stderr
        finally:
            run.send_signal(signal.SIGCONT)
        run.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == (
        f"codesearch: interrupted; nothing committed is lost: run `codesearch index {root}` again to finish"
    )
    after = codesearch("search", "handler request", str(root), "--mode", "lexical", home=home)
    assert "the index is incomplete" in after.stderr and f"codesearch index {root}" in after.stderr
    again = codesearch("index", str(root), "--json", home=home)  # what the hint says
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["chunks"] == 60 * 6
    done = codesearch("search", "zebra unicorn", str(root), "--mode", "lexical", home=home)
    assert done.stdout.strip() == "No results." and done.stderr == ""


def test_a_search_before_the_first_commit_says_an_index_is_being_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between an index run's start (it holds the writer lock and loads its model) and its first
    commit there is no index to read: that is not 'run codesearch index', which is running."""
    from codesearch.config import default_index_dir
    from codesearch.index.runs import writer_lock

    root, home = tmp_path / "project", tmp_path / "home"
    write_samples(root)
    monkeypatch.setenv("CODESEARCH_HOME", str(home))  # where the command line below looks
    index_dir = default_index_dir(root)
    before = codesearch("search", "parse header links", cwd=root / "pkg", home=home)
    one_line_error(before, 3, "run `codesearch index")
    with writer_lock(index_dir):  # what a first run holds before it writes anything
        during = codesearch("search", "parse header links", cwd=root / "pkg", home=home)
        one_line_error(during, 3, "is being built by another codesearch process")
        assert "run `codesearch index" not in during.stderr
    after = codesearch("status", cwd=root, home=home)
    one_line_error(after, 3, "run `codesearch index")
