"""Line-window chunking for text files without a grammar (Markdown, YAML, shell, SQL...).

Owns: windows of whole lines under the token budget, overlapping by a few lines so a passage cut
at a window edge is still whole in one of them; a Markdown or reStructuredText window is named
after the heading it falls under. Blank-only windows are dropped; every non-blank line lies in some window.
"""

from __future__ import annotations

import re

from codesearch.chunking.model import Chunk, LineCounter, estimate_lines

OVERLAP_LINES = 3
_RST_UNDERLINES = frozenset("=-~^\"'`#*+:._")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")


def window_chunks(
    text: str, language: str, max_tokens: int, name: str, count_lines: LineCounter = estimate_lines
) -> list[Chunk]:
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    budget = max(16, max_tokens)
    costs = count_lines(lines)
    headings = (
        _markdown_headings(lines) if language == "markdown" else _rst_headings(lines) if language == "rst" else {}
    )
    chunks: list[Chunk] = []
    row = 0
    char_budget = budget * 3
    while row < len(lines):
        while row < len(lines) and not lines[row].strip():
            row += 1
        if row >= len(lines):
            break
        last, total = row, costs[row]
        while last + 1 < len(lines) and total + costs[last + 1] <= budget:
            last += 1
            total += costs[last]
        end = last
        while end > row and not lines[end].strip():
            end -= 1
        symbol = _heading_for(headings, row) or name
        if row == end and costs[row] > budget:  # one enormous line: bounded character windows
            line = lines[row]
            for offset in range(0, len(line), char_budget):
                chunks.append(Chunk(row + 1, row + 1, symbol, "text", language, line[offset : offset + char_budget]))
        else:
            chunks.append(Chunk(row + 1, end + 1, symbol, "text", language, "\n".join(lines[row : end + 1])))
        if last + 1 >= len(lines):
            break
        row = max(last + 1 - OVERLAP_LINES, row + 1)
    return chunks


def _rst_headings(lines: list[str]) -> dict[int, str]:
    """reStructuredText titles: a text line underlined by one repeated punctuation character."""
    found: dict[int, str] = {}
    for i in range(len(lines) - 1):
        title, under = lines[i].strip(), lines[i + 1].strip()
        if (
            title
            and under
            and len(under) >= len(title)
            and len(set(under)) == 1
            and under[0] in _RST_UNDERLINES
            and any(ch.isalnum() for ch in title)
        ):
            found[i] = title
    return found


def _markdown_headings(lines: list[str]) -> dict[int, str]:
    found: dict[int, str] = {}
    fenced = False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = None if fenced else _HEADING.match(line)
        if match and match.group(1):
            found[i] = match.group(1)
    return found


def _heading_for(headings: dict[int, str], row: int) -> str | None:
    best = None
    for i in headings:
        if i <= row and (best is None or i > best):
            best = i
    return headings[best] if best is not None else None
