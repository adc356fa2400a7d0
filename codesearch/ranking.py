"""Ranking priors: what a result's place in the tree says about it, beside its scores.

Owns which paths hold code that is not the project's own definitions (tests, examples,
benchmarks, vendored copies, fixtures), which chunks are prose (docs, change logs), the query
words that ask for them, and how much such a result's score weighs when a query does not
(``AUXILIARY_WEIGHT``, ``PROSE_WEIGHT``). A search for behaviour wants the definition that does
it, not the test that calls it nor the release note that mentions it. Chosen on the dev half of
the hand-written set (``benchmarks/handwritten.py``), where a test or a doc page above the
answer was the most common miss: hybrid MRR@10 0.510 unweighed, 0.546 with these weights (0.75
and 0.85 for auxiliary code: 0.543 and 0.542; 0.7 for prose: within 0.003). A query that names
tests (``test for the date parser``), examples, benchmarks or docs gets them unweighed. Pure
functions of paths, kinds and query words: no index is read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from codesearch.store import Hit

AUXILIARY_WEIGHT = 0.6  # a test's, example's, benchmark's or vendored file's score is worth this share
PROSE_WEIGHT = 0.85  # a prose chunk's (docs, change log) share, when the query does not ask for docs
PROSE_KINDS = frozenset({"text"})

# folders whose files are not the project's own definitions
_AUX_DIRS = frozenset(
    {
        "test", "tests", "testing", "testdata", "test_data", "__tests__", "spec", "specs", "fixtures",
        "example", "examples", "sample", "samples", "demo", "demos",
        "bench", "benches", "benchmark", "benchmarks",
        "vendor", "vendored", "third_party", "thirdparty", "external", "node_modules",
    }
)  # fmt: skip
# file names of tests and benchmarks in the common conventions (Go, Python, JS/TS, Java, C#, Ruby, Rust)
_AUX_FILE = re.compile(
    r"(^test_.*|.*_test\.\w+|.*_tests\.\w+|.*\.(test|spec|bench)\.\w+|.*_spec\.rb|conftest\.py"
    r"|.*Tests?\.(java|kt|cs|scala|groovy)|.*_bench\.\w+|.*Benchmark\.java)$"
)
# a query that says it wants them
_ASKS_AUX = re.compile(
    r"\b(tests?|testing|tested|unittests?|specs?|fixtures?|mocks?|examples?|samples?|demos?|benchmarks?|bench"
    r"|vendored|vendor|third[- ]party)\b",
    re.IGNORECASE,
)
_ASKS_PROSE = re.compile(
    r"\b(docs?|documentation|readme|changelog|change log|release notes?|guide|tutorial|manual)\b", re.IGNORECASE
)


def is_auxiliary(path: str) -> bool:
    """Whether ``path`` (posix, relative) is a test, example, benchmark, fixture or vendored file."""
    parts = path.split("/")
    return any(part.lower() in _AUX_DIRS for part in parts[:-1]) or bool(_AUX_FILE.match(parts[-1]))


def weight(hit: Hit, query: str) -> float:
    """The share of ``hit``'s score it keeps for ``query`` (1.0: a definition of the project's own)."""
    share = 1.0
    if is_auxiliary(hit.path) and not _ASKS_AUX.search(query):
        share *= AUXILIARY_WEIGHT
    if hit.kind in PROSE_KINDS and not _ASKS_PROSE.search(query):
        share *= PROSE_WEIGHT
    return share


def prefer_definitions(hits: Sequence[Hit], query: str) -> list[Hit]:
    """``hits`` with their scores weighed by :func:`weight`, best first (ties keep their order)."""
    weighed = [(hit, weight(hit, query)) for hit in hits]
    out = [hit if share == 1.0 else replace(hit, score=hit.score * share) for hit, share in weighed]
    return sorted(out, key=lambda hit: -hit.score)
