"""Ignore rules: gitignore semantics for what a walk of a source tree must leave out.

Owns the default excludes (VCS folders, dependency and build outputs, virtualenvs, minified
bundles, lock files), and the per-directory rule stack built from nested ``.gitignore`` and
``.codesearchignore`` files plus the root's ``.git/info/exclude``. Matching follows git: the
deepest file that has an opinion wins, and inside one file the last matching pattern wins
(``!pattern`` re-includes).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pathspec

log = logging.getLogger(__name__)

IGNORE_FILES = (".gitignore", ".codesearchignore")

DEFAULT_EXCLUDES: tuple[str, ...] = (
    # version control and tool state
    ".git/",
    ".hg/",
    ".svn/",
    ".bzr/",
    "_darcs/",
    ".jj/",
    ".idea/",
    ".vscode-test/",
    ".codesearch/",
    # dependencies and virtual environments
    "node_modules/",
    "bower_components/",
    "jspm_packages/",
    "vendor/bundle/",
    ".venv/",
    "venv/",
    ".tox/",
    ".nox/",
    "__pypackages__/",
    # caches and build outputs
    "__pycache__/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".gradle/",
    ".next/",
    ".nuxt/",
    ".svelte-kit/",
    ".parcel-cache/",
    ".turbo/",
    "build/",
    "dist/",
    "out/",
    "target/",
    "bin/",
    "obj/",
    "coverage/",
    "htmlcov/",
    "*.egg-info/",
    "site-packages/",
    # compiled, minified and generated files
    "*.pyc",
    "*.pyo",
    "*.class",
    "*.o",
    "*.obj",
    "*.so",
    "*.dylib",
    "*.dll",
    "*.exe",
    "*.a",
    "*.lib",
    "*.min.js",
    "*.min.css",
    "*.min.mjs",
    "*.bundle.js",
    "*.chunk.js",
    "*.map",
    "*.pb.go",
    "*_pb2.py",
    # lock files
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "Cargo.lock",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "composer.lock",
    "Gemfile.lock",
    "go.sum",
    "*.lock",
    # data and media that is never code
    "*.svg",
    "*.csv",
    "*.tsv",
    "*.log",
    "*.ipynb",
    ".DS_Store",
)


@dataclass(frozen=True)
class _Layer:
    """The patterns of one directory, matched against paths relative to that directory."""

    base: str  # posix path of the directory relative to the root, "" for the root
    spec: pathspec.GitIgnoreSpec
    # without negations a path is ignored iff any pattern matches: one regex does it (a walk
    # checks every path against every layer, so this is the walk's hot loop)
    any_match: re.Pattern[str] | None = None

    @classmethod
    def of(cls, base: str, lines: Iterable[str]) -> _Layer:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
        patterns = [p for p in spec.patterns if p.include is not None and p.regex is not None]
        if not patterns or not all(p.include for p in patterns):
            return cls(base, spec)
        combined = "|".join(f"(?:{p.regex.pattern.replace('(?P<ps_d>', '(?:')})" for p in patterns)  # type: ignore[union-attr]
        return cls(base, spec, re.compile(combined))

    def decide(self, rel: str, is_dir: bool) -> bool | None:
        """True: ignored, False: re-included by a negation, None: no opinion."""
        if self.base:
            if not rel.startswith(self.base + "/"):
                return None
            rel = rel[len(self.base) + 1 :]
        candidate = rel + "/" if is_dir else rel
        if self.any_match is not None:
            return True if self.any_match.search(candidate) else None
        result = self.spec.check_file(candidate)
        return result.include


class IgnoreRules:
    """An immutable stack of ignore layers; ``child()`` returns the stack for a subdirectory."""

    def __init__(self, layers: tuple[_Layer, ...]) -> None:
        self._layers = layers

    @classmethod
    def for_root(cls, root: Path, extra_patterns: Iterable[str] = (), use_defaults: bool = True) -> IgnoreRules:
        """Rules at the root: defaults, then ``.git/info/exclude``, then caller patterns, then
        the root's own ignore files (later layers take precedence)."""
        layers: list[_Layer] = []
        if use_defaults:
            layers.append(_Layer.of("", DEFAULT_EXCLUDES))
        exclude = _read_lines(root / ".git" / "info" / "exclude")
        if exclude:
            layers.append(_Layer.of("", exclude))
        extra = [p for p in extra_patterns if p.strip()]
        if extra:
            layers.append(_Layer.of("", extra))
        rules = cls(tuple(layers))
        return rules.child(root, "")

    def child(self, directory: Path, rel_dir: str) -> IgnoreRules:
        """The rules that apply inside ``directory`` (posix ``rel_dir`` relative to the root)."""
        lines: list[str] = []
        for name in IGNORE_FILES:
            lines.extend(_read_lines(directory / name))
        if not lines:
            return self
        return IgnoreRules((*self._layers, _Layer.of(rel_dir, lines)))

    def is_ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether the posix path ``rel`` (relative to the root) is excluded."""
        for layer in reversed(self._layers):
            decision = layer.decide(rel, is_dir)
            if decision is not None:
                return decision
        return False


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:  # unreadable ignore file: say so, keep walking
        log.warning("cannot read ignore file %s: %s", path, exc)
        return []
