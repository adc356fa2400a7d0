"""Index: keeping a LanceDB index equal to the files of a source tree.

Public: :class:`Indexer`, :class:`IndexStats`, :class:`Progress`, :class:`Plan`, :func:`chunk_id`.
"""

from codesearch.index.indexer import Indexer, IndexStats, Plan, Progress, chunk_id

__all__ = ["IndexStats", "Indexer", "Plan", "Progress", "chunk_id"]
