"""Store: the only package that imports lancedb.

Public: :class:`Store`, :class:`FileRecord`, :class:`Hit`, :func:`fuse`, :func:`glob_filter`,
:func:`sql_in`, :func:`sql_str`, :func:`lexical_terms`, :func:`split_identifier`.
"""

from codesearch.store.lance import (
    FileRecord,
    Hit,
    Store,
    fuse,
    glob_filter,
    lexical_terms,
    split_identifier,
    sql_in,
    sql_str,
)

__all__ = [
    "FileRecord",
    "Hit",
    "Store",
    "fuse",
    "glob_filter",
    "lexical_terms",
    "split_identifier",
    "sql_in",
    "sql_str",
]
