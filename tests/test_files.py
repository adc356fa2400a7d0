"""Walking a tree: ignore rules with gitignore semantics, and every kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codesearch.files import SkipStats, check_path, detect_language, load, walk
from codesearch.files.names import disk_path, stored_path
from codesearch.files.walk import Folders


def write(root: Path, rel: str, text: str = "x = 1\n") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def rels(root: Path, **kwargs: object) -> list[str]:
    return [f.rel for f in walk(root, **kwargs)]  # type: ignore[arg-type]


def test_nested_gitignore_negation_info_exclude_and_codesearchignore(tmp_path: Path) -> None:
    write(tmp_path, "keep.py")
    write(tmp_path, "app.log.py")
    write(tmp_path, ".gitignore", "*.log.py\nsecret/\ngenerated_*.py\n")
    write(tmp_path, "secret/key.py")
    write(tmp_path, "sub/.gitignore", "!generated_ok.py\nlocal.py\n")
    write(tmp_path, "sub/generated_ok.py")
    write(tmp_path, "sub/generated_no.py")
    write(tmp_path, "sub/local.py")
    write(tmp_path, "local.py")  # the sub/.gitignore rule does not apply above sub/
    write(tmp_path, "sub/deeper/local.py")  # but it applies below it
    write(tmp_path, ".git/info/exclude", "excluded_by_info.py\n")
    write(tmp_path, "excluded_by_info.py")
    write(tmp_path, ".codesearchignore", "docs/\n")
    write(tmp_path, "docs/readme.md", "# hi\n")
    assert rels(tmp_path) == ["keep.py", "local.py", "sub/generated_ok.py"]


def test_default_excludes(tmp_path: Path) -> None:
    for rel in [
        "node_modules/lib/index.js",
        ".git/config.py",
        ".venv/lib/a.py",
        "build/out.py",
        "dist/x.js",
        "__pycache__/m.py",
        "web/app.min.js",
        "package-lock.json",
        "yarn.lock",
        "Cargo.lock",
        "target/debug/main.rs",
        "site/bundle.js.map",
    ]:
        write(tmp_path, rel)
    write(tmp_path, "myenv/pyvenv.cfg", "home = /usr\n")  # a virtualenv under any name
    write(tmp_path, "myenv/lib/site.py")
    write(tmp_path, "src/main.py")
    write(tmp_path, "web/app.js")
    assert rels(tmp_path) == ["src/main.py", "web/app.js"]


def test_extra_ignore_patterns(tmp_path: Path) -> None:
    write(tmp_path, "a.py")
    write(tmp_path, "tests/test_a.py")
    assert rels(tmp_path, extra_ignores=("tests/",)) == ["a.py"]


def test_language_detection() -> None:
    assert detect_language("a/b.py") == "python"
    assert detect_language("x.tsx") == "tsx"
    assert detect_language("Makefile") == "make"
    assert detect_language("README.md") == "markdown"
    assert detect_language("photo.png") is None


def test_binary_huge_and_minified_files_are_skipped_and_counted(tmp_path: Path) -> None:
    (tmp_path / "blob.py").write_bytes(b"abc\x00def" * 10)
    write(tmp_path, "big.py", "x = 1\n" * 400_000)  # ~2.4 MB
    write(tmp_path, "bundle.js", "var a=function(b){return b+1};" * 400)
    write(tmp_path, "ok.py")
    stats = SkipStats()
    loaded = {}
    for source in walk(tmp_path, stats=stats, max_file_bytes=1024 * 1024):
        result = load(source, stats)
        if result is not None:
            loaded[source.rel] = result
    assert list(loaded) == ["ok.py"]
    assert stats.as_dict() == {"binary": 1, "minified": 1, "too_large": 1}


def test_size_limit_is_configurable(tmp_path: Path) -> None:
    write(tmp_path, "small.py", "x = 1\n")
    write(tmp_path, "medium.py", "x = 1\n" * 100)
    stats = SkipStats()
    assert [f.rel for f in walk(tmp_path, stats=stats, max_file_bytes=100)] == ["small.py"]
    assert stats.counts["too_large"] == 1


def test_invalid_utf8_is_decoded_with_replacement(tmp_path: Path) -> None:
    (tmp_path / "latin1.py").write_bytes(b"name = 'caf\xe9'\n")
    source = next(walk(tmp_path))
    loaded = load(source, SkipStats())
    assert loaded is not None and loaded.text == "name = 'caf\ufffd'\n"


def test_symlinks_inside_followed_outside_and_loops_skipped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    write(outside, "secret.py")
    write(root, "pkg/mod.py")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    (root / "escape_file.py").symlink_to(outside / "secret.py")
    (root / "alias.py").symlink_to(root / "pkg" / "mod.py")
    (root / "pkg" / "loop").symlink_to(root / "pkg", target_is_directory=True)
    (root / "self").symlink_to(root / "self")  # ELOOP
    (root / "dangling.py").symlink_to(root / "missing.py")
    stats = SkipStats()
    assert [f.rel for f in walk(root, stats=stats)] == ["alias.py", "pkg/mod.py"]
    assert stats.counts["symlink_outside"] == 3  # escape, escape_file.py, dangling.py
    assert stats.counts["symlink_loop"] == 2  # pkg/loop (seen folder), self (ELOOP)


def test_special_files_are_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    write(tmp_path, "a.py")
    stats = SkipStats()
    assert rels(tmp_path, stats=stats) == ["a.py"]
    assert stats.counts["not_regular"] == 1


def test_file_vanishing_between_walk_and_read(tmp_path: Path) -> None:
    write(tmp_path, "a.py")
    write(tmp_path, "b.py")
    stats = SkipStats()
    sources = list(walk(tmp_path, stats=stats))
    (tmp_path / "a.py").unlink()
    loaded = [load(s, stats) for s in sources]
    assert loaded[0] is None and loaded[1] is not None
    assert stats.counts["vanished"] == 1


def test_paths_with_spaces_quotes_and_non_ascii(tmp_path: Path) -> None:
    names = ["dir with space/it's.py", "naïve/日本語.py", "100%/a'b\"c.py"]
    for rel in names:
        write(tmp_path, rel)
    assert sorted(rels(tmp_path)) == sorted(names)


_WALK_AS_NOBODY = """
import json, os, sys
from pathlib import Path
from codesearch.files import SkipStats, walk, load
import codesearch.files.ignore, pathspec.patterns.gitwildmatch, encodings.idna  # everything, before dropping root
os.setgid(65534); os.setuid(65534)
stats = SkipStats()
files = [f.rel for f in walk(Path(sys.argv[1]), stats=stats) if load(f, stats) is not None]
print(json.dumps({"files": files, "skipped": stats.as_dict()}))
"""


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX only")
def test_permission_errors_are_counted_not_fatal() -> None:
    # root reads everything, so the walk runs as an unprivileged user when the tests run as root
    with tempfile.TemporaryDirectory(prefix="cs-perm-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        write(root, "open.py")
        write(root, "locked_dir/hidden.py")
        write(root, "locked.py")
        os.chmod(root / "locked_dir", 0o000)
        os.chmod(root / "locked.py", 0o000)
        for p in (root / "open.py",):
            os.chmod(p, 0o644)
        cmd = [sys.executable, "-c", _WALK_AS_NOBODY, str(root)]
        if os.geteuid() != 0:
            cmd = [sys.executable, "-c", _WALK_AS_NOBODY.replace("os.setgid(65534); os.setuid(65534)", ""), str(root)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
        finally:
            os.chmod(root / "locked_dir", 0o755)
            os.chmod(root / "locked.py", 0o644)
    result = json.loads(out.stdout)
    assert result["files"] == ["open.py"]
    assert result["skipped"] == {"unreadable": 2}
    assert out.stderr.count("skipping unreadable") == 1  # warned once, then counted


def test_check_path_agrees_with_walk(tmp_path: Path) -> None:
    from codesearch.files import check_path

    root = tmp_path / "tree"
    (root / "src" / "gen").mkdir(parents=True)
    (root / "node_modules" / "dep").mkdir(parents=True)
    (root / "src" / ".gitignore").write_text("gen/\n*.tmp.py\n!keep.tmp.py\n")
    for rel in ["a.py", "src/b.py", "src/gen/c.py", "src/x.tmp.py", "src/keep.tmp.py", "node_modules/dep/d.js"]:
        (root / rel).write_text("def f():\n    return 1\n")
    (root / "data.bin").write_bytes(b"\x00")
    walked = {s.rel: s for s in walk(root)}
    assert set(walked) == {"a.py", "src/b.py", "src/keep.tmp.py"}
    candidates = [*walked, "src/gen/c.py", "src/x.tmp.py", "node_modules/dep/d.js", "missing.py", "data.bin"]
    for rel in candidates:
        checked = check_path(root, rel)
        assert (checked is not None) == (rel in walked), rel
        if checked is not None:
            assert checked == walked[rel]


ANY_NAME = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b)


@given(st.lists(ANY_NAME, min_size=1, max_size=4))
def test_stored_paths_are_printable_utf8_and_name_the_same_bytes(parts: list[bytes]) -> None:
    rel = os.fsdecode(b"/".join(parts))  # as os.scandir names it (bytes that are not UTF-8: surrogates)
    shown = stored_path(rel)
    shown.encode("utf-8")  # a UTF-8 column takes it
    assert not [c for c in shown if unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp")]  # nothing breaks a line
    assert os.fsencode(disk_path(shown)) == b"/".join(parts)


@given(st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"), blacklist_characters="\\/"), min_size=1))
def test_other_names_are_stored_as_they_are(name: str) -> None:
    assert stored_path(name) == name == disk_path(name)


def test_stored_path_examples() -> None:
    assert stored_path(os.fsdecode(b"bad\xe9name.py")) == "bad\\xe9name.py"
    assert stored_path("new\nline.py") == "new\\x0aline.py"
    assert stored_path("a\\xe9") == "a\\\\xe9"  # a real backslash followed by xe9: a different name
    assert disk_path("a\\\\xe9") == "a\\xe9" and disk_path("bad\\xe9name.py") == os.fsdecode(b"bad\xe9name.py")


def test_walk_and_check_path_take_names_that_are_not_utf8(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    root.mkdir()
    folder = os.path.join(os.fsencode(root), b"d\xffir")
    os.mkdir(folder)
    with open(os.path.join(folder, b"x\xe9.py"), "wb") as fh:
        fh.write(b"def latin():\n    return 1\n")
    (source,) = list(walk(root))
    assert source.rel == "d\\xffir/x\\xe9.py"
    assert os.fsencode(source.path) == os.path.join(folder, b"x\xe9.py")
    checked = check_path(root, source.rel)
    assert checked is not None and checked.rel == source.rel and checked.path == source.path
    loaded = load(checked, SkipStats())
    assert loaded is not None and "def latin" in loaded.text


def test_folders_are_the_folders_a_walk_enters(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    files = [
        "src/app/main.py",
        "src/app/build/gen.py",  # build/: a default rule
        "src/vendor/dep.py",  # left out by src/.gitignore
        "docs/guide/intro.md",
        "myenv/lib/site.py",  # a virtualenv under another name (pyvenv.cfg)
        "node_modules/pkg/index.js",
        "extra/skip.py",  # an --ignore glob
        "index/data.py",  # an index folder inside the tree
        "empty/nothing.txt",
    ]
    for rel in files:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x = 1\n")
    (root / "myenv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (root / "src" / ".gitignore").write_text("vendor/\n")
    folders = Folders(root, ("extra/",), exclude_dirs=(root / "index",))
    kept = {p.relative_to(root).as_posix() for p in folders.under()}
    assert kept == {".", "src", "src/app", "docs", "docs/guide", "empty"}
    walked = {
        Path(s.rel).parent.as_posix() for s in walk(root, extra_ignores=("extra/",), exclude_dirs=(root / "index",))
    }
    assert walked <= kept  # every folder a walk takes files from is one of them
    assert {p.relative_to(root).as_posix() for p in folders.under("src")} == {"src", "src/app"}
    assert not list(folders.under("src/vendor")) and not list(folders.under("myenv"))
    # events: a change under a left-out folder, or to a left-out file, cannot matter
    assert folders.relevant("src/app/new.py", False) and folders.relevant("src/app/gone", True)
    assert not folders.relevant("src/vendor/dep.py", False) and not folders.relevant("src/vendor", True)
    assert not folders.relevant("node_modules/x/y.js", False) and not folders.relevant("src/x.pyc", False)
    # the rules changed: reset sees them
    (root / "src" / ".gitignore").write_text("")
    folders.reset()
    assert folders.keeps("src/vendor")
