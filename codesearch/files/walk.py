"""Walking a source tree and reading its files safely.

Owns: which files of a root are candidates for indexing (ignore rules, size limit, symlinks that
stay inside the root, loop detection), and turning a candidate into text (binary sniff, UTF-8
with replacement). Every file left out is counted by reason in :class:`SkipStats`; problems
(permission errors, files vanishing mid-walk) are logged once per reason and never stop a walk.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from codesearch.files.ignore import IgnoreRules
from codesearch.files.languages import detect_language
from codesearch.files.names import disk_path, stored_path
from codesearch.files.secrets import is_secret_file, redact

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 1024 * 1024
SNIFF_BYTES = 8192
# A file whose lines run this long on average is minified or generated: no useful syntax
# units, and parsing it would build a node per token, so it gets bounded text windows
MINIFIED_MEAN_LINE_CHARS = 300
MINIFIED_MAX_LINE_CHARS = 5000

SKIP_REASONS = {
    "binary": "binary files",
    "too_large": "files over the size limit",
    "minified": "minified or generated files (very long lines)",
    "unreadable": "unreadable files or folders (permission or I/O error)",
    "vanished": "files that vanished while indexing",
    "symlink_outside": "symlinks pointing outside the root",
    "symlink_loop": "symlink loops or repeated folders",
    "not_regular": "special files (sockets, pipes, devices)",
    "secret": "secret-bearing files (keys, .env, credential stores; with --secrets skip, files with secrets)",
}


@dataclass(frozen=True)
class SourceFile:
    """A candidate file: posix path relative to the root (as the index stores it: see
    :mod:`codesearch.files.names`), its real path, and what stat said of it."""

    rel: str
    path: Path
    size: int
    mtime_ns: int
    language: str


@dataclass
class SkipStats:
    """Counts of files left out, by reason; warns once per reason."""

    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    last: str = ""  # the reason of the latest skip

    def skip(self, reason: str, rel: str, detail: str = "") -> None:
        self.last = reason
        self.counts[reason] += 1
        if reason not in self.examples:
            self.examples[reason] = rel
            if reason in ("unreadable", "vanished", "symlink_loop"):
                log.warning(
                    "skipping %s: %s%s (further ones are counted, not logged)",
                    SKIP_REASONS[reason],
                    rel,
                    f" ({detail})" if detail else "",
                )
            else:
                log.info("skipping %s: %s", SKIP_REASONS[reason], rel)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def walk(
    root: Path,
    *,
    stats: SkipStats | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    extra_ignores: tuple[str, ...] = (),
    exclude_dirs: tuple[Path, ...] = (),
    secrets: str = "redact",
) -> Iterator[SourceFile]:
    """Yield indexable files under ``root`` in a stable (sorted) order.

    Symlinks are followed only when their target lies inside ``root``; each real directory is
    entered at most once, so loops end. ``exclude_dirs`` (such as an index folder inside the
    tree) are never entered.
    """
    stats = stats if stats is not None else SkipStats()
    root = root.resolve()
    rules = IgnoreRules.for_root(root, extra_ignores)
    excluded = {str(p.resolve()) for p in exclude_dirs}
    seen_dirs: set[tuple[int, int]] = set()
    try:
        st = root.stat()
    except OSError as exc:
        stats.skip("unreadable", ".", str(exc))
        return
    seen_dirs.add((st.st_dev, st.st_ino))
    yield from _walk_dir(root, root, "", rules, stats, max_file_bytes, seen_dirs, excluded, secrets != "off")


def _walk_dir(
    root: Path,
    directory: Path,
    rel_dir: str,
    rules: IgnoreRules,
    stats: SkipStats,
    max_file_bytes: int,
    seen_dirs: set[tuple[int, int]],
    excluded: set[str],
    skip_secret_files: bool = True,
) -> Iterator[SourceFile]:
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        stats.skip("vanished", stored_path(rel_dir) or ".")
        return
    except OSError as exc:
        stats.skip("unreadable", stored_path(rel_dir) or ".", exc.strerror or str(exc))
        return
    for entry in entries:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name  # as the OS names it: for the rules
        name = stored_path(rel)  # printable and lossless: for the index and for messages
        try:
            is_link = entry.is_symlink()
            st = entry.stat(follow_symlinks=True)
        except FileNotFoundError:
            # a dangling symlink, or a file deleted since scandir listed it
            stats.skip("vanished" if not _is_link(entry) else "symlink_outside", name)
            continue
        except OSError as exc:
            reason = "symlink_loop" if exc.errno == 40 else "unreadable"  # ELOOP
            stats.skip(reason, name, exc.strerror or str(exc))
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if rules.is_ignored(rel, is_dir):
            continue
        if is_link and not _inside(root, Path(entry.path)):
            stats.skip("symlink_outside", name)
            continue
        if is_dir:
            if entry.path in excluded or (is_link and os.path.realpath(entry.path) in excluded):
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen_dirs:
                stats.skip("symlink_loop", name)
                continue
            if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):  # a virtualenv under any name
                continue
            seen_dirs.add(key)
            child_rules = rules.child(Path(entry.path), rel)
            yield from _walk_dir(
                root, Path(entry.path), rel, child_rules, stats, max_file_bytes, seen_dirs, excluded, skip_secret_files
            )
            continue
        if not stat.S_ISREG(st.st_mode):
            stats.skip("not_regular", name)
            continue
        if skip_secret_files and is_secret_file(rel):
            stats.skip("secret", name)
            continue
        language = detect_language(rel)
        if language is None:
            continue
        if st.st_size > max_file_bytes:
            stats.skip("too_large", name)
            continue
        yield SourceFile(rel=name, path=Path(entry.path), size=st.st_size, mtime_ns=st.st_mtime_ns, language=language)


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _inside(root: Path, path: Path) -> bool:
    try:
        real = Path(os.path.realpath(path))
    except OSError:
        return False
    return real == root or root in real.parents


@dataclass(frozen=True)
class LoadedFile:
    """A file's decoded text and the hash of its exact bytes."""

    text: str
    content_hash: str
    size: int
    mtime_ns: int
    secrets: int = 0  # secrets redacted from ``text``


def content_hash(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def load(
    source: SourceFile, stats: SkipStats, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, secrets: str = "redact"
) -> LoadedFile | None:
    """Read and decode a candidate, or count why it is skipped and return None.

    Invalid UTF-8 is decoded with replacement characters, never rejected. Secrets in the text
    are redacted (``secrets="redact"``), make the file skipped (``"skip"``), or stay (``"off"``).
    """
    try:
        with open(source.path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_size > max_file_bytes:
                stats.skip("too_large", source.rel)
                return None
            data = fh.read(max_file_bytes + 1)
    except FileNotFoundError:
        stats.skip("vanished", source.rel)
        return None
    except OSError as exc:
        stats.skip("unreadable", source.rel, exc.strerror or str(exc))
        return None
    if len(data) > max_file_bytes:
        stats.skip("too_large", source.rel)
        return None
    if b"\x00" in data[:SNIFF_BYTES]:
        stats.skip("binary", source.rel)
        return None
    text = data.decode("utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    if looks_minified(text):
        stats.skip("minified", source.rel)
        return None
    found = 0
    if secrets != "off":
        text, found = redact(text)
        if found and secrets == "skip":
            stats.skip("secret", source.rel)
            return None
    return LoadedFile(
        text=text, content_hash=content_hash(data), size=len(data), mtime_ns=st.st_mtime_ns, secrets=found
    )


def looks_minified(text: str) -> bool:
    if len(text) < MINIFIED_MAX_LINE_CHARS:
        return False
    newlines = text.count("\n") + 1
    return len(text) / newlines > MINIFIED_MEAN_LINE_CHARS and max(map(len, text.split("\n"))) > MINIFIED_MAX_LINE_CHARS


def check_path(
    root: Path,
    rel: str,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    extra_ignores: tuple[str, ...] = (),
    exclude_dirs: tuple[Path, ...] = (),
    secrets: str = "redact",
) -> SourceFile | None:
    """The :class:`SourceFile` a walk of ``root`` would yield for the stored posix path ``rel``,
    or None (missing, ignored by any rule on its way down, not indexable). For a watcher's few paths."""
    stored, rel = rel, disk_path(rel)
    root = root.resolve()
    rules = IgnoreRules.for_root(root, extra_ignores)
    excluded = {str(p.resolve()) for p in exclude_dirs}
    parts = rel.split("/")
    directory = root
    for depth, name in enumerate(parts[:-1]):
        rel_dir = "/".join(parts[: depth + 1])
        directory = directory / name
        if rules.is_ignored(rel_dir, True) or str(directory) in excluded or (directory / "pyvenv.cfg").exists():
            return None
        rules = rules.child(directory, rel_dir)
    path = root / rel
    try:
        st = path.stat()
    except OSError:
        return None
    if rules.is_ignored(rel, False) or not stat.S_ISREG(st.st_mode) or not _inside(root, path):
        return None
    if secrets != "off" and is_secret_file(rel):
        return None
    language = detect_language(rel)
    if language is None or st.st_size > max_file_bytes:
        return None
    return SourceFile(rel=stored, path=path, size=st.st_size, mtime_ns=st.st_mtime_ns, language=language)


class Folders:
    """The folders of ``root`` a walk enters, for a watcher: each one only after its parent is
    kept and no ignore rule, excluded folder (an index inside the tree) or ``pyvenv.cfg`` leaves
    it out. Symlinked folders are not entered (their targets inside the root are watched as
    themselves). The rules of kept folders are cached; :meth:`reset` forgets them (an ignore file
    changed). Paths are posix paths relative to the root as the OS names them ("" is the root)."""

    def __init__(self, root: Path, extra_ignores: tuple[str, ...] = (), exclude_dirs: tuple[Path, ...] = ()) -> None:
        self.root = root.resolve()
        self.extra_ignores = extra_ignores
        self.excluded = {str(p.resolve()) for p in exclude_dirs}
        self._rules: dict[str, IgnoreRules] = {}
        self._ignored: set[str] = set()  # left out by a rule of a kept parent (not: missing, a venv)

    def reset(self) -> None:
        self._rules, self._ignored = {}, set()

    def rules(self, rel: str) -> IgnoreRules | None:
        """The rules inside folder ``rel``, or None when a walk does not enter it."""
        cached = self._rules.get(rel)
        if cached is not None or rel in self._ignored:
            return cached
        if not rel:
            rules: IgnoreRules | None = IgnoreRules.for_root(self.root, self.extra_ignores)
        else:
            parent = self.rules(rel.rpartition("/")[0])
            path = self.root / rel
            if parent is not None and (parent.is_ignored(rel, True) or str(path) in self.excluded):
                self._ignored.add(rel)
                return None
            keep = parent is not None and not path.is_symlink() and path.is_dir() and not (path / "pyvenv.cfg").exists()
            rules = parent.child(path, rel) if keep and parent is not None else None
        if rules is not None:  # only what is kept: a folder may appear, or stop being one, later
            self._rules[rel] = rules
        return rules

    def keeps(self, rel: str) -> bool:
        return self.rules(rel) is not None

    def relevant(self, rel: str, is_dir: bool) -> bool:
        """Whether a change at ``rel`` (which may be gone already) can matter to a walk: its
        folder is entered and no rule leaves it out."""
        if not rel:
            return True
        parent = self.rules(rel.rpartition("/")[0])
        if parent is None or parent.is_ignored(rel, is_dir):
            return False
        return not is_dir or not (str(self.root / rel) in self.excluded or (self.root / rel / "pyvenv.cfg").exists())

    def rel(self, path: str | Path) -> str | None:
        """``path`` relative to the root (posix), or None when it lies outside."""
        try:
            rel = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return None
        return "" if rel == "." else rel

    def under(self, rel: str = "") -> Iterator[Path]:
        """Every folder a walk enters from folder ``rel`` down, ``rel`` itself first (nothing
        when it is not kept); ignored folders are never listed, let alone descended into."""
        if self.rules(rel) is None:
            return
        todo = [rel]
        while todo:
            current = todo.pop()
            directory = self.root / current if current else self.root
            yield directory
            try:
                with os.scandir(directory) as it:
                    names = sorted(entry.name for entry in it if entry.is_dir(follow_symlinks=False))
            except OSError:
                continue
            for name in reversed(names):
                child = f"{current}/{name}" if current else name
                if self.rules(child) is not None:
                    todo.append(child)

    def scandir(self, path: str | None) -> Iterator[os.DirEntry[str]]:
        """``os.scandir`` without the folders a walk leaves out (for a polling observer)."""
        parent = self.rel(path or ".")
        with os.scandir(path) as it:
            for entry in it:
                if parent is not None and entry.is_dir(follow_symlinks=False):
                    child = f"{parent}/{entry.name}" if parent else entry.name
                    if self.rules(child) is None:
                        continue
                yield entry
