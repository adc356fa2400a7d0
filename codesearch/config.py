"""Where indexes live: the per-user data folder, keyed by the absolute root.

Owns the default index location (never inside the repository) and the lookup of an existing
index for a folder or any of its parents. ``CODESEARCH_HOME`` overrides the data folder.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import platformdirs


def data_home() -> Path:
    override = os.environ.get("CODESEARCH_HOME")
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir("codesearch"))


def default_index_dir(root: Path) -> Path:
    """``<data home>/indexes/<folder name>-<hash of the absolute root>``."""
    absolute = str(root.resolve())
    key = hashlib.sha256(absolute.encode("utf-8", errors="surrogateescape")).hexdigest()[:16]
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", root.resolve().name)[:40] or "root"
    return data_home() / "indexes" / f"{name}-{key}"


def find_index_dir(start: Path) -> tuple[Path, Path] | None:
    """(root, index folder) of the nearest indexed folder at or above ``start``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        index_dir = default_index_dir(candidate)
        if (index_dir / "meta.json").is_file():
            return candidate, index_dir
    return None
