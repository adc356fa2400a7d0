"""Store: the only package that imports lancedb.

Public: from ``store.layout`` (plain files, no lancedb): :data:`FORMAT_VERSION`,
:class:`Snapshot`, :data:`IndexDir`, :class:`Remote`, :func:`index_location`, :func:`read_meta`,
:func:`read_snapshot`, :func:`write_snapshot`,
:func:`clear_snapshot`, :func:`mark_damaged`, :func:`damage_note`,
:func:`clear_damage`; :class:`Store` (``store.lance``, imported on first use: lancedb takes a second to
import, and a no-change re-index never needs it), and from ``store.rows``: :class:`FileRecord`,
:class:`Hit`, :class:`StoredRows`, :func:`chunk_id`, :func:`fuse`, :func:`glob_filter`, :func:`escape_glob`,
:func:`under_filter`, :func:`sql_in`, :func:`sql_str`, :func:`score_bounds`,
:func:`lexical_terms`, :func:`split_identifier`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from codesearch.store.layout import (
    FORMAT_VERSION,
    META,
    IndexDir,
    Remote,
    Snapshot,
    clear_damage,
    clear_snapshot,
    damage_note,
    index_location,
    mark_damaged,
    read_meta,
    read_snapshot,
    write_snapshot,
)
from codesearch.store.rows import (
    FileRecord,
    Hit,
    StoredRows,
    chunk_id,
    escape_glob,
    fuse,
    glob_filter,
    lexical_terms,
    score_bounds,
    split_identifier,
    sql_in,
    sql_str,
    under_filter,
)

if TYPE_CHECKING:
    from codesearch.store.lance import Store


def __getattr__(name: str) -> Any:
    if name == "Store":
        from codesearch.store.lance import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FORMAT_VERSION",
    "META",
    "FileRecord",
    "Hit",
    "IndexDir",
    "Remote",
    "Snapshot",
    "Store",
    "StoredRows",
    "chunk_id",
    "clear_damage",
    "clear_snapshot",
    "damage_note",
    "escape_glob",
    "fuse",
    "glob_filter",
    "index_location",
    "lexical_terms",
    "mark_damaged",
    "read_meta",
    "read_snapshot",
    "score_bounds",
    "split_identifier",
    "sql_in",
    "sql_str",
    "under_filter",
    "write_snapshot",
]
