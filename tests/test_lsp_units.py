"""The language server's pure parts: option checking, range conversion and how symbols read in editors."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types

from codesearch.chunking import chunk_file
from codesearch.search import SearchResult
from codesearch.service import Found
from lsp.convert import chunk_range, search_item, selection_lines, workspace_symbol
from lsp.options import InitOptions, parse


def test_options_default_and_check_each_value() -> None:
    assert parse(None) == InitOptions() and parse({}) == InitOptions()
    good = parse({"maxResults": 20, "ignore": ["*.min.js", " "], "watch": False, "dtype": "int8", "model": "x"})
    assert (good.max_results, good.ignore, good.watch, good.dtype, good.model) == (
        20,
        ("*.min.js",),
        False,
        "int8",
        "x",
    )
    assert not good.problems
    bad = parse({"maxResults": 0, "ignore": "*.js", "watch": 1, "dtype": "fp8", "indexDir": "", "colour": "red"})
    assert bad == InitOptions()  # every bad value falls back to its default
    assert len(bad.problems) == 6 and any("unknown option 'colour'" in p for p in bad.problems)
    assert parse(["not", "an", "object"]).problems
    remote = parse({"indexDir": "s3://bucket/idx"})
    assert remote.index_dir is None and "local folder" in remote.problems[0]


def test_ranges_between_one_based_lines_and_lsp_positions() -> None:
    span = chunk_range(3, 5)
    assert (span.start.line, span.start.character, span.end.line, span.end.character) == (2, 0, 5, 0)
    whole_lines = types.Range(start=types.Position(line=2, character=0), end=types.Position(line=5, character=0))
    assert selection_lines(whole_lines) == (3, 5)  # an end at column 0 ends on the line before
    inside_a_line = types.Range(start=types.Position(line=4, character=2), end=types.Position(line=4, character=9))
    assert selection_lines(inside_a_line) == (5, 5)


def _shown(path: str, symbol: str, kind: str) -> tuple[str, str | None]:
    """(name, container) an editor shows for a result."""
    found = Found(Path("/ws"), SearchResult(path, 1, 3, symbol, kind, "python", 0.5, ""))
    shown = workspace_symbol(found)
    return shown.name, shown.container_name


@pytest.mark.parametrize(
    ("path", "symbol", "kind", "expected"),
    [
        ("src/links.py", "Session.request", "method", ("request", "Session")),
        ("src/links.py", "parse_header_links", "function", ("parse_header_links", None)),
        ("greeter.rb", "Greeting.Greeter.initialize", "method", ("initialize", "Greeting.Greeter")),
        ("m.cpp", "std.hash<ns.Key>.operator()", "method", ("operator()", "std.hash<ns.Key>")),
        ("m.cpp", "max<std.string>", "function", ("max<std.string>", None)),
        # named after the file (a file-level chunk of code, or a text window): never split
        ("codesearch/files/ignore.py", "ignore.py", "module", ("ignore.py", None)),
        ("docs/setup.cfg", "setup.cfg", "text", ("setup.cfg", None)),
        # a Markdown heading holding a URL, a dotted namespace: shown as written
        ("README.md", "See https://example.org/a.b/c.html", "text", ("See https://example.org/a.b/c.html", None)),
        ("Parser.cs", "Acme.Text", "namespace", ("Acme.Text", None)),
        ("a.py", "", "module", ("a.py", None)),
    ],
)
def test_only_qualified_symbols_are_split(path: str, symbol: str, kind: str, expected: tuple[str, str | None]) -> None:
    assert _shown(path, symbol, kind) == expected


def test_workspace_symbols_of_real_chunks_read_right(tmp_path: Path) -> None:
    """The chunker's own output, converted: the README's example query lands on ``ignore.py``'s
    module code, which must read ``ignore.py`` (not ``py`` in ``ignore``)."""
    code = "import os\n\nDEFAULTS = ['.git']\n\nclass Rules:\n    def match(self, path):\n        return path\n"
    text = "# Setup: see https://example.org/docs.html\n\nRun make.\n"
    rows = [("codesearch/files/ignore.py", c) for c in chunk_file("codesearch/files/ignore.py", code, "python")]
    rows += [("docs/guide.md", c) for c in chunk_file("docs/guide.md", text, "markdown")]
    shown = []
    for path, c in rows:
        found = Found(tmp_path, SearchResult(path, c.start_line, c.end_line, c.symbol, c.kind, c.language, 1.0, ""))
        symbol = workspace_symbol(found)
        shown.append((symbol.name, symbol.container_name))
        assert search_item(found, False)["symbol"] == c.symbol  # the search request keeps the full symbol
    assert shown == [
        ("ignore.py", None),
        ("Rules", None),
        ("match", "Rules"),
        ("Setup: see https://example.org/docs.html", None),
    ]
