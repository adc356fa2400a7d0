"""The ranking priors on their own (``codesearch.ranking``): which paths are tests, examples,
benchmarks or vendored code in each language's conventions, which queries ask for them, and
how the weights reorder hits."""

from __future__ import annotations

import pytest

from codesearch.ranking import AUXILIARY_WEIGHT, PROSE_WEIGHT, is_auxiliary, prefer_definitions, weight
from codesearch.store import Hit


@pytest.mark.parametrize(
    "path",
    [
        "tests/test_plural.py", "babel/tests/conftest.py", "pkg/route_test.go", "src/__tests__/cache.ts",
        "src/cache.test.ts", "lib/cache.spec.js", "spec/rack/utils_spec.rb", "src/test/java/org/a/CSVParserTest.java",
        "src/Foo.Tests/FooTests.cs", "benches/matching.rs", "examples/dot.rs", "vendor/github.com/x/y.go",
        "third_party/zlib/inflate.c", "node_modules/ajv/lib/core.ts", "testdata/input.go", "bench_test.go",
        "parser/lexer/lexer_bench.go",
    ],
)  # fmt: skip
def test_tests_examples_benchmarks_and_vendored_code_are_auxiliary(path: str) -> None:
    assert is_auxiliary(path)


@pytest.mark.parametrize(
    "path",
    [
        "src/main/java/org/jsoup/parser/TokenQueue.java", "babel/plural.py", "lib/thor/parser/options.rb",
        "src/algo/dominators.rs", "optimizer/const_expr.go", "hydration.ts", "src/contest.py", "latest/attest.go",
        "src/testing_utils_are_code_too.py", "lib/specification.rb",
    ],
)  # fmt: skip
def test_the_projects_own_code_is_not(path: str) -> None:
    assert not is_auxiliary(path)


def hit(path: str, score: float, kind: str = "function") -> Hit:
    return Hit(path=path, start_line=1, end_line=2, symbol="f", kind=kind, language="python", text="", score=score)


def test_a_query_that_asks_for_tests_or_docs_gets_them_unweighed() -> None:
    test, doc = hit("tests/test_a.py", 1.0), hit("docs/guide.md", 1.0, kind="text")
    assert weight(test, "parse a date") == AUXILIARY_WEIGHT
    assert weight(doc, "parse a date") == PROSE_WEIGHT
    assert weight(test, "unit tests for the date parser") == 1.0
    assert weight(test, "an example of parsing a date") == 1.0
    assert weight(doc, "docs on date parsing") == 1.0
    assert weight(hit("tests/README.md", 1.0, kind="text"), "x") == AUXILIARY_WEIGHT * PROSE_WEIGHT


def test_prefer_definitions_reorders_by_the_weighed_scores_and_keeps_ties_in_order() -> None:
    hits = [hit("tests/test_a.py", 1.0), hit("a.py", 0.9), hit("b.py", 0.5), hit("c.py", 0.5)]
    out = prefer_definitions(hits, "parse a date")
    assert [h.path for h in out] == ["a.py", "tests/test_a.py", "b.py", "c.py"]
    assert out[1].score == pytest.approx(AUXILIARY_WEIGHT)
    assert prefer_definitions(hits, "tests of parse a date") == hits
