"""The tree-sitter chunker on every supported language: symbols, kinds, line ranges, coverage,
sizing under a token budget, and bad input (syntax errors, invalid UTF-8, huge lines)."""

from __future__ import annotations

import glob
import itertools
import sysconfig
import time
import tracemalloc

import pytest
from samples import SAMPLES

from codesearch.chunking import SUPPORTED_LANGUAGES, Chunk, chunk_file, estimate_tokens
from codesearch.chunking.model import header_reserve

EXPECTED: dict[str, list[tuple[str, str, int, int]]] = {
    "python": [
        ("links.py", "module", 1, 4),
        ("parse_header_links", "function", 7, 12),
        ("Session", "class", 15, 18),
        ("Session.cookies", "method", 20, 22),
        ("Session.request", "method", 24, 25),
    ],
    "javascript": [
        ("util.js", "module", 1, 1),
        ("readConfig", "function", 3, 5),
        ("debounce", "function", 7, 10),
        ("EventBus", "class", 12, 12),
        ("EventBus.constructor", "method", 13, 15),
        ("EventBus.emit", "method", 17, 20),
        ("util.js", "module", 22, 22),
    ],
    "typescript": [
        ("User", "interface", 1, 4),
        ("UserId", "type", 6, 6),
        ("fetchUser", "function", 8, 11),
        ("UserCache", "class", 13, 14),
        ("UserCache.get", "method", 16, 19),
    ],
    "tsx": [
        ("Button.tsx", "module", 1, 1),
        ("Button", "function", 3, 5),
        ("Icon", "function", 7, 7),
    ],
    "go": [
        ("handler.go", "module", 1, 3),
        ("Server", "struct", 5, 8),
        ("Server.ServeHTTP", "method", 10, 13),
        ("NewServer", "function", 15, 17),
    ],
    "java": [
        ("Cache.java", "module", 1, 3),
        ("Cache", "class", 5, 6),
        ("Cache.Cache", "method", 8, 9),
        ("Cache.get", "method", 11, 14),
        ("Cache.Loader", "interface", 16, 16),
        ("Cache.Loader.load", "method", 17, 19),
    ],
    "rust": [
        ("lib.rs", "module", 1, 1),
        ("Store", "struct", 3, 7),
        ("Store", "impl", 9, 9),
        ("Store.get", "method", 10, 13),
        ("tokenize", "function", 15, 17),
    ],
    "c": [
        ("buf.c", "module", 1, 1),
        ("buffer", "struct", 3, 6),
        ("buffer_new", "function", 8, 12),
        ("buffer_len", "function", 14, 14),
    ],
    "cpp": [
        ("matrix.cpp", "module", 1, 1),
        ("linalg", "namespace", 3, 3),
        ("Matrix", "class", 5, 6),
        ("Matrix.Matrix", "method", 7, 7),
        ("Matrix.rows", "method", 8, 8),
        ("Matrix", "class", 10, 12),
        ("linalg", "namespace", 14, 16),
        ("linalg.dot", "function", 18, 20),  # ``int linalg::dot(...)``: a namespace's function, defined outside it
    ],
    "csharp": [
        ("Parser.cs", "module", 1, 1),
        ("Acme.Text", "namespace", 3, 4),
        ("Parser", "class", 5, 7),
        ("Parser.Parse", "method", 9, 14),
    ],
    "ruby": [
        ("greeter.rb", "module", 1, 1),
        ("Greeting", "module", 3, 3),
        ("Greeting.Greeter", "class", 4, 4),
        ("Greeting.Greeter.initialize", "method", 5, 7),
        ("Greeting.Greeter.default", "method", 9, 11),
        ("Greeting.Greeter", "class", 12, 12),
        ("Greeting", "module", 13, 13),
    ],
    "php": [
        ("User.php", "module", 1, 4),
        ("User", "class", 6, 7),
        ("User.fullName", "method", 8, 12),
        ("helper", "function", 14, 14),
    ],
}


def assert_covers(text: str, chunks: list[Chunk]) -> None:
    """Every non-blank line lies in some chunk, ranges are valid, chunk text is the lines."""
    lines = text.split("\n")
    covered: set[int] = set()
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= len(lines), (c.start_line, c.end_line, len(lines))
        covered.update(range(c.start_line, c.end_line + 1))
        if c.start_line != c.end_line or len(c.text) == len(lines[c.start_line - 1]):
            assert c.text == "\n".join(lines[c.start_line - 1 : c.end_line])
    missing = [i + 1 for i, line in enumerate(lines) if line.strip() and i + 1 not in covered]
    assert not missing, f"non-blank lines in no chunk: {missing[:20]}"


def test_every_language_has_a_sample() -> None:
    assert set(SAMPLES) == set(SUPPORTED_LANGUAGES) == set(EXPECTED)


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_symbols_kinds_and_ranges(language: str) -> None:
    path, source = SAMPLES[language]
    chunks = chunk_file(path, source, language, max_tokens=256)
    assert [(c.symbol, c.kind, c.start_line, c.end_line) for c in chunks] == EXPECTED[language]
    assert {c.language for c in chunks} == {language}
    assert_covers(source, chunks)


CPP_KINDS = """#include <cstddef>

namespace geo { namespace detail { int clamp(int v); } }

int free_function(int a) { return a; }

namespace geo {
int area(int w, int h) { return w * h; }
struct Point {
  int x() const { return x_; }
  int x_;
};
}  // namespace geo

int geo::detail::clamp(int v) { return v < 0 ? 0 : v; }
int ::global_helper() { return 1; }
int geo::Point::norm() const { return x_ * x_; }
std::size_t Box::size() const { return n_; }
Box::Box() : n_(0) {}
"""


def test_cpp_free_functions_are_functions_and_members_are_methods() -> None:
    chunks = chunk_file("kinds.cpp", CPP_KINDS, "cpp")
    kinds = {c.symbol: c.kind for c in chunks if c.kind in ("function", "method")}
    assert kinds == {
        "free_function": "function",  # top level
        "area": "function",  # inside a namespace
        "Point.x": "method",  # inside a struct (namespaces are context, not part of the symbol)
        "geo.detail.clamp": "function",  # out-of-line, qualified by this file's namespaces
        "global_helper": "function",  # ``::global_helper``: the global namespace
        "geo.Point.norm": "method",  # out-of-line member of a struct in a namespace
        "Box.size": "method",  # out-of-line member of a class declared elsewhere
        "Box.Box": "method",
    }
    assert_covers(CPP_KINDS, chunks)


def test_chunk_text_and_embedding_header() -> None:
    path, source = SAMPLES["csharp"]
    method = next(c for c in chunk_file(path, source, "csharp") if c.symbol == "Parser.Parse")
    assert method.text.lstrip().startswith("public int Parse(string input)")
    assert method.context == ("namespace Acme.Text", "class Parser")
    header = method.embedding_text().split("\n")[:3]
    assert header == ["namespace Acme.Text > class Parser", "method Parser.Parse", method.text.split("\n")[0]]
    assert path not in method.embedding_text()  # a renamed file keeps its vectors


def _long_function(language: str, statements: int) -> str:
    if language == "python":
        body = "\n".join(f"    value_{i} = compute_something(value_{i - 1}, factor={i})" for i in range(1, statements))
        return f"def long_function(value_0):\n{body}\n    return value_{statements - 1}\n"
    body = "\n".join(f"  int value_{i} = compute_something(value_{i - 1}, {i});" for i in range(1, statements))
    return f"int long_function(int value_0) {{\n{body}\n  return value_{statements - 1};\n}}\n"


@pytest.mark.parametrize("language", ["python", "c"])
def test_oversized_definition_is_split_at_statements_under_budget(language: str) -> None:
    source = _long_function(language, 200)
    max_tokens = 128
    chunks = chunk_file("f", source, language, max_tokens=max_tokens)
    assert len(chunks) > 5
    assert {c.symbol for c in chunks} == {"long_function"}
    budget = max_tokens - header_reserve(max_tokens)
    for c in chunks:
        assert estimate_tokens(c.text) <= budget + max(estimate_tokens(line) for line in c.text.split("\n"))
        assert sum(estimate_tokens(line) for line in c.text.split("\n")) <= budget
    # pieces after the first carry the signature for their embedding header
    assert chunks[0].signature == ""
    assert all(c.signature.startswith(("def long_function", "int long_function")) for c in chunks[1:])
    assert_covers(source, chunks)
    # pieces are contiguous and ordered
    for a, b in itertools.pairwise(chunks):
        assert b.start_line == a.end_line + 1


def test_small_module_pieces_are_merged() -> None:
    source = "import os\nimport sys\n\nA = 1\nB = 2\n\n\nC = [\n    1,\n]\n"
    chunks = chunk_file("m.py", source, "python")
    assert [(c.kind, c.start_line, c.end_line) for c in chunks] == [("module", 1, 10)]


@pytest.mark.parametrize("language", sorted(SAMPLES))
def test_syntax_errors_still_yield_covering_chunks(language: str) -> None:
    path, source = SAMPLES[language]
    lines = source.split("\n")
    broken = "\n".join([*lines[: len(lines) // 2], "}}} ((( @@@ def class {{", *lines[len(lines) // 2 :]])
    chunks = chunk_file(path, broken, language)
    assert chunks
    assert_covers(broken, chunks)


def test_invalid_utf8_decoded_with_replacement_chunks() -> None:
    raw = b"def f():\n    return '\xff\xfe caf\xc3'\n\ndef g():\n    pass\n"
    text = raw.decode("utf-8", errors="replace")
    chunks = chunk_file("bad.py", text, "python")
    assert [c.symbol for c in chunks] == ["f", "g"]
    assert "\ufffd" in chunks[0].text


def test_crlf_line_endings() -> None:
    source = "def a():\r\n    return 1\r\n\r\ndef b():\r\n    return 2\r\n"
    chunks = chunk_file("crlf.py", source, "python")
    assert [(c.symbol, c.start_line, c.end_line) for c in chunks] == [("a", 1, 2), ("b", 4, 5)]


@pytest.mark.timeout(60)
def test_five_megabyte_single_line_is_bounded() -> None:
    line = "var a=function(b){return b+1};" * (5 * 1024 * 1024 // 30)
    tracemalloc.start()
    started = time.perf_counter()
    chunks = chunk_file("bundle.js", line, "javascript", max_tokens=256)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert chunks and all(c.start_line == c.end_line == 1 for c in chunks)
    assert sum(len(c.text) for c in chunks) == len(line)
    assert max(len(c.text) for c in chunks) <= 256 * 3
    assert peak < 40 * len(line), f"peak {peak} bytes for a {len(line)}-byte line"
    assert elapsed < 45


def test_empty_and_blank_files() -> None:
    assert chunk_file("e.py", "", "python") == []
    assert chunk_file("b.py", "\n\n   \n", "python") == []


def test_deep_nesting_does_not_recurse_forever() -> None:
    source = "x = " + "[" * 3000 + "]" * 3000 + "\n"
    chunks = chunk_file("deep.py", source, "python", max_tokens=64)
    assert_covers(source, chunks)


def test_real_python_files_are_fully_covered() -> None:
    stdlib = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(f"{stdlib}/json/*.py") + glob.glob(f"{stdlib}/email/*.py"))[:40]
    assert len(files) >= 10
    for name in files:
        with open(name, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        assert_covers(text, chunk_file(name, text, "python", max_tokens=256))


def test_markdown_windows_overlap_and_take_headings() -> None:
    lines = ["# Guide", ""] + [f"Paragraph line {i} about installing the tool." for i in range(60)]
    lines += ["", "## Usage", ""] + [f"Usage line {i} with options." for i in range(60)]
    text = "\n".join(lines) + "\n"
    chunks = chunk_file("docs/guide.md", text, "markdown", max_tokens=128)
    assert len(chunks) > 3
    assert_covers(text, chunks)
    assert chunks[0].symbol == "Guide" and chunks[-1].symbol == "Usage"
    assert all(c.kind == "text" for c in chunks)
    for a, b in itertools.pairwise(chunks):
        assert b.start_line <= a.end_line + 1  # windows overlap or touch: nothing falls between


def test_other_text_formats_use_windows() -> None:
    text = "\n".join(f"key_{i}: value {i}" for i in range(300)) + "\n"
    chunks = chunk_file("config.yaml", text, "yaml", max_tokens=128)
    assert len(chunks) > 1 and {c.language for c in chunks} == {"yaml"}
    assert_covers(text, chunks)


def test_rst_windows_take_section_titles() -> None:
    text = "Blueprints\n==========\n\n" + "\n".join(f"Blueprint text line {i}." for i in range(80))
    text += "\n\nRegistering\n-----------\n\n" + "\n".join(f"Register line {i}." for i in range(80)) + "\n"
    chunks = chunk_file("docs/blueprints.rst", text, "rst", max_tokens=96)
    assert chunks[0].symbol == "Blueprints" and chunks[-1].symbol == "Registering"
    assert_covers(text, chunks)


def test_long_signature_is_not_a_chunk_of_its_own() -> None:
    params = "\n".join(f"    parameter_number_{i}: dict[str, int] | None = None," for i in range(4))
    doc = "\n".join(f"    Explains parameter number {i} and what the function does with it." for i in range(8))
    body = "\n".join(f"    total += helper_function(parameter_number_{i})" for i in range(8))
    source = f'def configure(\n{params}\n) -> int:\n    """\n{doc}\n    """\n    total = 0\n{body}\n    return total\n'
    chunks = chunk_file("sig.py", source, "python", max_tokens=160)
    assert len(chunks) >= 2 and chunks[0].start_line == 1
    body_line = source.split("\n").index('    """') + 1  # the docstring opens the body
    signature_tokens = sum(estimate_tokens(line) for line in source.split("\n")[: body_line - 1])
    assert signature_tokens < 160 - header_reserve(160)  # the head fits the budget alone...
    assert chunks[0].end_line > body_line  # ...so the first piece also takes lines of the body
    assert_covers(source, chunks)


def _lone_pieces(chunks: list[Chunk], budget: int) -> list[tuple[int, str]]:
    """One-line pieces of split definitions that could have shared a piece with a neighbour
    (a line too long to pair with its neighbour's adjacent line within ``budget`` may stay alone)."""
    lone = []
    for i, c in enumerate(chunks):
        lines = [line for line in c.text.split("\n") if line.strip()]
        if len(lines) != 1 or c.kind in ("module", "text"):
            continue
        before = chunks[i - 1] if i > 0 and c.signature else None  # a continuation piece follows its head
        after = chunks[i + 1] if i + 1 < len(chunks) and chunks[i + 1].signature else None
        neighbours = [(n, -1) for n in [before] if n and n.symbol == c.symbol]
        neighbours += [(n, 0) for n in [after] if n and n.symbol == c.symbol]
        if any(
            estimate_tokens(lines[0]) + estimate_tokens([x for x in n.text.split("\n") if x.strip()][edge]) <= budget
            for n, edge in neighbours
        ):
            lone.append((c.start_line, lines[0].strip()))
    return lone


def _branches(count: int, kind: str) -> str:
    return "\n".join(
        f"            out.append(convert_{kind}_value(key, item_{i}, depth + {i}, options))" for i in range(count)
    )


FLATTEN = f'''def flatten(value, depth=0, options=None):
    """Flatten nested lists and dicts into rows."""
    out = []
    for key, v in value.items():
        if isinstance(v, list):
{_branches(4, "list")}
        elif isinstance(v, dict):
{_branches(3, "dict")}
        else:
            out.append((key, v))
    return out
'''


def test_no_piece_of_a_split_definition_is_one_line() -> None:
    chunks = chunk_file("flatten.py", FLATTEN, "python", max_tokens=128)
    assert len(chunks) > 1 and {c.symbol for c in chunks} == {"flatten"}
    assert not [c for c in chunks if c.text.strip() == "elif isinstance(v, dict):"]
    assert _lone_pieces(chunks, 128 - header_reserve(128)) == []
    assert_covers(FLATTEN, chunks)


@pytest.mark.parametrize("max_tokens", [128, 192])
def test_real_files_have_no_one_line_pieces_and_keep_the_budget(max_tokens: int) -> None:
    stdlib = sysconfig.get_paths()["stdlib"]
    names = ["argparse.py", "_pydecimal.py", "difflib.py", "json/decoder.py", "email/_header_value_parser.py"]
    budget = max_tokens - header_reserve(max_tokens)
    pieces = 0
    for name in names:
        with open(f"{stdlib}/{name}", encoding="utf-8") as fh:
            text = fh.read()
        chunks = chunk_file(name, text, "python", max_tokens=max_tokens)
        assert _lone_pieces(chunks, budget) == [], name
        assert_covers(text, chunks)
        for c in chunks:
            lines = c.text.split("\n")
            assert len(lines) == 1 or sum(estimate_tokens(line) for line in lines) <= budget, (name, c.start_line)
        pieces += sum(1 for c in chunks if c.signature)
    assert pieces > 100  # the files hold many split definitions
