"""Indexing options: one object, checked in one place, shared by every way of indexing.

:class:`IndexOptions` holds what decides how a tree is indexed: the model and where it runs
(``model``, ``device``, ``dtype``), which files are indexed (``extra_ignores``, ``max_file_bytes``,
``secrets``), and ``rebuild``. The CLI builds it from its arguments (``index``, ``watch``), the
language server from its initialization options (``lsp.options`` → ``service.ProjectOptions``, an
``IndexOptions`` plus how the server serves), and the local and Ray engines, the watcher and a
served project all take it. :func:`problem` is the one check of each value: a bad one raises
:class:`~codesearch.errors.UsageError` here, and the language server shows it and keeps the default.

The **row policy** (:attr:`IndexOptions.policy`) names what shapes a file's rows besides its bytes:
the chunker's version, the secrets mode and, unless secrets are off, the version of the redaction
patterns. Every catalog record keeps the policy that produced its rows, and a file whose policy
differs from the current one is read and chunked again (:func:`exposes` says when the old rows may
hold a secret the new policy keeps out: the writer then removes them from disk at once). Which
files are indexed at all (ignore rules, size limit, secret-bearing names) is decided by the walk
on every full run: a file the rules now leave out is deleted, one they now let in is added.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any

import pathspec

from codesearch.chunking import CHUNKER_VERSION
from codesearch.errors import UsageError
from codesearch.files import DEFAULT_MAX_FILE_BYTES, SECRET_POLICIES
from codesearch.files.secrets import REDACTION_VERSION

DTYPES = ("auto", "float32", "bfloat16", "int8")
_LABELS = {"max_file_bytes": "max file size", "extra_ignores": "ignore patterns"}  # as users know them


@dataclass(frozen=True)
class IndexOptions:
    """How a tree is indexed. Every value is checked when the object is made (:func:`problem`)."""

    model: str | None = None  # auto or None: a new index picks one, an existing one keeps its own
    device: str | None = None  # cpu, cuda, cuda:1, mps; None: the best there is
    dtype: str | None = None  # one of DTYPES; None: auto
    secrets: str = "redact"  # redact, skip or off (codesearch.files.secrets)
    extra_ignores: tuple[str, ...] = ()  # gitignore-style globs, beside .gitignore and .codesearchignore
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    rebuild: bool = False  # drop the index (and its vector cache) first

    def __post_init__(self) -> None:
        if isinstance(self.extra_ignores, list):  # a list is as good as a tuple (and stays hashable so)
            object.__setattr__(self, "extra_ignores", tuple(self.extra_ignores))
        for option in fields(IndexOptions):
            value = getattr(self, option.name)
            wrong = problem(option.name, value)
            if wrong:
                raise UsageError(f"{_LABELS.get(option.name, option.name)} must be {wrong}, not {value!r}")

    @property
    def policy(self) -> str:
        """What shapes a file's rows besides its bytes, as recorded in its catalog record."""
        return row_policy(self.secrets)


def problem(name: str, value: Any) -> str:
    """What ``value`` must be for the :class:`IndexOptions` field ``name`` ('' when it is fine)."""
    if name in ("model", "device"):
        return "" if value is None or (isinstance(value, str) and value.strip()) else "a non-empty string"
    if name == "dtype":
        return "" if value is None or value in DTYPES else f"one of {', '.join(DTYPES)}"
    if name == "secrets":
        return "" if value in SECRET_POLICIES else f"one of {', '.join(SECRET_POLICIES)}"
    if name == "extra_ignores":
        if not (isinstance(value, tuple) and all(isinstance(glob, str) for glob in value)):
            return "a list of glob strings"
        for glob in value:
            try:
                pathspec.GitIgnoreSpec.from_lines([glob])
            except (ValueError, re.error) as exc:
                return f"gitignore-style globs ({glob!r}: {exc})"
        return ""
    if name == "max_file_bytes":
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        return "" if ok else "a whole number of bytes, at least 1"
    if name == "rebuild":
        return "" if isinstance(value, bool) else "true or false"
    raise KeyError(name)


def row_policy(secrets: str) -> str:
    """The row policy of a secrets mode under this codesearch (see the module docstring)."""
    parts = [f"chunker {CHUNKER_VERSION}", f"secrets {secrets}"]
    if secrets != "off":
        parts.append(f"patterns {REDACTION_VERSION}")
    return "; ".join(parts)


def _parts(policy: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in policy.split(";"):
        name, _, value = part.strip().partition(" ")
        if name:
            found[name] = value
    return found


def exposes(old: str, new: str) -> bool:
    """Whether rows written under policy ``old`` may hold a secret that policy ``new`` keeps out:
    they held text as it was (``secrets off``, or a policy not recorded) and ``new`` redacts or
    skips, or they were redacted with other patterns than ``new``'s."""
    before, now = _parts(old), _parts(new)
    if now.get("secrets", "off") == "off":
        return False
    if before.get("secrets", "off") == "off":
        return True
    return before.get("patterns") != now.get("patterns")
