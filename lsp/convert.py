"""Conversion between codesearch results and LSP types, in one place.

Lines: codesearch counts from 1 (inclusive ranges); LSP counts from 0 with an exclusive end,
so chunk lines ``a..b`` become ``Range((a-1, 0), (b, 0))``. Symbols: only a code definition's
qualified symbol is split into name and container (:func:`split_symbol`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlparse

from lsprotocol import types
from pygls.uris import from_fs_path, to_fs_path

from codesearch.chunking import QUALIFIER
from codesearch.search import SearchResult
from codesearch.service import Found

SYMBOL_KINDS = {
    "function": types.SymbolKind.Function,
    "method": types.SymbolKind.Method,
    "constructor": types.SymbolKind.Constructor,
    "class": types.SymbolKind.Class,
    "struct": types.SymbolKind.Struct,
    "interface": types.SymbolKind.Interface,
    "trait": types.SymbolKind.Interface,
    "impl": types.SymbolKind.Class,
    "enum": types.SymbolKind.Enum,
    "type": types.SymbolKind.TypeParameter,
    "object": types.SymbolKind.Object,
    "namespace": types.SymbolKind.Namespace,
    "module": types.SymbolKind.Module,
    "macro": types.SymbolKind.Function,
    "text": types.SymbolKind.File,
}


_SURROGATE = re.compile("[\ud800-\udfff]")  # how Python names a file name's bytes that are not UTF-8


class OutsideWorkspace(ValueError):
    """A URI that is not a file of this machine."""


def uri_of(path: Path) -> str:
    text = str(path)
    if os.name != "nt" and not text.isascii() and _SURROGATE.search(text):  # bytes that are not UTF-8
        return "file://" + quote(os.fsencode(text))  # percent-encoded as the bytes they are
    uri = from_fs_path(text)
    if uri is None:
        raise OutsideWorkspace(f"cannot make a URI of {path}")
    return uri


def path_of(uri: str) -> Path:
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if not path:
        raise OutsideWorkspace(f"{uri!r} is not a file: URI")
    if os.name != "nt" and "\ufffd" in path and not urlparse(uri).netloc:  # bytes that are not UTF-8: keep them
        path = os.fsdecode(unquote_to_bytes(urlparse(uri).path))
    return Path(path)


def chunk_range(start_line: int, end_line: int) -> types.Range:
    return types.Range(
        start=types.Position(line=start_line - 1, character=0), end=types.Position(line=end_line, character=0)
    )


def selection_lines(selection: types.Range) -> tuple[int, int]:
    """A selection as 1-based inclusive lines (an end at column 0 ends on the line before)."""
    start, end = selection.start.line + 1, selection.end.line + 1
    if selection.end.character == 0 and selection.end.line > selection.start.line:
        end -= 1
    return start, max(start, end)


# kinds whose symbol the chunker may have qualified (``Class.method``); the others are named after a
# file, a heading or a namespace as written, and are shown whole
QUALIFIED_KINDS = frozenset(SYMBOL_KINDS) - {"text", "namespace"}
_BRACKETS = {"(": ")", "<": ">", "[": "]"}


def split_symbol(result: SearchResult) -> tuple[str, str | None]:
    """(name, container) of a result's symbol: ``Session.request`` gives ``("request", "Session")``.
    Only a code definition's symbol is qualified, at the chunker's separator outside brackets
    (``max<std.string>`` is one name); a file-level chunk named after its file (``ignore.py``), a
    Markdown heading (``See https://x.org/a.b``) or a namespace (``Acme.Text``) stays whole."""
    symbol = result.symbol
    if not symbol:
        return Path(result.path).name, None
    if result.kind not in QUALIFIED_KINDS or symbol == PurePosixPath(result.path).name:
        return symbol, None
    cut, closers = -1, []
    for i, ch in enumerate(symbol):
        if ch in _BRACKETS:
            closers.append(_BRACKETS[ch])
        elif closers and ch == closers[-1]:
            closers.pop()
        elif ch == QUALIFIER and not closers:
            cut = i
    if cut <= 0 or cut == len(symbol) - 1:
        return symbol, None
    return symbol[cut + 1 :], symbol[:cut]


def workspace_symbol(found: Found) -> types.WorkspaceSymbol:
    """name = the symbol's own name; containerName = the enclosing symbol (``Class``), none at
    the top level. Clients show the file from the location, so the path is not repeated."""
    result = found.result
    name, container = split_symbol(result)
    return types.WorkspaceSymbol(
        name=name,
        kind=SYMBOL_KINDS.get(result.kind, types.SymbolKind.Variable),
        location=types.Location(uri=uri_of(found.file), range=chunk_range(result.start_line, result.end_line)),
        container_name=container,
    )


def search_item(found: Found, partial: bool) -> dict[str, Any]:
    """One ``codesearch/search`` result (plain JSON: lsprotocol types are for standard methods)."""
    result = found.result
    span = chunk_range(result.start_line, result.end_line)
    return {
        "uri": uri_of(found.file),
        "range": {
            "start": {"line": span.start.line, "character": 0},
            "end": {"line": span.end.line, "character": 0},
        },
        "symbol": result.symbol,
        "kind": result.kind,
        "language": result.language,
        "score": result.score,
        "snippet": result.snippet,
        "path": result.path,
        "partial": partial,
    }
