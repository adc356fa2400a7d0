"""Index: keeping a LanceDB index equal to the files of a source tree.

Public: :class:`Indexer`, :class:`IndexStats`, :class:`Progress`, :func:`read_progress`, :class:`Plan`, and
:class:`Watcher` (``codesearch.index.watcher``, imported on use: it needs watchdog).
"""

from codesearch.index.indexer import Indexer, Plan
from codesearch.index.runs import IndexStats, Progress, read_progress

__all__ = ["IndexStats", "Indexer", "Plan", "Progress", "read_progress"]
