"""The language server's initialization options: typed, defaulted and checked.

A client sends them as ``initializationOptions`` (camelCase keys). A bad value never stops the
server: :func:`parse` keeps the default for that option and returns a problem to show the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    problems: tuple[str, ...] = field(default=(), compare=False)

    def project_options(self) -> ProjectOptions:
        return ProjectOptions(
            index_dir=Path(self.index_dir).expanduser() if self.index_dir else None,
            model=self.model,
            extra_ignores=self.ignore,
            watch=self.watch,
            device=self.device,
            dtype=self.dtype,
        )


_KEYS = {
    "indexDir": "index_dir",
    "model": "model",
    "ignore": "ignore",
    "maxResults": "max_results",
    "watch": "watch",
    "device": "device",
    "dtype": "dtype",
}
_DTYPES = ("auto", "float32", "bfloat16", "int8")


def _check(name: str, value: Any) -> tuple[Any, str]:
    """(the value to use, '' or what is wrong with it)."""
    if name == "index_dir" and isinstance(value, str) and "://" in value:
        return None, "a local folder (the server watches its index; object-store URIs are for codesearch index)"
    if name in ("index_dir", "model", "device"):
        if value is None or (isinstance(value, str) and value.strip()):
            return value, ""
        return None, "a non-empty string"
    if name == "dtype":
        if value is None or value in _DTYPES:
            return value, ""
        return None, f"one of {', '.join(_DTYPES)}"
    if name == "ignore":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(v for v in value if v.strip()), ""
        return None, "a list of glob strings"
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
