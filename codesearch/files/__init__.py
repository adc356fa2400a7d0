"""Files: which files of a source tree are indexed, and their text.

Public: :func:`walk`, :func:`check_path`, :func:`load`, :class:`SourceFile`, :class:`SkipStats`,
:class:`IgnoreRules`, :func:`detect_language`; from ``files.secrets``: :data:`SECRET_POLICIES`,
:func:`find_secrets`, :func:`redact`, :func:`is_secret_file`.
"""

from codesearch.files.ignore import DEFAULT_EXCLUDES, IgnoreRules
from codesearch.files.languages import detect_language
from codesearch.files.secrets import MARK as REDACTED_MARK
from codesearch.files.secrets import POLICIES as SECRET_POLICIES
from codesearch.files.secrets import find_secrets, is_secret_file, redact
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
    "REDACTED_MARK",
    "SECRET_POLICIES",
    "SKIP_REASONS",
    "IgnoreRules",
    "LoadedFile",
    "SkipStats",
    "SourceFile",
    "check_path",
    "content_hash",
    "detect_language",
    "find_secrets",
    "is_secret_file",
    "load",
    "looks_minified",
    "redact",
    "walk",
]
