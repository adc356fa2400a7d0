"""The order of the dense pass: files a user is likely to search for get their vectors first.

Tiers, best first:

1. files the editor has open (the language server reports them), most recently opened first;
2. files with uncommitted changes, and untracked ones (work in progress), newest first;
3. files changed by the last ``GIT_COMMITS`` commits, most recent commit first;
   then newest first;
4. the rest, most recently modified first.

After a fresh clone or a checkout every mtime is the same, so git history is what tells
recent work apart there. No git (or not a repository) leaves tiers 1, 2 and 4.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from codesearch.store.rows import FileRecord

log = logging.getLogger(__name__)

GIT_COMMITS = 300
GIT_TIMEOUT_S = 5.0


def _git(root: Path, *args: str) -> list[str] | None:
    """Output lines of a git command run in ``root`` (paths come relative to it), or ``None``."""
    try:
        out = subprocess.run(
            ["git", "-c", "core.quotepath=off", *args],
            cwd=root,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("git %s failed in %s: %s", args[0], root, exc)
        return None
    if out.returncode != 0:
        return None
    return out.stdout.decode("utf-8", errors="replace").splitlines()


def git_recent(root: Path, commits: int = GIT_COMMITS) -> tuple[set[str], dict[str, int]]:
    """Paths (relative to ``root``, posix) with uncommitted changes or untracked; and paths
    changed by the last ``commits`` commits → rank of the newest commit that changed them
    (0 = HEAD). Both empty without git."""
    dirty = _git(root, "ls-files", "--modified", "--others", "--exclude-standard")
    if dirty is None:
        return set(), {}
    ranks: dict[str, int] = {}
    commit = -1
    for line in _git(root, "log", f"-n{commits}", "--no-renames", "--format=%x01", "--name-only", "--relative") or []:
        if line.startswith("\x01"):
            commit += 1
        elif line:
            ranks.setdefault(line, commit)
    return set(dirty), ranks


def dense_order(
    records: Sequence[FileRecord], root: Path, opened: Mapping[str, float] | None = None
) -> list[FileRecord]:
    """``records`` in the order the dense pass should embed them."""
    opened = opened or {}
    dirty, ranks = git_recent(root) if len(records) > 1 else (set(), {})

    def key(record: FileRecord) -> tuple[int, float, int]:
        if record.path in opened:
            return 0, -opened[record.path], 0
        if record.path in dirty:
            return 1, 0, -record.mtime_ns
        if record.path in ranks:
            return 2, ranks[record.path], -record.mtime_ns
        return 3, 0, -record.mtime_ns

    return sorted(records, key=key)
