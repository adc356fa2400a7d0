"""The language server's pure parts: option checking and range conversion."""

from __future__ import annotations

from lsprotocol import types

from lsp.convert import chunk_range, selection_lines
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
