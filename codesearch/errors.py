"""The library's error vocabulary.

Every error the library raises on purpose is a :class:`CodesearchError` whose message is one
line a user can act on. Boundaries (the CLI, later the language server) translate these into an
exit code or a protocol error; nothing inside the library prints or exits.
"""

from __future__ import annotations


class CodesearchError(Exception):
    """Base class: ``str(error)`` is a complete, user-facing sentence."""

    exit_code = 1


class UsageError(CodesearchError):
    """Bad arguments or options (unknown mode, non-positive k, unreadable root...)."""

    exit_code = 2


class IndexNotFoundError(CodesearchError):
    """No index exists yet for the requested root or index folder."""

    exit_code = 3


class ModelMismatchError(CodesearchError):
    """The index was built with another embedding model than the one requested."""

    exit_code = 4


class UnknownModelError(CodesearchError):
    """The model name is neither a preset, a local checkpoint folder nor a loadable hub id."""

    exit_code = 5


class IndexCorruptError(CodesearchError):
    """The index folder exists but cannot be read."""

    exit_code = 6


class IndexLockedError(CodesearchError):
    """Another process is writing the index (one writer per index; readers are welcome)."""

    exit_code = 7


class StorageFullError(CodesearchError):
    """The disk (or quota) of the index ran out while writing. Nothing committed is lost: the
    next run, with space, resumes where this one stopped."""

    exit_code = 8
