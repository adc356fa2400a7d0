"""The index folder's plain files, readable without lancedb: ``meta.json``, the on-disk format
version, and the stat snapshot; and where an index lives (:data:`IndexDir`).

An index lives in a local folder (a ``Path``), or at an object-store URI that LanceDB accepts
(:class:`Remote`: ``s3://``, ``gs://``, ``az://``, ``file://``...). A remote index keeps its meta
in a table (``store.lance``), and has no snapshot, progress file or lock: those are local
conveniences, and one writer at a time is the caller's job there (a Ray driver is one).

The **stat snapshot** (``snapshot.json``) is what a complete, fully embedded run saw: the size
and mtime of every indexed file, and of every file it walked but skipped (binary, minified...)
with the reason. A re-index whose walk finds exactly these stats has nothing to do and stops
without opening the tables, so a no-change run never imports lancedb. Every table write
deletes the snapshot first (``clear_snapshot``), so a snapshot on disk always describes the
committed tables, whatever was killed when.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

FORMAT_VERSION = 5  # 2: vector keys and the ``vectors`` cache; 3: ``embedded``/``dense``; 4: chunk ids; 5: policy
META = "meta.json"
SNAPSHOT = "snapshot.json"
DAMAGED = "damaged.txt"  # left by a reader that could not read the index: the next run repairs it
TABLES = ("chunks", "files", "vectors")  # the LanceDB tables of an index (``store.lance``), ``NAME.lance`` folders
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class Remote:
    """An index at an object-store URI, with LanceDB ``storage_options`` (credentials, endpoint,
    region... ; the usual environment variables such as ``AWS_*`` are read too)."""

    uri: str
    storage_options: tuple[tuple[str, str], ...] = ()

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


IndexDir: TypeAlias = Path | Remote


def index_location(text: str | Path, storage_options: Iterable[tuple[str, str]] = ()) -> IndexDir:
    """A local folder, or a :class:`Remote` for ``scheme://...``."""
    if _URI.match(str(text)):
        return Remote(str(text), tuple(sorted(storage_options)))
    return Path(text).expanduser()


def read_meta(directory: IndexDir) -> dict[str, Any]:
    """``meta.json`` as a dict; raises ``OSError`` or ``ValueError`` when missing or unreadable
    (a remote index's meta is a table: ``Store.read_meta``)."""
    if isinstance(directory, Remote):
        raise OSError(f"{directory} is remote: its meta is read with Store.read_meta")
    meta = json.loads((directory / META).read_text(encoding="utf-8"))
    if not isinstance(meta, dict):
        raise ValueError(f"{directory / META} is not a JSON object")
    return meta


def write_json(path: Path, value: Any, indent: int | None = None) -> None:
    """Write atomically: a reader or a crash sees the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=indent, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class Snapshot:
    """Stats of a complete run. ``files``: path → [size, mtime_ns] of each indexed file;
    ``skipped``: path → [size, mtime_ns, reason] of each walked file that was left out."""

    root: str
    options: str  # the indexing options that decide what is indexed (ignores, size limit)
    files: dict[str, list[int]] = field(default_factory=dict)
    skipped: dict[str, list[Any]] = field(default_factory=dict)

    def stats(self) -> dict[str, tuple[int, int]]:
        """Every walked path with its (size, mtime_ns)."""
        found = {path: (int(s[0]), int(s[1])) for path, s in self.files.items()}
        found.update({path: (int(s[0]), int(s[1])) for path, s in self.skipped.items()})
        return found


def read_snapshot(directory: IndexDir) -> Snapshot | None:
    """The snapshot, or ``None`` when there is none or it is unreadable or of another format."""
    if isinstance(directory, Remote):
        return None
    try:
        data = json.loads((directory / SNAPSHOT).read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_VERSION:
            return None
        return Snapshot(root=data["root"], options=data["options"], files=data["files"], skipped=data["skipped"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_snapshot(directory: IndexDir, snapshot: Snapshot) -> None:
    if isinstance(directory, Remote):
        return
    data = dict(format=FORMAT_VERSION, **snapshot.__dict__)
    write_json(directory / SNAPSHOT, data)


def clear_snapshot(directory: IndexDir) -> None:
    """Called before every table write: from then on the snapshot could be stale."""
    if isinstance(directory, Remote):
        return
    with contextlib.suppress(FileNotFoundError):
        (directory / SNAPSHOT).unlink()


def mark_damaged(directory: IndexDir, detail: str) -> None:
    """A reader found the index unreadable: say so for the next run to check and repair it
    (the next run otherwise trusts its snapshot and would not look). A folder that went away
    needs no mark: a missing index is rebuilt anyway."""
    if isinstance(directory, Remote):
        return
    with contextlib.suppress(OSError):
        if (directory / META).exists():
            (directory / DAMAGED).write_text(detail + "\n", encoding="utf-8")


def damage_note(directory: IndexDir) -> str | None:
    """What a reader found wrong with the index, or a table folder missing beside its meta (a
    reader does not write there, and a no-change run would otherwise trust its snapshot);
    ``None``: nothing is known to be wrong."""
    if isinstance(directory, Remote):
        return None
    try:
        return (directory / DAMAGED).read_text(encoding="utf-8").strip() or "reported damaged"
    except OSError:
        pass
    with contextlib.suppress(OSError):
        if (directory / META).is_file():
            for table in TABLES:
                if not (directory / f"{table}.lance").is_dir():
                    return f"the index at {directory} has no {table} table"
    return None


def clear_damage(directory: IndexDir) -> None:
    if not isinstance(directory, Remote):
        with contextlib.suppress(FileNotFoundError):
            (directory / DAMAGED).unlink()
