"""Files: which files of a source tree are indexed, and their text.

Public: :func:`walk`, :func:`check_path`, :func:`load`, :class:`SourceFile`, :class:`SkipStats`,
:class:`IgnoreRules`, :func:`detect_language`.
"""

from codesearch.files.ignore import DEFAULT_EXCLUDES, IgnoreRules
from codesearch.files.languages import detect_language
from codesearch.files.walk import (
    DEFAULT_MAX_FILE_BYTES,
    SKIP_REASONS,
    LoadedFile,
    SkipStats,
    SourceFile,
    check_path,
    content_hash,
    load,
    looks_minified,
    walk,
)

__all__ = [
    "DEFAULT_EXCLUDES",
    "DEFAULT_MAX_FILE_BYTES",
    "SKIP_REASONS",
    "IgnoreRules",
    "LoadedFile",
    "SkipStats",
    "SourceFile",
    "check_path",
    "content_hash",
    "detect_language",
    "load",
    "looks_minified",
    "walk",
]
