"""Signatures from other open documents of the symbols used near the cursor.

Each document's definitions are collected once per snapshot. The symbols come from
a band of lines around the cursor that moves in steps of `WINDOW_STEP` lines and
leaves out the cursor line, so typing does not change this part of the prompt.

Pure: no LSP types.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import tree_sitter

from ds_lsp.context.cursor import Cursor
from ds_lsp.context.definitions import (
    IDENTIFIER,
    SCOPES,
    declaration_signature,
    definition_name,
    scope_signature,
)
from ds_lsp.context.windows import WINDOW_STEP, display_name
from ds_lsp.documents import Document

# Identifiers this far around the cursor count as "used near the cursor"; the band
# is aligned to WINDOW_STEP lines so that it moves rarely too.
_NEAR_BEFORE = 64
_NEAR_AFTER = 32
# Of a very long line near the cursor (minified code), only this much is read for names.
_NEAR_LINE_CHARS = 2000
# Languages whose symbols can be used from each other's files.
_FAMILIES: dict[str, str] = {"typescript": "javascript", "tsx": "javascript", "cpp": "c"}

# Definitions whose body is code (not reachable from other files); the other scope
# kinds (classes, impls, namespaces) are searched for members.
_FUNCTION_KINDS = frozenset(
    {
        "function_definition",
        "function_declaration",
        "generator_function_declaration",
        "function_expression",
        "function",
        "arrow_function",
        "method_definition",
        "method_declaration",
        "constructor_declaration",
        "func_literal",
        "function_item",
        "method",
        "singleton_method",
    }
)
# Definitions without a body that other files use: prototypes, type aliases, ...
_DECLARATIONS = frozenset(
    {
        "type_alias_declaration",
        "function_signature_item",
        "function_signature",
        "declaration",  # C/C++: only prototypes, see definition_name
        "field_declaration",  # C++ member functions declared in the class
        "lexical_declaration",  # JS/TS: const f = (...) => ...
        "type_item",
        "const_item",
        "static_item",
    }
)
# Nodes to look inside for definitions: @decorator, export, template<...>, type (...).
_WRAPPERS = frozenset(
    {
        "decorated_definition",
        "export_statement",
        "template_declaration",
        "type_declaration",
        "linkage_specification",
        "ambient_declaration",
    }
)


@dataclass(frozen=True)
class _Definition:
    name: str
    start: int  # byte offset in its document, for a stable order
    outer: tuple[str, ...]  # the signatures of the classes (impls, ...) around it
    signature: str

    @property
    def size(self) -> int:
        return sum(len(part) + 1 for part in (*self.outer, self.signature))


# Each snapshot's definitions, kept while the snapshot lives (documents are immutable).
_DEFINITIONS: weakref.WeakKeyDictionary[Document, dict[str, list[_Definition]]] = (
    weakref.WeakKeyDictionary()
)


def related_signatures(cursor: Cursor, others: Iterable[Document], budget: int) -> str:
    """Signatures from other open documents of the symbols used near the cursor, the
    nearest first while they fit, then in a stable order (by file and position)."""
    family = _FAMILIES.get(cursor.language or "", cursor.language)
    if family is None or budget <= 0:
        return ""
    candidates = [
        other
        for other in others
        if other.uri != cursor.document.uri
        and _FAMILIES.get(other.language or "", other.language) == family
    ]
    if not candidates:
        return ""
    # (uri, file name, definitions by name), in a stable order
    tables = sorted(
        (other.uri, display_name(other.uri, None), _definitions(other)) for other in candidates
    )
    chosen: list[tuple[str, str, _Definition]] = []
    seen: set[tuple[str, int]] = set()
    size = 0
    for name in _names_near(cursor):
        for uri, file_name, definitions in tables:
            for definition in definitions.get(name, ()):
                cost = definition.size + len(file_name) + 2
                if (uri, definition.start) in seen or size + cost > budget:
                    continue
                size += cost
                seen.add((uri, definition.start))
                chosen.append((uri, file_name, definition))
    chosen.sort(key=lambda item: (item[0], item[2].start))
    blocks: list[str] = []
    shown: set[tuple[str, str]] = set()  # a class with two used methods is shown once
    for uri, file_name, definition in chosen:
        for part in (f"{file_name}:", *definition.outer, definition.signature):
            if (uri, part) not in shown:
                shown.add((uri, part))
                blocks.append(part)
    return "\n".join(blocks)


def _names_near(cursor: Cursor) -> list[str]:
    """Identifiers on the lines around the cursor, the nearest lines first. The cursor
    line is left out: the word being typed there would change the prompt's start."""
    content = cursor.document.content
    band = cursor.row - cursor.row % WINDOW_STEP
    first = max(0, band - _NEAR_BEFORE)
    last = min(content.line_count, band + WINDOW_STEP + _NEAR_AFTER)
    text = content.text
    names: dict[str, None] = {}  # an ordered set
    for distance in range(1, max(cursor.row - first, last - 1 - cursor.row) + 1):
        for row in (cursor.row - distance, cursor.row + distance):
            if first <= row < last:
                start = content.line_start(row)
                end = content.line_start(row + 1) if row + 1 < content.line_count else len(text)
                end = min(end, start + _NEAR_LINE_CHARS)  # a minified line: its start only
                names.update(dict.fromkeys(IDENTIFIER.findall(text, start, end)))
    return list(names)


def _definitions(document: Document) -> dict[str, list[_Definition]]:
    found = _DEFINITIONS.get(document)
    if found is None:
        found = {}
        tree = document.tree
        language = document.language or ""
        if tree is not None and language in SCOPES:
            _collect(tree.root_node, document.source, SCOPES[language], (), found)
        _DEFINITIONS[document] = found
    return found


def _collect(
    node: tree_sitter.Node,
    source: bytes,
    scopes: frozenset[str],
    outer: tuple[str, ...],
    found: dict[str, list[_Definition]],
) -> None:
    """Definitions among `node`'s children: functions and types, and the members of
    classes, impls and namespaces (not what is defined inside function bodies)."""
    for child in node.named_children:
        kind = child.type
        if kind in _WRAPPERS:
            _collect(child, source, scopes, outer, found)
            continue
        if kind not in scopes and kind not in _DECLARATIONS:
            continue
        name = definition_name(child, source)
        if kind in scopes:
            signature = scope_signature(child, source)
        else:
            signature = declaration_signature(child, source)
        if name and signature:
            definition = _Definition(name, child.start_byte, outer, signature)
            found.setdefault(name, []).append(definition)
        body = child.child_by_field_name("body")
        if kind in scopes and kind not in _FUNCTION_KINDS and body is not None:
            _collect(body, source, scopes, (*outer, signature) if signature else outer, found)
