"""AST-aware chunking of source code with tree-sitter (in the spirit of cAST).

Owns the algorithm: definitions (functions, methods, classes...) become chunks with qualified
symbols; containers (classes, impls, namespaces) are entered so each member is its own chunk and
the container keeps its header and fields; a definition over the token budget is split at the
boundaries of its children (statements), recursively, and no piece of it is a single line
(``elif x:`` joins what follows it, ``return y`` what precedes it); lines that belong to no definition
(imports, constants, module code) are packed into module chunks of adjacent pieces. Coverage is
by construction: every non-blank line of the file lies in some chunk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tree_sitter import Node

from codesearch.chunking.languages import NAMESPACE_KIND, SPECS, TYPE_KINDS, LanguageSpec, new_parser
from codesearch.chunking.model import QUALIFIER, Chunk, LineCounter, estimate_lines

log = logging.getLogger(__name__)

_ATTACHED_PREFIX_TYPES = (
    "comment",
    "line_comment",
    "block_comment",
    "attribute_item",
    "decorator",
    "inner_attribute_item",
    "attribute_list",
)
_NAME_REQUIRED = frozenset({"lexical_declaration", "variable_declaration"})
_BODY_REQUIRED = frozenset({"struct_specifier", "union_specifier", "enum_specifier", "class_specifier"})
_MAX_DEPTH = 64
_SIGNATURE_CHARS = 200


@dataclass(frozen=True)
class _Scope:
    symbol: str  # qualified symbol of the enclosing type ("" outside types): members' prefix
    kind: str  # kind given to gap chunks of this scope
    context: tuple[str, ...]
    gap_symbol: str  # symbol given to gap chunks (the type, the namespace or the file name)
    in_type: bool = False


def row_start(node: Node) -> int:
    return node.start_point[0]


def row_end(node: Node) -> int:
    """Last row that holds a character of the node (a node ending at column 0 ends before)."""
    end_row, end_col = node.end_point
    if end_col == 0 and end_row > node.start_point[0]:
        return end_row - 1
    return end_row


def _indent(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


class TreeSitterChunker:
    """Chunks one file; create one per file (it holds per-file state)."""

    def __init__(
        self, language: str, text: str, max_tokens: int, name: str = "", count_lines: LineCounter = estimate_lines
    ) -> None:
        self.name = name
        self.spec: LanguageSpec = SPECS[language]
        self.language = language
        self.src = text.encode("utf-8", errors="replace")
        self.lines = text.split("\n")
        if self.lines and self.lines[-1] == "":
            self.lines.pop()
        self.budget = max(16, max_tokens)
        self.prefix = [0]
        for cost in count_lines(self.lines):
            self.prefix.append(self.prefix[-1] + cost)
        self.covered = bytearray(len(self.lines))
        self.ranges: list[tuple[int, int, str, str, tuple[str, ...], str]] = []
        self.root: Node | None = None
        self._namespaces: set[str] | None = None  # the file's namespace names, read when first needed

    # -- sizing helpers ---------------------------------------------------------------------
    def tokens(self, start: int, end: int) -> int:
        return self.prefix[end + 1] - self.prefix[start]

    def blank(self, row: int) -> bool:
        return not self.lines[row].strip()

    # -- driver -------------------------------------------------------------------------------
    def chunks(self) -> list[Chunk]:
        if not self.lines:
            return []
        tree = new_parser(self.language).parse(self.src)
        root = self.root = tree.root_node
        self._scope(root.named_children, 0, len(self.lines) - 1, _Scope("", "module", (), self.name), depth=0)
        return self._materialise()

    def _scope(self, children: list[Node], start: int, end: int, scope: _Scope, depth: int) -> None:
        context = scope.context
        for child in children:
            if child.type in self.spec.scope_setters and child.child_by_field_name("body") is None:
                name = self.spec.name_of(child) or ""
                context = (*scope.context, f"namespace {name}")
                continue
            for node, outer in self._find_definitions(child, child, depth):
                self._definition(
                    node, outer, _Scope(scope.symbol, scope.kind, context, scope.gap_symbol, scope.in_type), depth
                )
        self._fill_gaps(children, start, end, scope, depth)

    def _find_definitions(self, node: Node, outer: Node, depth: int) -> list[tuple[Node, Node]]:
        if depth > _MAX_DEPTH:
            return []
        if self._is_definition(node):
            return [(node, outer)]
        if node.type in self.spec.wrappers or node.type == "ERROR":
            found: list[tuple[Node, Node]] = []
            for child in node.named_children:
                found.extend(self._find_definitions(child, child, depth + 1))
            if len(found) == 1 and node.type != "ERROR":
                # a lone definition inherits its wrapper's lines (decorators, export, template)
                return [(found[0][0], outer)]
            return found
        return []

    def _is_definition(self, node: Node) -> bool:
        if self.spec.kind_of(node) is None:
            return False
        if node.type in _NAME_REQUIRED and self.spec.name_of(node) is None:
            return False
        return not (node.type in _BODY_REQUIRED and node.child_by_field_name("body") is None)

    def _definition(self, node: Node, outer: Node, scope: _Scope, depth: int) -> None:
        start, end = self._attached_start(outer), row_end(outer)
        if any(self.covered[start : end + 1]):
            return  # already part of another chunk (defensive: overlapping wrappers)
        kind = self.spec.kind_of(node) or "function"
        name = self.spec.name_of(node) or "<anonymous>"
        name = name.replace("::", QUALIFIER).replace("\\", QUALIFIER).lstrip(QUALIFIER) or name  # ``::f``: f
        body = node.child_by_field_name("body")
        if node.type in self.spec.containers and body is not None and depth < _MAX_DEPTH:
            if node.type in self.spec.namespaces or kind == NAMESPACE_KIND:
                inner = _Scope(scope.symbol, NAMESPACE_KIND, (*scope.context, f"namespace {name}"), name)
            else:
                symbol = f"{scope.symbol}{QUALIFIER}{name}" if scope.symbol else name
                inner = _Scope(symbol, kind, (*scope.context, f"{kind} {name}"), symbol, kind in TYPE_KINDS)
            self._scope(body.named_children, start, end, inner, depth + 1)
            return
        if kind == "function" and scope.in_type:
            kind = "method"
        elif kind == "function" and QUALIFIER in name and not self._in_namespace(name):
            kind = "method"  # out-of-line C++ ``Box::size`` (but ``linalg::dot`` is a function)
        symbol = f"{scope.symbol}{QUALIFIER}{name}" if scope.symbol else name
        signature = self._signature(node, body)
        pieces = self._split(node.named_children, start, end, depth)
        if body is not None:
            pieces = self._head_not_alone(pieces, row_start(body))
        pieces = self._no_lone_lines(pieces)
        for part, (a, b) in enumerate(pieces):
            self._emit(a, b, symbol, kind, scope.context, signature if part else "")

    def _in_namespace(self, name: str) -> bool:
        """Whether every qualifier of ``name`` (``a.b`` of ``a.b.f``) is a namespace of this file:
        then ``name`` is a namespace's function, not a method."""
        if self._namespaces is None:
            self._namespaces = set()
            stack = list(self.root.named_children) if self.root is not None else []
            while stack:
                node = stack.pop()
                if node.type in self.spec.namespaces:
                    named = self.spec.name_of(node)
                    if named:
                        self._namespaces.update(named.replace("::", QUALIFIER).split(QUALIFIER))
                    body = node.child_by_field_name("body")
                    stack.extend(body.named_children if body is not None else [])
                elif node.type in self.spec.wrappers or node.type.startswith("preproc_") or node.type == "ERROR":
                    stack.extend(node.named_children)
        return all(part in self._namespaces for part in name.split(QUALIFIER)[:-1])

    def _head_not_alone(self, pieces: list[tuple[int, int]], body_row: int) -> list[tuple[int, int]]:
        """A long signature must not become a chunk of its own: the first piece takes as many
        following lines as the budget allows (line-granular, inside the next piece)."""
        if len(pieces) < 2 or pieces[0][1] >= body_row:
            return pieces
        (a, _), (b0, b1) = pieces[0], pieces[1]
        last = b0 - 1
        while last + 1 <= b1 and self.tokens(a, last + 1) <= self.budget:
            last += 1
        if last < b0:
            return pieces
        rest = [(last + 1, b1)] if last < b1 else []
        return [(a, last), *rest, *pieces[2:]]

    def _no_lone_lines(self, pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """No piece of a split range holds a single line (``elif x:``, ``return y``): it joins a
        neighbour (the next one if it heads it, else the previous), or takes a line from one,
        within the budget. A line left alone is one too long to pair with any neighbour's."""
        out = list(pieces)
        i = 0
        while len(out) > 1 and i < len(out):
            a, b = out[i]
            rows = self._nonblank(a, b)
            if len(rows) > 1:
                i += 1
                continue
            before = out[i - 1] if i > 0 else None
            after = out[i + 1] if i + 1 < len(out) else None
            heads = bool(rows) and after is not None and self._heads(rows[0], after)
            for side in ("after", "before") if heads else ("before", "after"):
                if side == "after" and after is not None:
                    if self.tokens(a, after[1]) <= self.budget:  # join the next piece
                        out[i : i + 2] = [(a, after[1])]
                        break
                    rest = self._nonblank(after[0], after[1])
                    if len(rest) > 2 and self.tokens(a, rest[0]) <= self.budget:  # take its first line
                        out[i : i + 2] = [(a, rest[0]), (rest[0] + 1, after[1])]
                        break
                if side == "before" and before is not None:
                    if self.tokens(before[0], b) <= self.budget:  # join the previous piece
                        out[i - 1 : i + 1] = [(before[0], b)]
                        i -= 1
                        break
                    rest = self._nonblank(before[0], before[1])
                    if len(rest) > 2 and self.tokens(rest[-1], b) <= self.budget:  # take its last line
                        out[i - 1 : i + 1] = [(before[0], rest[-1] - 1), (rest[-1], b)]
                        break
            i += 1
        return out

    def _nonblank(self, start: int, end: int) -> list[int]:
        return [row for row in range(start, end + 1) if not self.blank(row)]

    def _heads(self, row: int, piece: tuple[int, int]) -> bool:
        """Whether line ``row`` opens what ``piece`` holds (``elif x:`` before its block)."""
        line = self.lines[row].rstrip()
        rows = self._nonblank(*piece)
        if line.endswith((":", "{", "(", "[", "=>", "=")):
            return True
        return bool(rows) and _indent(self.lines[rows[0]]) > _indent(line)

    def _attached_start(self, outer: Node) -> int:
        """Extend a definition upwards over the doc comments and attributes right above it."""
        start = row_start(outer)
        prev = outer.prev_named_sibling
        while (
            prev is not None
            and prev.type in _ATTACHED_PREFIX_TYPES
            and row_end(prev) >= start - 1
            and not self.covered[row_start(prev)]
        ):
            start = row_start(prev)
            prev = prev.prev_named_sibling
        return start

    def _signature(self, node: Node, body: Node | None) -> str:
        """The definition's head (up to its body), whitespace collapsed."""
        end = body.start_byte if body is not None else min(node.end_byte, node.start_byte + 4 * _SIGNATURE_CHARS)
        raw = self.src[node.start_byte : end].decode("utf-8", errors="replace")
        if body is None:
            raw = raw.split("\n", 1)[0]
        return " ".join(raw.split()).rstrip(" {:")[:_SIGNATURE_CHARS]

    # -- splitting ----------------------------------------------------------------------------
    def _split(self, nodes: list[Node], start: int, end: int, depth: int) -> list[tuple[int, int]]:
        """Contiguous row ranges covering [start, end], each within budget where the syntax allows."""
        if self.tokens(start, end) <= self.budget:
            return [(start, end)]
        atoms = self._atoms(nodes, start, end, depth)
        packed: list[tuple[int, int]] = []
        for a, b in atoms:
            if packed and self.tokens(packed[-1][0], b) <= self.budget:
                packed[-1] = (packed[-1][0], b)
            elif self.tokens(a, b) > self.budget and b > a:
                packed.extend(self._line_windows(a, b))
            else:
                packed.append((a, b))
        return packed

    def _atoms(self, nodes: list[Node], start: int, end: int, depth: int) -> list[tuple[int, int]]:
        """Row ranges of the nodes (recursing into oversized ones), made contiguous over [start, end]."""
        bounds: list[tuple[int, int]] = []
        for node in nodes:
            a, b = max(row_start(node), start), min(row_end(node), end)
            if a > b:
                continue
            if bounds and a <= bounds[-1][1]:
                bounds[-1] = (bounds[-1][0], max(bounds[-1][1], b))
                continue
            if self.tokens(a, b) > self.budget and b > a and depth < _MAX_DEPTH and node.named_children:
                sub = self._atoms(node.named_children, a, b, depth + 1)
                bounds.extend(sub)
            else:
                bounds.append((a, b))
        if not bounds:
            return [(start, end)]
        # close the holes: rows before an atom (comments, blanks) join the atom that follows
        out: list[tuple[int, int]] = []
        cursor = start
        for _, last in bounds:
            if last < cursor:
                continue
            out.append((cursor, last))
            cursor = last + 1
        if cursor <= end:
            out[-1] = (out[-1][0], end)
        return out

    def _line_windows(self, start: int, end: int) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        row = start
        while row <= end:
            last = row
            while last + 1 <= end and self.tokens(row, last + 1) <= self.budget:
                last += 1
            out.append((row, last))
            row = last + 1
        return out

    # -- gaps ---------------------------------------------------------------------------------
    def _fill_gaps(self, children: list[Node], start: int, end: int, scope: _Scope, depth: int) -> None:
        row = start
        while row <= end:
            if self.covered[row]:
                row += 1
                continue
            run_end = row
            while run_end + 1 <= end and not self.covered[run_end + 1]:
                run_end += 1
            self._gap_run(children, row, run_end, scope, depth)
            row = run_end + 1

    def _gap_run(self, children: list[Node], start: int, end: int, scope: _Scope, depth: int) -> None:
        while start <= end and self.blank(start):
            start += 1
        while end >= start and self.blank(end):
            end -= 1
        if start > end:
            return
        text = "\n".join(self.lines[start : end + 1])
        if not any(ch.isalnum() for ch in text) and self._attach_punctuation(start, end):
            return
        symbol, kind = scope.gap_symbol, scope.kind
        inside = [c for c in children if row_end(c) >= start and row_start(c) <= end]
        for a, b in self._no_lone_lines(self._split(inside, start, end, depth)):
            self._emit(a, b, symbol, kind, scope.context, "")

    def _attach_punctuation(self, start: int, end: int) -> bool:
        """Closing braces and the like extend the chunk just above (or below) instead of
        becoming a chunk of their own."""
        before = start - 1
        while before >= 0 and self.blank(before) and not self.covered[before]:
            before -= 1
        after = end + 1
        while after < len(self.lines) and self.blank(after) and not self.covered[after]:
            after += 1
        for i, (a, b, *rest) in enumerate(self.ranges):
            if b == before:
                self.ranges[i] = (a, end, *rest)  # type: ignore[assignment]
                self._mark(b + 1, end)
                return True
        for i, (a, b, *rest) in enumerate(self.ranges):
            if a == after:
                self.ranges[i] = (start, b, *rest)  # type: ignore[assignment]
                self._mark(start, a - 1)
                return True
        return False

    # -- output -------------------------------------------------------------------------------
    def _emit(self, start: int, end: int, symbol: str, kind: str, context: tuple[str, ...], signature: str) -> None:
        while start < end and self.blank(start):
            start += 1
        while end > start and self.blank(end):
            end -= 1
        if self.blank(start) and start == end:
            self._mark(start, end)
            return
        self.ranges.append((start, end, symbol, kind, context, signature))
        self._mark(start, end)

    def _mark(self, start: int, end: int) -> None:
        for row in range(start, end + 1):
            self.covered[row] = 1

    def _materialise(self) -> list[Chunk]:
        self.ranges.sort(key=lambda r: (r[0], r[1]))
        out: list[Chunk] = []
        char_budget = self.budget * 3
        for start, end, symbol, kind, context, signature in self.ranges:
            text = "\n".join(self.lines[start : end + 1])
            common = dict(
                start_line=start + 1,
                end_line=end + 1,
                symbol=symbol,
                kind=kind,
                language=self.language,
                context=context,
                signature=signature,
            )
            if start == end and self.tokens(start, end) > self.budget:
                # one enormous line (minified code): bounded character windows, same line number
                for offset in range(0, len(text), char_budget):
                    out.append(Chunk(text=text[offset : offset + char_budget], **common))  # type: ignore[arg-type]
                continue
            out.append(Chunk(text=text, **common))  # type: ignore[arg-type]
        return out
