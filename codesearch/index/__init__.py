"""Index: keeping a LanceDB index equal to the files of a source tree.

Public: :class:`Indexer`, :class:`IndexStats`, :class:`Progress`, :class:`Plan`, and
:class:`Watcher` (``codesearch.index.watcher``, imported on use: it needs watchdog).
"""

from codesearch.index.indexer import Indexer, IndexStats, Plan, Progress

__all__ = ["IndexStats", "Indexer", "Plan", "Progress"]
