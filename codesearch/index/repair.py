"""Repairing a damaged index: the one place that decides to empty an index folder that cannot
be read, and what survives that.

An index is *damaged* when its meta or tables cannot be opened, when a reader (a search)
failed to read it and left a mark (``store.mark_damaged``), or when a table is missing (a
reader reports that without writing anything; the writer's open creates the table): the next
run reads every table and compares the file catalog with the chunk rows (``Store.check``) and,
if that fails, rebuilds the index from the files. The embedding cache is
kept when it reads back whole, so a rebuild re-chunks but embeds nothing it had computed. A
folder holding anything codesearch did not write is never emptied (it may not be an index).
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from codesearch.errors import IndexCorruptError
from codesearch.index.runs import LOCK_FILE
from codesearch.store import FORMAT_VERSION, IndexDir, clear_damage, damage_note

if TYPE_CHECKING:
    from codesearch.store import Store

log = logging.getLogger(__name__)


def open_or_empty(index_dir: IndexDir) -> tuple[Store | None, str]:
    """The existing index, opened for writing (run by the writer: it holds the writer lock), and
    read whole when it was reported damaged or missed a table; or, when it cannot be read or does
    not match its catalog, ``None`` and why, after emptying it for a rebuild (see :func:`empty`)."""
    from codesearch.store import Store
    from codesearch.store.lance import REPAIR_HINT

    reported = damage_note(index_dir)
    try:
        store = Store.open(index_dir, writable=True)
        if store.created:  # a table went missing (an object store has no damage mark to say so)
            reported = reported or f"the index at {index_dir} had no {store.created[0]} table"
        if reported:
            store.check()
    except IndexCorruptError as exc:
        if _newer_format(index_dir):  # written by a newer codesearch: not ours to wipe
            raise
        why = str(exc).removesuffix(REPAIR_HINT)
        empty(index_dir, why)
        return None, why
    if reported:  # it reads back whole now (the reader's failure was passing)
        log.info("the index at %s was reported damaged (%s) but reads back whole", index_dir, reported)
        clear_damage(index_dir)
    return store, ""


def empty(index_dir: IndexDir, why: str) -> None:
    """Empty a damaged index folder for a rebuild: all but the writer lock and, when it reads
    back whole, the embedding cache."""
    from codesearch.store import Store

    foreign = Store.foreign_entries(index_dir)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise IndexCorruptError(
            f"{why}; not repaired, because {index_dir} also holds {shown}, which codesearch did not write: "
            "move them away, or index into another --index-dir"
        )
    keep_cache = Store.cache_intact(index_dir)
    log.warning(
        "%s; rebuilding the index from the files%s",
        why,
        " (its computed vectors are kept)" if keep_cache else "",
    )
    Store.clear(index_dir, keep=(LOCK_FILE,), keep_cache=keep_cache)


def stored_model(index_dir: IndexDir) -> str | None:
    """The model name in the index's meta, when it can be read."""
    from codesearch.store import Store

    with contextlib.suppress(OSError, ValueError, RuntimeError):
        name = Store.read_meta(index_dir).get("model_name")
        return str(name) if name else None
    return None


def _newer_format(index_dir: IndexDir) -> bool:
    from codesearch.store import Store

    with contextlib.suppress(OSError, ValueError, RuntimeError):
        found = Store.read_meta(index_dir).get("format")
        return isinstance(found, int) and found > FORMAT_VERSION
    return False
