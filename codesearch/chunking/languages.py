"""Per-language knowledge for the tree-sitter chunker.

Owns, for each supported language: how to load its grammar from the per-language PyPI package
(they ship compiled grammars; nothing is downloaded), which node types are definitions and of
what kind, which of those hold members (classes, impls, namespaces), which nodes are
transparent wrappers (``export``, decorators, templates), and how to read a definition's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

from tree_sitter import Language, Node, Parser

# Kinds that make a function inside them a "method" and that enter qualified symbols.
TYPE_KINDS = frozenset({"class", "interface", "struct", "enum", "trait", "impl", "module", "record"})
NAMESPACE_KIND = "namespace"


@dataclass(frozen=True)
class LanguageSpec:
    name: str
    module: str
    attr: str
    # node type -> kind, for definitions that become chunks
    definitions: dict[str, str]
    # definition or namespace node types whose body members are chunked separately
    containers: frozenset[str] = frozenset()
    # namespace-like nodes: enter the context header, not the symbol
    namespaces: frozenset[str] = frozenset()
    # nodes to look through for definitions (the definition inherits the wrapper's lines)
    wrappers: frozenset[str] = frozenset()
    # nodes that set a namespace for the following siblings (``namespace X;``)
    scope_setters: frozenset[str] = frozenset()
    # special name readers by node type
    namers: dict[str, Callable[[Node], str | None]] = field(default_factory=dict)
    # special kind deciders by node type (e.g. Go type specs)
    kinders: dict[str, Callable[[Node], str]] = field(default_factory=dict)

    def kind_of(self, node: Node) -> str | None:
        kinder = self.kinders.get(node.type)
        if kinder is not None:
            return kinder(node)
        return self.definitions.get(node.type)

    def name_of(self, node: Node) -> str | None:
        namer = self.namers.get(node.type)
        if namer is not None:
            return namer(node)
        name = node.child_by_field_name("name")
        return _text(name) if name is not None else None


def _text(node: Node | None) -> str | None:
    if node is None or node.text is None:
        return None
    return node.text.decode("utf-8", errors="replace").strip() or None


def _c_declarator_name(node: Node) -> str | None:
    """Follow C/C++ declarator chains (pointer, reference, function) to the declared name."""
    current: Node | None = node.child_by_field_name("declarator")
    for _ in range(16):
        if current is None:
            return None
        if current.type in (
            "identifier",
            "field_identifier",
            "qualified_identifier",
            "destructor_name",
            "operator_name",
            "type_identifier",
            "template_function",
            "scoped_identifier",
        ):
            return _text(current)
        nxt = current.child_by_field_name("declarator")
        if nxt is None:
            named = [c for c in current.named_children if c.type != "parameter_list"]
            nxt = named[0] if named else None
        current = nxt
    return None


def _c_type_name(node: Node) -> str | None:
    """``struct foo {...}``, or the typedef name of ``typedef struct {...} foo;``."""
    name = node.child_by_field_name("name")
    if name is not None:
        return _text(name)
    parent = node.parent
    if parent is not None and parent.type == "type_definition":
        return _text(parent.child_by_field_name("declarator"))
    return None


def _go_method_name(node: Node) -> str | None:
    name = _text(node.child_by_field_name("name"))
    receiver = node.child_by_field_name("receiver")
    if receiver is None or name is None:
        return name
    for ident in _descendants(receiver):
        if ident.type == "type_identifier":
            return f"{_text(ident)}.{name}"
    return name


def _go_type_spec_kind(node: Node) -> str:
    value = node.child_by_field_name("type")
    if value is not None and value.type == "struct_type":
        return "struct"
    if value is not None and value.type == "interface_type":
        return "interface"
    return "type"


def _rust_impl_name(node: Node) -> str | None:
    return _text(node.child_by_field_name("type"))


def _js_declarator_name(node: Node) -> str | None:
    """``const f = () => {}``: the name of the first declarator holding a function or class."""
    for decl in node.named_children:
        if decl.type == "variable_declarator":
            value = decl.child_by_field_name("value")
            if value is not None and value.type in _JS_FUNCTION_VALUES:
                return _text(decl.child_by_field_name("name"))
    return None


def _js_declaration_kind(node: Node) -> str:
    for decl in node.named_children:
        value = decl.child_by_field_name("value") if decl.type == "variable_declarator" else None
        if value is not None and value.type in ("class", "class_expression"):
            return "class"
    return "function"


def _ruby_singleton_name(node: Node) -> str | None:
    name = _text(node.child_by_field_name("name"))
    obj = _text(node.child_by_field_name("object"))
    return f"{obj}.{name}" if obj and obj != "self" else name


def _descendants(node: Node) -> list[Node]:
    out: list[Node] = []
    stack = [node]
    while stack:
        cur = stack.pop()
        out.append(cur)
        stack.extend(reversed(cur.named_children))
    return out


_JS_FUNCTION_VALUES = frozenset(
    {"arrow_function", "function_expression", "function", "generator_function", "class", "class_expression"}
)

_JS_DEFS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "function": "function",
    "class_declaration": "class",
    "class": "class",
    "method_definition": "method",
    "lexical_declaration": "function",
    "variable_declaration": "function",
}
_TS_DEFS = {
    **_JS_DEFS,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "type_alias_declaration": "type",
    "enum_declaration": "enum",
    "function_signature": "function",
    "abstract_method_signature": "method",
    "method_signature": "method",
    "internal_module": NAMESPACE_KIND,
    "module": NAMESPACE_KIND,
}
_JS_NAMERS: dict[str, Callable[[Node], str | None]] = {
    "lexical_declaration": _js_declarator_name,
    "variable_declaration": _js_declarator_name,
}
_JS_KINDERS: dict[str, Callable[[Node], str]] = {
    "lexical_declaration": _js_declaration_kind,
    "variable_declaration": _js_declaration_kind,
}

_C_NAMERS: dict[str, Callable[[Node], str | None]] = {
    "function_definition": _c_declarator_name,
    "struct_specifier": _c_type_name,
    "union_specifier": _c_type_name,
    "enum_specifier": _c_type_name,
    "class_specifier": _c_type_name,
}

SPECS: dict[str, LanguageSpec] = {
    "python": LanguageSpec(
        "python",
        "tree_sitter_python",
        "language",
        definitions={"function_definition": "function", "class_definition": "class"},
        containers=frozenset({"class_definition"}),
        wrappers=frozenset({"decorated_definition"}),
    ),
    "javascript": LanguageSpec(
        "javascript",
        "tree_sitter_javascript",
        "language",
        definitions=_JS_DEFS,
        containers=frozenset({"class_declaration", "class"}),
        wrappers=frozenset({"export_statement"}),
        namers=_JS_NAMERS,
        kinders=_JS_KINDERS,
    ),
    "typescript": LanguageSpec(
        "typescript",
        "tree_sitter_typescript",
        "language_typescript",
        definitions=_TS_DEFS,
        containers=frozenset({"class_declaration", "class", "abstract_class_declaration", "internal_module", "module"}),
        namespaces=frozenset({"internal_module", "module"}),
        wrappers=frozenset({"export_statement", "ambient_declaration", "expression_statement"}),
        namers=_JS_NAMERS,
        kinders=_JS_KINDERS,
    ),
    "go": LanguageSpec(
        "go",
        "tree_sitter_go",
        "language",
        definitions={"function_declaration": "function", "method_declaration": "method", "type_spec": "type"},
        wrappers=frozenset({"type_declaration"}),
        namers={"method_declaration": _go_method_name},
        kinders={"type_spec": _go_type_spec_kind},
    ),
    "java": LanguageSpec(
        "java",
        "tree_sitter_java",
        "language",
        definitions={
            "class_declaration": "class",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "record_declaration": "record",
            "annotation_type_declaration": "interface",
            "method_declaration": "method",
            "constructor_declaration": "method",
            "compact_constructor_declaration": "method",
        },
        containers=frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}),
        wrappers=frozenset({"enum_body_declarations"}),
    ),
    "rust": LanguageSpec(
        "rust",
        "tree_sitter_rust",
        "language",
        definitions={
            "function_item": "function",
            "function_signature_item": "function",
            "struct_item": "struct",
            "enum_item": "enum",
            "union_item": "struct",
            "trait_item": "trait",
            "impl_item": "impl",
            "mod_item": "module",
            "macro_definition": "macro",
            "type_item": "type",
        },
        containers=frozenset({"impl_item", "trait_item", "mod_item"}),
        namespaces=frozenset({"mod_item"}),
        namers={"impl_item": _rust_impl_name},
    ),
    "c": LanguageSpec(
        "c",
        "tree_sitter_c",
        "language",
        definitions={
            "function_definition": "function",
            "struct_specifier": "struct",
            "union_specifier": "struct",
            "enum_specifier": "enum",
        },
        wrappers=frozenset({"type_definition", "declaration", "linkage_specification", "declaration_list"}),
        namers=_C_NAMERS,
    ),
    "cpp": LanguageSpec(
        "cpp",
        "tree_sitter_cpp",
        "language",
        definitions={
            "function_definition": "function",
            "class_specifier": "class",
            "struct_specifier": "struct",
            "union_specifier": "struct",
            "enum_specifier": "enum",
            "namespace_definition": NAMESPACE_KIND,
        },
        containers=frozenset({"class_specifier", "struct_specifier", "namespace_definition"}),
        namespaces=frozenset({"namespace_definition"}),
        wrappers=frozenset(
            {
                "template_declaration",
                "type_definition",
                "declaration",
                "linkage_specification",
                "declaration_list",
                "field_declaration",
            }
        ),
        namers=_C_NAMERS,
    ),
    "csharp": LanguageSpec(
        "csharp",
        "tree_sitter_c_sharp",
        "language",
        definitions={
            "class_declaration": "class",
            "struct_declaration": "struct",
            "interface_declaration": "interface",
            "enum_declaration": "enum",
            "record_declaration": "record",
            "method_declaration": "method",
            "constructor_declaration": "method",
            "destructor_declaration": "method",
            "operator_declaration": "method",
            "local_function_statement": "function",
            "namespace_declaration": NAMESPACE_KIND,
        },
        containers=frozenset(
            {
                "class_declaration",
                "struct_declaration",
                "interface_declaration",
                "record_declaration",
                "namespace_declaration",
            }
        ),
        namespaces=frozenset({"namespace_declaration"}),
        scope_setters=frozenset({"file_scoped_namespace_declaration"}),
    ),
    "ruby": LanguageSpec(
        "ruby",
        "tree_sitter_ruby",
        "language",
        definitions={
            "method": "method",
            "singleton_method": "method",
            "class": "class",
            "module": "module",
            "singleton_class": "class",
        },
        containers=frozenset({"class", "module", "singleton_class"}),
        namers={"singleton_method": _ruby_singleton_name, "singleton_class": lambda n: "self"},
    ),
    "php": LanguageSpec(
        "php",
        "tree_sitter_php",
        "language_php",
        definitions={
            "function_definition": "function",
            "class_declaration": "class",
            "interface_declaration": "interface",
            "trait_declaration": "trait",
            "enum_declaration": "enum",
            "method_declaration": "method",
            "namespace_definition": NAMESPACE_KIND,
        },
        containers=frozenset(
            {
                "class_declaration",
                "interface_declaration",
                "trait_declaration",
                "enum_declaration",
                "namespace_definition",
            }
        ),
        namespaces=frozenset({"namespace_definition"}),
        scope_setters=frozenset({"namespace_definition"}),
    ),
}
SPECS["tsx"] = LanguageSpec(**{**SPECS["typescript"].__dict__, "name": "tsx", "attr": "language_tsx"})

SUPPORTED_LANGUAGES = tuple(sorted(SPECS))


@cache
def get_language(name: str) -> Language:
    spec = SPECS[name]
    module = importlib.import_module(spec.module)
    return Language(getattr(module, spec.attr)())


def new_parser(name: str) -> Parser:
    return Parser(get_language(name))
