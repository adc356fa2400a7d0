"""One set of indexing options, checked in one place, reachable from the CLI and from editors:
``codesearch.options.IndexOptions`` made by the CLI, by the language server's initialization
options (through ``service.ProjectOptions``), and taken by every engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codesearch.errors import UsageError
from codesearch.files import DEFAULT_MAX_FILE_BYTES
from codesearch.options import IndexOptions, exposes, row_policy
from codesearch.service import ProjectOptions, Workspace
from lsp.options import InitOptions, parse

AWS_KEY = "AKIA" + "IOSFODNN7" + "EXAMPLE"  # built at run time: no token a scanner would flag


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("secrets", "maybe", "one of redact, skip, off"),
        ("max_file_bytes", 0, "at least 1"),
        ("max_file_bytes", True, "whole number"),
        ("dtype", "fp8", "one of auto, float32, bfloat16, int8"),
        ("model", " ", "non-empty"),
        ("extra_ignores", ("[z-a].py",), "gitignore-style globs"),
        ("rebuild", "yes", "true or false"),
    ],
)
def test_each_indexing_option_is_checked_where_it_is_made(field: str, value: object, says: str) -> None:
    for kind in (IndexOptions, ProjectOptions):  # the server's options are indexing options too
        with pytest.raises(UsageError, match=says):
            kind(**{field: value})


def test_the_row_policy_names_what_shapes_a_files_rows() -> None:
    redact, skip, off = row_policy("redact"), row_policy("skip"), row_policy("off")
    assert IndexOptions().policy == redact and IndexOptions(secrets="off").policy == off
    assert "patterns" not in off  # a change of patterns changes nothing in an index without redaction
    assert exposes(off, redact) and exposes(off, skip) and exposes("", redact)  # rows as they were
    assert not exposes(redact, skip) and not exposes(skip, redact) and not exposes(redact, off)
    assert exposes(redact.replace("patterns ", "patterns 0"), redact)  # other patterns found other secrets


def test_editors_reach_every_indexing_option() -> None:
    raw = {"secrets": "skip", "maxFileSize": 2048, "ignore": ["gen/"], "model": "x", "device": "cpu", "dtype": "int8"}
    init = parse(raw)
    assert not init.problems
    assert init.project_options() == ProjectOptions(
        model="x", device="cpu", dtype="int8", secrets="skip", extra_ignores=("gen/",), max_file_bytes=2048
    )
    bad = parse({"secrets": "maybe", "maxFileSize": 0, "ignore": ["[z-a].py"], "dtype": "fp8"})
    assert bad == InitOptions() and len(bad.problems) == 4  # each bad value is said, and its default kept
    assert any("'secrets' must be one of redact, skip, off" in problem for problem in bad.problems)
    assert bad.project_options().max_file_bytes == DEFAULT_MAX_FILE_BYTES


def _codesearch(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).with_name("codesearch"))
    env = {**os.environ, "CODESEARCH_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("option", "says"),
    [
        (["--max-file-size", "0"], "max file size must be a whole number of bytes, at least 1, not 0"),
        (["--ignore", "!"], "ignore patterns must be gitignore-style globs ('!': Invalid git pattern"),
        (["--ignore", "[z-a].py"], "ignore patterns must be gitignore-style globs ('[z-a].py': bad character range"),
    ],
)
def test_a_bad_indexing_option_is_a_usage_error(tmp_path: Path, option: list[str], says: str) -> None:
    (tmp_path / "a.py").write_text("def a():\n    return 1\n")
    for command in ("index", "watch"):
        done = _codesearch(command, str(tmp_path), "--index-dir", str(tmp_path / "index"), *option, home=tmp_path)
        assert done.returncode == 2, (command, done.stderr)
        assert done.stderr.count("\n") == 1 and says in done.stderr, done.stderr
    assert not (tmp_path / "index").exists()  # refused before anything was written


@pytest.mark.slow
def test_a_served_folder_indexes_with_the_editors_secrets_option(tmp_path: Path, tiny_modernbert: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "settings.py").write_text(f'AWS_ACCESS_KEY_ID = "{AWS_KEY}"\n')
    (root / "util.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n")
    index_dir = tmp_path / "index"
    options = parse({"secrets": "skip", "watch": False, "indexDir": str(index_dir), "model": str(tiny_modernbert)})
    workspace = Workspace(options.project_options())
    try:
        project = workspace.add_folder(root)
        project.wait(timeout=300)
        assert project.state == "ready", project.error
        status = project.status()["index"]
        assert status["files"] == 1 and status["last_run"]["skipped"] == {"secret": 1}
        found = workspace.search("add", k=5, mode="lexical")
        assert [hit.result.path for hit in found.results] == ["util.py"]
    finally:
        workspace.close()
    blob = b"".join(path.read_bytes() for path in index_dir.rglob("*") if path.is_file())
    assert AWS_KEY.encode() not in blob
    assert json.loads((index_dir / "meta.json").read_text())["files"] == 1
