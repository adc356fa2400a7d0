"""The live index: a real watchdog watcher on a real tree, compared after every kind of change
with a clean index of the same files; the writer lock, readers seeing commits, the polling
fallback, and ``codesearch watch`` as a subprocess."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import write_samples

from codesearch import Indexer, Searcher, default_index_dir
from codesearch.errors import CodesearchError
from codesearch.index import IndexStats
from codesearch.index.watcher import Watcher
from codesearch.store import Store

pytestmark = pytest.mark.slow


def until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def settle(watcher: Watcher, before: int) -> None:
    """Wait until the watcher ran an update after ``before`` and has nothing left to do."""
    until(lambda: watcher.updates > before and watcher.idle, what="the watcher to settle")
    time.sleep(0.3)  # late events of the same burst
    until(lambda: watcher.idle, what="the watcher to settle")


def assert_index_matches_disk(root: Path, index_dir: Path, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The live index holds exactly the rows a clean index of the same files holds."""
    clean_dir = tmp_path / f"clean-{time.monotonic_ns()}"
    Indexer(root, clean_dir, embedder=embedder).run()
    clean, live = Store.open(clean_dir), Store.open(index_dir)
    assert set(live.file_catalog()) == set(clean.file_catalog())
    rows = live.chunk_rows()
    assert len(rows) == len(set(rows)), "duplicate chunk rows"
    assert rows == clean.chunk_rows()
    shutil.rmtree(clean_dir)


@pytest.fixture()
def watched(sample_tree: Path, embedder) -> Iterator[tuple[Path, Watcher, list[IndexStats]]]:  # type: ignore[no-untyped-def]
    updates: list[IndexStats] = []
    watcher = Watcher(sample_tree, default_index_dir(sample_tree), embedder=embedder, on_update=updates.append)
    watcher.start()
    yield sample_tree, watcher, updates
    watcher.stop()


def test_every_kind_of_change_converges(watched, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root, watcher, updates = watched
    index_dir = default_index_dir(root)
    assert updates[0].files == 13  # reconciled at start
    links = root / "pkg" / "links.py"

    def save_via_temp_then_rename() -> None:  # how vim, JetBrains and many editors save
        tmp = root / "pkg" / ".links.py.swp~"
        tmp.write_text(links.read_text().replace("def parse_header_links", "def parse_link_header"))
        os.replace(tmp, links)

    changes: list[tuple[str, Callable[[], object]]] = [
        ("create", lambda: (root / "new.py").write_text("def freshly_created():\n    return 'new'\n")),
        ("modify", lambda: links.write_text(links.read_text() + "\n\ndef appended_helper():\n    return 2\n")),
        ("temp-then-rename save", save_via_temp_then_rename),
        ("move", lambda: (root / "new.py").rename(root / "pkg" / "moved.py")),
        ("directory rename", lambda: (root / "src").rename(root / "frontend")),
        ("delete", lambda: (root / "pkg" / "moved.py").unlink()),
        ("new directory with files", lambda: shutil.copytree(root / "frontend", root / "web")),
        ("directory delete", lambda: shutil.rmtree(root / "frontend")),
    ]
    for name, change in changes:
        before = watcher.updates
        change()
        settle(watcher, before)
        assert_index_matches_disk(root, index_dir, embedder, tmp_path)
        assert watcher.updates - before <= 2, name  # a burst is one update (two at most when split by timing)
    searcher = Searcher(index_dir, embedder=embedder)
    assert searcher.search("parse link header", mode="lexical", k=1)[0].path == "pkg/links.py"
    assert not searcher.search("freshly created", mode="lexical", k=5, path_glob="*.py")
    # the index folder itself and ignored folders never trigger an update
    before = watcher.updates
    (root / "node_modules").mkdir()
    (root / "node_modules" / "dep.js").write_text("function dep() {}\n")
    time.sleep(1.0)
    assert watcher.updates == before


def watched_inodes() -> list[int]:
    """The inode of every folder this process has an inotify watch on (``/proc/self/fdinfo``)."""
    inodes = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") != "anon_inode:inotify":
                continue
            with open(f"/proc/self/fdinfo/{fd}") as info:
                lines = [line.split() for line in info if line.startswith("inotify wd:")]
        except OSError:
            continue  # closed meanwhile
        inodes += [int(field[4:], 16) for line in lines for field in line if field.startswith("ino:")]
    return inodes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads inotify watches from /proc (Linux)")
def test_only_the_folders_a_walk_enters_are_watched(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "ws"
    write_samples(root)
    venv = root / ".venv"  # what the README's first command makes: thousands of folders, never indexed
    for i in range(300):
        (venv / "lib" / "python3.11" / "site-packages" / f"dep{i}").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    for i in range(100):
        (root / "artifacts" / f"gen{i}").mkdir(parents=True)  # left out by .gitignore
        (root / "build" / f"gen{i}").mkdir(parents=True)  # left out by the default rules
    (root / "artifacts" / "gen0" / "generated.py").write_text("def generated_code():\n    return 0\n")
    (root / ".gitignore").write_text("artifacts/\n")
    (root / "extra_out" / "deep").mkdir(parents=True)  # left out by an --ignore glob
    (root / "lib" / "sub").mkdir(parents=True)
    (root / "lib" / "sub" / "helper.py").write_text("def lib_helper():\n    return 1\n")
    index_dir = root / "idx"  # an index folder inside the tree: never watched, never indexed
    leave_out = {venv, root / "artifacts", root / "build", root / "extra_out", index_dir}

    def folders() -> tuple[set[int], set[int]]:
        """The inodes of the folders a walk enters, and of those it leaves out."""
        kept, left = set(), set()
        for here, dirs, _ in os.walk(root):
            for name in dirs:
                path = Path(here) / name
                out = any(path == p or p in path.parents for p in leave_out)
                (left if out else kept).add(path.stat().st_ino)
        return kept | {root.stat().st_ino}, left

    before = len(watched_inodes())
    with Watcher(root, index_dir, embedder=embedder, extra_ignores=("extra_out/",)) as watcher:
        kept, left = folders()
        assert len(left) > 500 and len(kept) < 10
        watched = watched_inodes()
        assert kept <= set(watched), "every kept folder is watched"
        assert not left & set(watched), "no ignored folder is watched"
        assert len(watched) - before <= len(kept)

        # a new kept folder (two levels at once) is watched, and a file written there is indexed
        before_update = watcher.updates
        fresh = root / "lib" / "fresh" / "nested"
        fresh.mkdir(parents=True)
        (fresh / "fresh_mod.py").write_text("def freshly_nested_function():\n    return 'nested'\n")
        settle(watcher, before_update)
        kept, left = folders()
        assert kept <= set(watched_inodes())
        found = Searcher(index_dir, embedder=embedder).search("freshly nested function", mode="lexical", k=1)
        assert found and found[0].path == "lib/fresh/nested/fresh_mod.py"
        # an edit in a folder that existed at start is picked up too
        before_update = watcher.updates
        (root / "lib" / "sub" / "helper.py").write_text("def lib_helper_renamed_now():\n    return 1\n")
        settle(watcher, before_update)
        found = Searcher(index_dir, embedder=embedder).search("lib helper renamed now", mode="lexical", k=1)
        assert found and found[0].path == "lib/sub/helper.py"

        # new folders under ignored ones get no watches, and writing there starts no update
        before_update, watching = watcher.updates, len(watched_inodes())
        for i in range(50):
            (venv / "lib" / "python3.11" / "site-packages" / f"new{i}" / "sub").mkdir(parents=True)
            (root / "artifacts" / f"gen{i}" / "more").mkdir()
        (root / "artifacts" / "gen1" / "more" / "made.py").write_text("def made_by_the_build():\n    return 1\n")
        time.sleep(1.0)
        assert len(watched_inodes()) == watching
        assert watcher.updates == before_update
        assert not Searcher(index_dir, embedder=embedder).search("made by the build", mode="lexical", k=1)

        # a kept folder that the rules now leave out loses its watches; one let in gains them
        before_update = watcher.updates
        (root / ".gitignore").write_text("lib/fresh/\n")
        settle(watcher, before_update)
        watched = set(watched_inodes())
        assert fresh.stat().st_ino not in watched and fresh.parent.stat().st_ino not in watched
        assert (root / "artifacts" / "gen3" / "more").stat().st_ino in watched
        assert (root / "build" / "gen3").stat().st_ino not in watched


def git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=root, check=True, capture_output=True
    )


def test_a_git_checkout_of_hundreds_of_files_is_one_update(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "repo"
    for i in range(300):
        path = root / f"pkg{i // 50}" / f"mod_{i}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"def handler_{i}(request):\n    return request.get('field_{i}')\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "main")
    git(root, "checkout", "-q", "-b", "feature")
    for i in range(0, 300, 2):
        path = root / f"pkg{i // 50}" / f"mod_{i}.py"
        path.write_text(path.read_text() + f"\n\ndef feature_{i}(flag):\n    return not flag\n")
    (root / "pkg0" / "mod_1.py").unlink()
    git(root, "commit", "-qam", "feature")
    git(root, "checkout", "-q", "main")
    updates: list[IndexStats] = []
    index_dir = default_index_dir(root)
    with Watcher(root, index_dir, embedder=embedder, on_update=updates.append, max_wait_s=10.0) as watcher:
        before = watcher.updates
        git(root, "checkout", "-q", "feature")
        settle(watcher, before)
        assert_index_matches_disk(root, index_dir, embedder, tmp_path)
        assert watcher.updates - before <= 2
        assert sum(u.files_changed for u in updates[1:]) == 150 and sum(u.files_deleted for u in updates[1:]) == 1
        before, seen = watcher.updates, len(updates)
        git(root, "checkout", "-q", "main")  # back: every vector is in the cache
        settle(watcher, before)
        assert_index_matches_disk(root, index_dir, embedder, tmp_path)
        assert sum(u.chunks_embedded for u in updates[seen:]) == 0


def test_one_writer_and_readers_see_commits_within_a_second(watched, embedder) -> None:  # type: ignore[no-untyped-def]
    root, watcher, _ = watched
    index_dir = default_index_dir(root)
    with pytest.raises(CodesearchError, match="another codesearch process"):
        Indexer(root, index_dir, embedder=embedder).run()
    with pytest.raises(CodesearchError, match="another codesearch process"):
        Watcher(root, index_dir, embedder=embedder).start()
    reader = Searcher(index_dir, embedder=embedder)  # opened before the change, like a language server
    assert not reader.search("zebra stripes", mode="lexical", k=3)
    before = watcher.updates
    (root / "zebra.py").write_text("def count_zebra_stripes(zebra):\n    return len(zebra.stripes)\n")
    settle(watcher, before)
    committed = time.monotonic()
    until(lambda: bool(reader.search("zebra stripes", mode="lexical", k=3)), timeout=5, what="the reader")
    assert time.monotonic() - committed < 1.0
    assert reader.search("count zebra stripes", k=1)[0].path == "zebra.py"
    # a reader querying all the time while updates commit and compact never fails
    failures: list[BaseException] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            try:
                reader.search("zebra stripes", k=5)
            except BaseException as exc:  # any failure is the finding
                failures.append(exc)

    thread = threading.Thread(target=hammer)
    thread.start()
    for i in range(5):
        before = watcher.updates
        (root / "zebra.py").write_text(f"def count_zebra_stripes(zebra):\n    return len(zebra.stripes) + {i}\n")
        settle(watcher, before)
    stop.set()
    thread.join()
    assert not failures, failures[:1]


def test_polling_when_the_os_watch_limit_is_exhausted(
    sample_tree: Path, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from codesearch.index import observers

    native = observers.native

    def exhausted(*args: object, **kwargs: object) -> object:
        observer = native(*args, **kwargs)  # type: ignore[arg-type]

        def start() -> None:  # what inotify says when fs.inotify.max_user_watches is reached
            raise OSError(errno.ENOSPC, "inotify watch limit reached")

        observer.start = start
        return observer

    monkeypatch.setattr(observers, "native", exhausted)
    with Watcher(sample_tree, default_index_dir(sample_tree), embedder=embedder) as watcher:
        assert watcher.polling
        before = watcher.updates
        (sample_tree / "polled.py").write_text("def found_by_polling():\n    return True\n")
        settle(watcher, before)
        found = Searcher(default_index_dir(sample_tree), embedder=embedder).search("found by polling", k=1)
        assert found[0].path == "polled.py"


@pytest.mark.e2e
def test_codesearch_watch_command(sample_tree: Path, tmp_path: Path) -> None:
    exe = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
    env = {**os.environ, "CODESEARCH_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [exe, "watch", str(sample_tree), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["files"] == 13 and first["files_changed"] == 13
        (sample_tree / "added.py").write_text("def added_while_watching():\n    return 1\n")
        update = json.loads(proc.stdout.readline())
        assert update["files"] == 14 and update["files_changed"] == 1 and update["chunks_embedded"] == 1
        second = subprocess.run(
            [exe, "index", str(sample_tree)], capture_output=True, text=True, env=env, timeout=120
        )  # one writer
        assert second.returncode != 0 and "another codesearch process" in second.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
