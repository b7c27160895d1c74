"""Definitions in a syntax tree: which nodes are scopes (functions, classes, ...),
their names and signature lines, and the innermost one around some lines.

Pure: no LSP types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import tree_sitter

from ds_lsp.documents import Document

_SIGNATURE_MAX_LINES = 6
_SIGNATURE_MAX_CHARS = 400
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_C_FAMILY_SCOPES = frozenset({"function_definition", "struct_specifier", "union_specifier"})
_JS_SCOPES = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "function",
        "arrow_function",
        "method_definition",
        "class_declaration",
        "class",
        "abstract_class_declaration",
        "interface_declaration",
        "enum_declaration",
        "internal_module",
        "module",
    }
)
# Nodes that enclose code and have a signature worth showing: functions, classes, ...
SCOPES: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition", "class_definition"}),
    "javascript": _JS_SCOPES,
    "typescript": _JS_SCOPES,
    "tsx": _JS_SCOPES,
    "go": frozenset({"function_declaration", "method_declaration", "func_literal", "type_spec"}),
    "rust": frozenset(
        {
            "function_item",
            "impl_item",
            "trait_item",
            "mod_item",
            "struct_item",
            "enum_item",
            "union_item",
        }
    ),
    "java": frozenset(
        {
            "class_declaration",
            "interface_declaration",
            "enum_declaration",
            "record_declaration",
            "method_declaration",
            "constructor_declaration",
        }
    ),
    "c": _C_FAMILY_SCOPES,
    "cpp": _C_FAMILY_SCOPES | {"class_specifier", "namespace_definition"},
    "csharp": frozenset(
        {
            "namespace_declaration",
            "class_declaration",
            "struct_declaration",
            "interface_declaration",
            "record_declaration",
            "enum_declaration",
            "method_declaration",
            "constructor_declaration",
        }
    ),
    "ruby": frozenset({"method", "singleton_method", "class", "module"}),
    "lua": frozenset({"function_declaration", "function_definition"}),
    "bash": frozenset({"function_definition"}),
}


def header_end(node: tree_sitter.Node, source: bytes) -> int:
    """Where a definition's signature ends: before its body (with the body's opening
    brace), or at the end of its first line when it has no body."""
    body = node.child_by_field_name("body")
    if body is None or body.start_byte <= node.start_byte:
        line_end = source.find(b"\n", node.start_byte)
        return node.end_byte if line_end == -1 else min(node.end_byte, line_end)
    end = node.start_byte
    for child in node.children:
        if child.start_byte >= body.start_byte:
            break
        if not child.is_extra:  # a comment between the signature and the body
            end = child.end_byte
    if source[body.start_byte : body.start_byte + 1] == b"{":
        end = body.start_byte + 1
    return end


def scope_signature(node: tree_sitter.Node, source: bytes) -> str:
    """A definition's signature line(s), from the start of its first line (so the
    indentation, `export` or `pub` come with it) to the end of its header."""
    start = source.rfind(b"\n", 0, node.start_byte) + 1
    text = source[start : header_end(node, source)].decode("utf-8", "replace").rstrip()
    lines = text.splitlines()
    if len(lines) > _SIGNATURE_MAX_LINES or len(text) > _SIGNATURE_MAX_CHARS:
        text = lines[0][:_SIGNATURE_MAX_CHARS]
    return text


def declaration_signature(node: tree_sitter.Node, source: bytes) -> str:
    """A body-less definition's first line: a prototype, a type alias, `const f = ...`."""
    start = source.rfind(b"\n", 0, node.start_byte) + 1
    end = source.find(b"\n", node.start_byte)
    end = node.end_byte if end == -1 else min(end, node.end_byte)
    return source[start:end].decode("utf-8", "replace").rstrip()[:_SIGNATURE_MAX_CHARS]


def definition_name(node: tree_sitter.Node, source: bytes) -> str | None:
    """The name a definition is used by: `f` for def f, `load` for M.load or K::load.
    None for what other files cannot call: a C variable, a struct field, an impl."""
    kind = node.type
    if kind == "lexical_declaration":  # const f = (...) => ...
        for declarator in node.named_children:
            value = declarator.child_by_field_name("value")
            if value is not None and value.type in ("arrow_function", "function_expression"):
                return _last_identifier(declarator.child_by_field_name("name"), source)
        return None
    # In C and C++ a declaration names a function only through a function declarator.
    is_c_declaration = kind in ("declaration", "field_declaration")
    name = None if is_c_declaration else node.child_by_field_name("name")
    if name is None:  # C and C++ name functions inside declarators: *make(...), K::m(...)
        function = _function_declarator(node.child_by_field_name("declarator"))
        name = function.child_by_field_name("declarator") if function is not None else None
    return _last_identifier(name, source)


def _last_identifier(node: tree_sitter.Node | None, source: bytes) -> str | None:
    if node is None:
        return None
    names = IDENTIFIER.findall(source[node.start_byte : node.end_byte].decode("utf-8", "replace"))
    return names[-1] if names else None


def _function_declarator(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    """The function_declarator inside pointer and reference declarators (C, C++)."""
    while node is not None and node.type != "function_declarator":
        node = node.child_by_field_name("declarator")
    return node


@dataclass(frozen=True)
class Definition:
    """A function, class or other scope, by lines (0-based, inclusive)."""

    start_line: int
    end_line: int
    name: str | None


def enclosing_definition(
    document: Document, start_line: int, end_line: int | None = None
) -> Definition | None:
    """The innermost scope (function, method, class...) holding lines start..end.

    For "edit this function" when nothing is selected, and for naming a
    selection ("`parse_args` in src/cli.py:12-40")."""
    end_line = start_line if end_line is None else end_line
    kinds = SCOPES.get(document.language or "")
    tree = document.tree
    if not kinds or tree is None:
        return None
    content = document.content
    last_line = content.line_count - 1
    start_byte = content.byte_line_start(min(start_line, last_line))
    line = content.line(min(end_line, last_line))
    end_byte = content.byte_line_start(min(end_line, last_line))
    end_byte += len(line.rstrip("\r\n").encode("utf-8", "surrogatepass"))
    # From the first non-blank character, so a selection of whole lines still sits inside.
    first = content.line(min(start_line, last_line))
    start_byte += len(first) - len(first.lstrip()) if first.strip() else 0
    node = tree.root_node.descendant_for_byte_range(start_byte, max(start_byte, end_byte))
    while node is not None:
        if node.type in kinds and node.start_byte <= start_byte and end_byte <= node.end_byte:
            return Definition(
                node.start_point.row, node.end_point.row, definition_name(node, document.source)
            )
        node = node.parent
    return None
