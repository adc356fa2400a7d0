"""What a search answers, on a real index (a tiny random model; words rank in lexical mode): one
result per definition however many pieces a long one was split into (``pieces`` shows them), two
definitions of one name stay two, and no filler that scores 0."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codesearch.index import Indexer
from codesearch.ranking import is_auxiliary, prefer_definitions
from codesearch.search import MIN_SCORE, Searcher, candidate_depth
from codesearch.store import Store, fuse

STATEMENTS = 160


def long_function() -> str:
    body = [f"        total += convert_record_value(record, field_{i}, weight={i})" for i in range(STATEMENTS)]
    body[STATEMENTS // 2] = "        total += rare_checksum_marker(record)"  # one word only the middle piece holds
    lines = [
        "def flatten_records(records, options=None):",
        '    """Flatten nested records into rows."""',
        "    total = 0",
        "    for record in records:",
        *body,
        "    return total",
    ]
    return "\n".join(lines) + "\n"


PREAMBLE = "import os\n\n\ndef small_helper(record):\n    return convert_record_value(record, 0, weight=1)\n\n\n"
BOX = """class Box:
    @property
    def size(self):
        return self._size

    @size.setter
    def size(self, value):
        self._size = value
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, tiny_modernbert: Path) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("results") / "project"
    root.mkdir()
    (root / "records.py").write_text(PREAMBLE + long_function(), encoding="utf-8")
    (root / "box.py").write_text(BOX, encoding="utf-8")
    (root / "notes.md").write_text("# Notes\n\nRecords are flattened before export.\n", encoding="utf-8")
    index_dir = root.parent / "index"
    Indexer(root, index_dir, model=str(tiny_modernbert)).run()
    return root, index_dir


def definition_lines() -> tuple[int, int]:
    """Where ``flatten_records`` lies in records.py, read from the text written."""
    lines = (PREAMBLE + long_function()).split("\n")
    start = lines.index("def flatten_records(records, options=None):") + 1
    return start, start + len(long_function().rstrip("\n").split("\n")) - 1


def test_a_long_definition_is_one_result_with_its_whole_range(index: tuple[Path, Path]) -> None:
    _, index_dir = index
    rows = [row for row in Store.open(index_dir).chunk_rows() if row[3] == "flatten_records"]
    assert len(rows) >= 5  # the function was split into pieces
    searcher = Searcher(index_dir)
    results = searcher.search("convert record value", k=10, mode="lexical")
    mine = [r for r in results if r.symbol == "flatten_records"]
    assert len(mine) == 1
    assert (mine[0].start_line, mine[0].end_line) == definition_lines()
    assert mine[0].snippet.startswith("def flatten_records(records, options=None):")
    assert [r.symbol for r in results].count("small_helper") == 1  # other definitions still answer
    assert len({(r.path, r.start_line) for r in results}) == len(results)
    pieces = searcher.search("convert record value", k=30, mode="lexical", pieces=True)
    assert sum(r.symbol == "flatten_records" for r in pieces) >= 3  # asked for: each piece on its own
    assert mine[0].score == max(r.score for r in pieces if r.symbol == "flatten_records")


def test_a_word_in_one_middle_piece_finds_the_whole_definition(index: tuple[Path, Path]) -> None:
    _, index_dir = index
    searcher = Searcher(index_dir)
    start, end = definition_lines()
    whole = searcher.search("rare checksum marker", k=1, mode="lexical")[0]
    assert (whole.symbol, whole.start_line, whole.end_line) == ("flatten_records", start, end)
    piece = searcher.search("rare checksum marker", k=1, mode="lexical", pieces=True)[0]
    assert piece.symbol == "flatten_records" and start < piece.start_line and piece.end_line < end
    assert piece.score == whole.score


def test_two_definitions_of_one_name_stay_two(index: tuple[Path, Path]) -> None:
    _, index_dir = index
    results = Searcher(index_dir).search("size", k=10, mode="lexical")
    assert sorted((r.path, r.start_line, r.end_line) for r in results if r.symbol == "Box.size") == [
        ("box.py", 2, 4),
        ("box.py", 6, 8),
    ]


def test_no_result_scores_zero(index: tuple[Path, Path]) -> None:
    """Hybrid fusion gives its worst candidate 0: such filler is not an answer."""
    _, index_dir = index
    searcher = Searcher(index_dir)
    for query in ("flatten nested records", "size of a box", "notes"):
        results = searcher.search(query, k=50, mode="hybrid")
        assert results and all(r.score >= 0.0005 for r in results), (query, [r.score for r in results])
        pieces = searcher.search(query, k=50, mode="hybrid", pieces=True)
        assert pieces and all(r.score >= 0.0005 for r in pieces), (query, [r.score for r in pieces])


@pytest.mark.e2e
def test_cli_merges_pieces_unless_asked(index: tuple[Path, Path]) -> None:
    root, index_dir = index
    exe = shutil.which("codesearch", path=str(Path(sys.executable).parent)) or "codesearch"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}

    def search(*extra: str) -> list[dict]:  # type: ignore[type-arg]
        command = [exe, "search", "convert record value", str(root), "--index-dir", str(index_dir), "--json"]
        done = subprocess.run([*command, "--mode", "lexical", *extra], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    merged, pieces = search(), search("--pieces")
    assert [r["symbol"] for r in merged].count("flatten_records") == 1
    assert [r["symbol"] for r in pieces].count("flatten_records") > 1


def test_a_long_lived_reader_merges_pieces_by_the_latest_commit(tmp_path: Path, tiny_modernbert: Path) -> None:
    """A reader keeps the layout of the files it merged; a commit that moves a definition's pieces
    (seven lines added above it) leaves no stale layout behind: it answers as a new reader does."""
    root = tmp_path / "project"
    root.mkdir()
    records = root / "records.py"
    records.write_text(PREAMBLE + long_function(), encoding="utf-8")
    index_dir = tmp_path / "index"
    Indexer(root, index_dir, model=str(tiny_modernbert)).run()
    reader = Searcher(index_dir)

    def flatten(searcher: Searcher) -> list[tuple[int, int]]:
        results = searcher.search("convert record value", k=10, mode="lexical")
        return [(r.start_line, r.end_line) for r in results if r.symbol == "flatten_records"]

    start, end = definition_lines()
    assert flatten(reader) == [(start, end)]
    records.write_text("# moved down\n" * 7 + PREAMBLE + long_function(), encoding="utf-8")
    Indexer(root, index_dir, model=str(tiny_modernbert)).run()
    assert flatten(reader) == flatten(Searcher(index_dir)) == [(start + 7, end + 7)]


def test_a_hybrid_query_fuses_what_its_two_sides_rank_alone(index: tuple[Path, Path]) -> None:
    """The lexical side runs beside the query's embedding and dense side: the answer is the
    fusion of the two rankings asked one after the other (weighed by the ranking priors)."""
    _, index_dir = index
    searcher = Searcher(index_dir)
    for query in ("flatten nested records", "size of a box", "convert record value"):
        hybrid = searcher.search(query, k=8, mode="hybrid", pieces=True)
        depth = candidate_depth(8)
        sides = [
            searcher.store.dense(searcher.embedder.embed_query(query), depth),
            searcher.store.lexical(query, depth),
        ]
        expected = [h for h in prefer_definitions(fuse(sides, 2 * depth), query)[:8] if h.score >= MIN_SCORE]
        assert [(r.path, r.start_line, r.end_line, r.score) for r in hybrid] == [
            (h.path, h.start_line, h.end_line, round(h.score, 4)) for h in expected
        ], query


def javadoc_class(rows: int = 30) -> str:
    """A Java class whose doc comment is a long table: its lines are too long to share a piece."""
    table = [
        f" * <tr><td><code>:selector{i}</code></td><td>elements matching rule number {i} of the table, "
        + "described at length " * 12
        + "</td></tr>"
        for i in range(rows)
    ]
    return (
        "package org.example;\n\n/**\n * Selector syntax.\n"
        + "\n".join(table)
        + "\n */\npublic class Selector {\n    private Selector() {}\n\n"
        + "    public static String select(String query) {\n        return query.trim();\n    }\n}\n"
    )


def test_the_pieces_of_a_long_doc_comment_are_one_result_with_their_definition(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    """jsoup's Selector: a doc comment split into one piece per line filled the first results
    with pieces of one class, each on its own."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "Selector.java").write_text(javadoc_class(), encoding="utf-8")
    Indexer(root, tmp_path / "index", model=str(tiny_modernbert)).run()
    pieces = [row for row in Store.open(tmp_path / "index").chunk_rows() if row[3] == "Selector"]
    assert len(pieces) > 10  # the doc comment was split, a line or two a piece
    searcher = Searcher(tmp_path / "index")
    results = searcher.search("elements matching rule table", k=10, mode="lexical")
    mine = [r for r in results if r.symbol == "Selector"]
    assert len(mine) == 1, [(r.symbol, r.start_line, r.end_line) for r in results]
    assert (mine[0].start_line, mine[0].end_line) == (min(p[1] for p in pieces), max(p[2] for p in pieces))
    assert mine[0].snippet.startswith("/**")
    assert len(searcher.search("elements matching rule table", k=10, mode="lexical", pieces=True)) > 1


def test_the_projects_own_definition_ranks_above_the_same_code_in_a_test_unless_tests_are_asked_for(
    tmp_path: Path, tiny_modernbert: Path
) -> None:
    code = 'def read_day(text):\n    """Parse a date string such as 2020-01-31."""\n    return text.split("-")\n'
    root = tmp_path / "project"
    for folder in ("dates", "tests", "examples"):
        (root / folder).mkdir(parents=True)
        (root / folder / "days.py").write_text(code, encoding="utf-8")
    (root / "dates" / "days_test.py").write_text(code, encoding="utf-8")
    Indexer(root, tmp_path / "index", model=str(tiny_modernbert)).run()
    searcher = Searcher(tmp_path / "index")
    for mode in ("lexical", "hybrid"):
        results = searcher.search("parse a date string", k=4, mode=mode)
        assert results[0].path == "dates/days.py", (mode, [(r.path, r.score) for r in results])
        assert all(r.score < results[0].score for r in results[1:])
    asked = "tests that parse a date string"  # asks for tests: ranked by the scores alone
    raw = [(h.path, round(h.score, 4)) for h in searcher.store.lexical(asked, 4)]
    assert [(r.path, r.score) for r in searcher.search(asked, k=4, mode="lexical")] == raw
    assert raw[0][0] != "dates/days.py"  # its words are in the tests' paths
    # the stages a front end over several folders runs give the same answer
    fused = fuse(searcher.candidates("parse a date string", k=4) or [], 100)
    assert searcher.best_definitions(fused, 4, "parse a date string") == searcher.search("parse a date string", k=4)
    # code like a snippet is ranked by its scores alone, as the stages without a query rank it
    unweighed = searcher.best_similar(fuse(searcher.candidates(code, 7, code=True) or [], 100), 4)
    assert searcher.similar(code, k=4) == unweighed
    assert any(is_auxiliary(r.path) for r in unweighed[:2])  # identical code: no prior puts the definition first
