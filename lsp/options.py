"""The language server's initialization options: typed, defaulted and checked.

A client sends them as ``initializationOptions`` (camelCase keys). A bad value never stops the
server: :func:`parse` keeps the default for that option and returns a problem to show the user.
The indexing options (``model``, ``device``, ``dtype``, ``ignore``, ``secrets``, ``maxFileSize``)
are checked by ``codesearch.options.problem``, as the CLI's are, and become one
``codesearch.service.ProjectOptions`` (an ``IndexOptions``) for every folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesearch.files import DEFAULT_MAX_FILE_BYTES
from codesearch.options import problem
from codesearch.service import ProjectOptions

MAX_RESULTS_LIMIT = 1000


@dataclass(frozen=True)
class InitOptions:
    index_dir: str | None = None  # one workspace folder only
    model: str | None = None
    ignore: tuple[str, ...] = ()  # extra gitignore-style globs
    max_results: int = 100
    watch: bool = True
    device: str | None = None
    dtype: str | None = None
    secrets: str = "redact"  # redact, skip or off, as codesearch index --secrets
    max_file_size: int = DEFAULT_MAX_FILE_BYTES  # bytes, as codesearch index --max-file-size
    problems: tuple[str, ...] = field(default=(), compare=False)

    def project_options(self) -> ProjectOptions:
        return ProjectOptions(
            index_dir=Path(self.index_dir).expanduser() if self.index_dir else None,
            model=self.model,
            extra_ignores=self.ignore,
            watch=self.watch,
            device=self.device,
            dtype=self.dtype,
            secrets=self.secrets,
            max_file_bytes=self.max_file_size,
        )


_KEYS = {
    "indexDir": "index_dir",
    "model": "model",
    "ignore": "ignore",
    "maxResults": "max_results",
    "watch": "watch",
    "device": "device",
    "dtype": "dtype",
    "secrets": "secrets",
    "maxFileSize": "max_file_size",
}
# init option → its IndexOptions field, checked there
_INDEXING = {
    "model": "model",
    "device": "device",
    "dtype": "dtype",
    "ignore": "extra_ignores",
    "secrets": "secrets",
    "max_file_size": "max_file_bytes",
}


def _check(name: str, value: Any) -> tuple[Any, str]:
    """(the value to use, '' or what is wrong with it)."""
    if name == "index_dir" and isinstance(value, str) and "://" in value:
        return None, "a local folder (the server watches its index; object-store URIs are for codesearch index)"
    if name == "index_dir":
        if value is None or (isinstance(value, str) and value.strip()):
            return value, ""
        return None, "a non-empty string"
    if name == "ignore":
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            return None, "a list of glob strings"
        value = tuple(v for v in value if v.strip())
    if name in _INDEXING:
        wrong = problem(_INDEXING[name], value)
        return (None, wrong) if wrong else (value, "")
    if name == "max_results":
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_RESULTS_LIMIT:
            return value, ""
        return None, f"an integer from 1 to {MAX_RESULTS_LIMIT}"
    if isinstance(value, bool):  # watch
        return value, ""
    return None, "true or false"


def parse(raw: Any) -> InitOptions:
    """Options from the client's ``initializationOptions`` (``None`` or ``{}``: all defaults)."""
    if raw is None:
        return InitOptions()
    if not isinstance(raw, dict):
        return InitOptions(problems=(f"initializationOptions must be an object, not {type(raw).__name__}",))
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in raw.items():
        name = _KEYS.get(key)
        if name is None:
            problems.append(f"unknown option {key!r} (known: {', '.join(_KEYS)})")
            continue
        checked, wrong = _check(name, value)
        if wrong:
            default = getattr(InitOptions, name)
            problems.append(f"option {key!r} must be {wrong}, not {value!r}; using {default!r}")
            continue
        if checked is not None:
            values[name] = checked
    return InitOptions(**values, problems=tuple(problems))
