"""The chunk vocabulary and the cheap token estimate used for sizing.

A **chunk** is a contiguous range of whole lines of one file (1-based, inclusive) with the
symbol it belongs to (``Class.method``), its kind, its language, its text, the enclosing
context (``class Foo``, ``namespace bar``) and the definition's signature. The **embedding
text** is the chunk text behind a short header (context, signature); it is what the embedder
sees and what the vector key hashes. It holds no file path, so a renamed or copied file reuses
its vectors (the path is matched by the lexical index instead).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# One match per likely WordPiece/BPE token: words split at camelCase, short digit runs, and
# each punctuation character. Calibrated on real code against the MiniLM tokenizer
# (see tests/test_chunking_sizing.py): it over-estimates slightly, which is the safe side.
_TOKEN_RE = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d{1,3}|[^\sA-Za-z\d]")


# joins an enclosing type's symbol and a member's name (``Class.method``, ``Box.size`` for C++
# ``Box::size``): only definitions' symbols are qualified; file-level chunks are named after the file
QUALIFIER = "."

# the signature repeated in a continuation piece's header is cut here (~30 tokens)
HEADER_SIGNATURE_CHARS = 100


def header_reserve(max_tokens: int) -> int:
    """Tokens kept free for the header (path, context, signature) and special tokens."""
    return min(96, max(16, max_tokens // 4))


def estimate_tokens(text: str) -> int:
    """A fast, pessimistic estimate of a subword tokenizer's token count (used when no
    tokenizer is given): regex pieces x 1.25, since real/estimate is ~1.13 median, ~1.27 p90."""
    pieces = sum(1 for _ in _TOKEN_RE.finditer(text))
    return (pieces * 5 + 3) // 4


def estimate_lines(lines: list[str]) -> list[int]:
    return [estimate_tokens(line) for line in lines]


# counts the tokens of each line (a tokenizer's batch call, or the estimate)
LineCounter = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class Chunk:
    start_line: int
    end_line: int
    symbol: str
    kind: str
    language: str
    text: str
    context: tuple[str, ...] = ()
    # set only on the continuation pieces of a definition split for size: its head
    signature: str = ""

    def embedding_text(self) -> str:
        """The text the embedder sees: a header saying where in its file the code lives (the
        enclosing definitions and, for a piece of a split definition, its signature), then the code."""
        header: list[str] = []
        if self.context:
            header.append(" > ".join(self.context))
        if self.signature:
            header.append(self.signature[:HEADER_SIGNATURE_CHARS])  # a continuation piece of a long definition
        elif self.kind not in ("module", "text") and self.symbol:
            header.append(f"{self.kind} {self.symbol}")
        return "\n".join([*header, self.text])
