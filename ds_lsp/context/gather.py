"""What the model sees for an inline completion, gathered from the syntax tree.

`gather` cuts a `CompletionContext` out of an open document at the cursor: the
text before and after it within a token budget, the enclosing function and class
signatures, the file's imports, and the signatures of symbols from other open
documents that the code near the cursor uses. `completion_mode` decides from the
node at the cursor whether to complete one line, a block, or nothing (inside a
comment or a string).

The prompt renderers put the slowly changing parts first and the text before the
cursor last, so a typed character only adds tokens at the end and the model's KV
cache keeps the rest. For the same reason every part except the prefix's tail is
chosen so that typing on the cursor line does not change it: imports and related
symbols ignore the cursor line, and the prefix window starts on a line number
that moves in steps of `WINDOW_STEP` lines, not with each character.

Pure: no LSP types. Read `Document.tree` on one thread (the server's event loop).
"""

from __future__ import annotations

import re
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import unquote, urlparse

import tree_sitter

from ds_lsp.documents import Document
from ds_lsp.text import CHARS_PER_TOKEN

Mode = Literal["none", "single_line", "multi_line"]

# The prefix window starts on a multiple of this many lines: moving it re-evaluates
# the whole prefix, so it moves once per WINDOW_STEP lines typed, not on every line.
WINDOW_STEP = 16

# Shares of the budget the extra context may take at most, so the code around the
# cursor always gets most of it.
_IMPORTS_SHARE = 1 / 8
_RELATED_SHARE = 1 / 8
_SCOPE_SHARE = 1 / 16
_SUFFIX_SHARE = 1 / 4  # of what is left for code; the prefix gets the rest
# Identifiers this far around the cursor count as "used near the cursor"; the band
# is aligned to WINDOW_STEP lines so that it moves rarely too.
_NEAR_BEFORE = 64
_NEAR_AFTER = 32
_SIGNATURE_MAX_LINES = 6
_SIGNATURE_MAX_CHARS = 400


@dataclass(frozen=True)
class CompletionContext:
    file_name: str  # path relative to the workspace if known, else the file name
    language: str | None  # tree-sitter name; None for plain text
    prefix: str  # text before the cursor, within budget (whole lines, then the cursor line's start)
    suffix: str  # text after the cursor, within budget (the cursor line's rest, then whole lines)
    line_prefix: str  # the cursor line up to the cursor
    line_suffix: str  # the cursor line after the cursor
    scope: str  # signature line(s) of the enclosing functions / classes ("" at top level)
    imports: str  # the file's import lines
    related: str  # signatures from OTHER open documents of symbols used near the cursor
    mode: Mode
    indent: str  # leading whitespace of the cursor line


# ---------------------------------------------------------------- language tables

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
_SCOPES: dict[str, frozenset[str]] = {
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
        "declaration",  # C/C++: only prototypes, see _name
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

# Top-level nodes that import something; the callables need a look at their text.
_IMPORT_NODES: dict[str, frozenset[str]] = {
    "python": frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
    "javascript": frozenset({"import_statement"}),
    "typescript": frozenset({"import_statement", "import_alias"}),
    "tsx": frozenset({"import_statement", "import_alias"}),
    "go": frozenset({"import_declaration"}),
    "rust": frozenset({"use_declaration", "extern_crate_declaration"}),
    "java": frozenset({"import_declaration"}),
    "c": frozenset({"preproc_include"}),
    "cpp": frozenset({"preproc_include", "using_declaration"}),
    "csharp": frozenset({"using_directive"}),
}
_IMPORT_CALLS: dict[str, tuple[frozenset[str], re.Pattern[str]]] = {
    "javascript": (
        frozenset({"lexical_declaration", "variable_declaration"}),
        re.compile(r"[^\n]*\brequire\s*\("),
    ),
    "ruby": (frozenset({"call"}), re.compile(r"(require|require_relative|load)\b")),
    "lua": (frozenset({"variable_declaration"}), re.compile(r"[^\n]*\brequire\b")),
    "bash": (frozenset({"command"}), re.compile(r"(source|\.)\s")),
}
_IMPORT_CALLS["typescript"] = _IMPORT_CALLS["tsx"] = _IMPORT_CALLS["javascript"]

_STRINGS = frozenset(
    {
        "string",
        "template_string",
        "string_literal",
        "raw_string_literal",
        "interpreted_string_literal",
        "rune_literal",
        "char_literal",
        "character_literal",
        "verbatim_string_literal",
        "interpolated_string_expression",
        "heredoc_body",
        "raw_string",
        "ansi_c_string",
        "system_lib_string",
        "text_block",
    }
)
# Code inside a string: f"{here}", `${here}`, "#{here}", "$(here)".
_INTERPOLATIONS = frozenset(
    {
        "interpolation",
        "template_substitution",
        "command_substitution",
        "expansion",
        "simple_expansion",
    }
)
_QUOTES: dict[str, str] = {
    "rust": '"',  # ' also starts a lifetime
    "javascript": "\"'`",
    "typescript": "\"'`",
    "tsx": "\"'`",
    "go": "\"'`",
}
_LINE_COMMENTS: dict[str, str] = {"python": "#", "ruby": "#", "bash": "#", "lua": "--"}

_BRACKET_OPENER = re.compile(r"[{(\[]\s*$")
# A cursor line ending so opens a block (after the brackets every language has).
_BLOCK_OPENERS: dict[str, re.Pattern[str]] = {
    "python": re.compile(r":\s*$"),
    "ruby": re.compile(
        r"^\s*(def|class|module|if|unless|while|until|case|begin)\b|\bdo(\s*\|[^|]*\|)?\s*$"
    ),
    "lua": re.compile(r"\b(then|do|repeat)\s*$|\bfunction\b[^)]*\)\s*$"),
    "bash": re.compile(r"\b(then|do|else)\s*$"),
}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDENT = re.compile(r"[ \t]*")
# Languages whose symbols can be used from each other's files.
_FAMILIES: dict[str, str] = {"typescript": "javascript", "tsx": "javascript", "cpp": "c"}


# ---------------------------------------------------------------- the mode


def completion_mode(document: Document, offset: int, invoked: bool) -> Mode:
    """What to complete at `offset` (code points into document.text).

    "none" inside a comment or a string, unless the user asked (`invoked`): then one
    line. One line in the middle of a line; a block after a line that opens one,
    and on an empty line inside a body. Plain text: one line.
    """
    cursor = _Cursor(document, offset)
    return _mode(cursor, invoked)


def _mode(cursor: _Cursor, invoked: bool) -> Mode:
    if cursor.root is None:
        return "single_line"
    if cursor.in_comment_or_string():
        return "single_line" if invoked else "none"
    if cursor.line_suffix.strip():
        return "single_line"
    # Several lines only where the code below does not already go on at the cursor's
    # depth (as Copilot and llama.vim do): an empty body, the end of a block, the end
    # of the file. Elsewhere a suggestion of many lines would rewrite the code below.
    below = cursor.next_line_indent()
    if _opens_block(cursor.line_prefix, cursor.language):
        depth = _width(_INDENT.match(cursor.line_prefix).group())
        return "multi_line" if below is None or below <= depth else "single_line"
    if not cursor.line_prefix.strip() and cursor.in_body():
        depth = _width(cursor.line_prefix)
        return "multi_line" if below is None or below < depth else "single_line"
    return "single_line"


def _width(indentation: str) -> int:
    return len(indentation.expandtabs(4))


def _opens_block(line: str, language: str | None) -> bool:
    if _BRACKET_OPENER.search(line):
        return True
    pattern = _BLOCK_OPENERS.get(language or "")
    return bool(pattern and pattern.search(line))


# ---------------------------------------------------------------- gathering


def gather(
    document: Document,
    offset: int,
    others: Iterable[Document],
    budget_tokens: int,
    invoked: bool = False,
    root_uri: str | None = None,
    reserved_chars: int = 0,
) -> CompletionContext:
    """The context for a completion at `offset` (code points into document.text).

    `others` are the other open documents (for related signatures); `root_uri` the
    workspace folder, for the file name. The context takes about `budget_tokens`
    tokens, less `reserved_chars` characters the prompt's own text needs
    (completion_prompts.reserved_chars).
    """
    cursor = _Cursor(document, offset)
    mode = _mode(cursor, invoked)
    budget = max(0, int(budget_tokens * CHARS_PER_TOKEN))
    file_name = _file_name(document.uri, root_uri)
    code_budget = budget - reserved_chars - len(file_name)

    imports = _fit_lines(_imports(cursor), int(budget * _IMPORTS_SHARE))
    related = _related(cursor, others, int(budget * _RELATED_SHARE))
    scope = _fit_scopes(cursor.scopes(), int(budget * _SCOPE_SHARE))
    code_budget -= len(imports) + len(related) + len(scope)

    suffix = _suffix_window(cursor, max(0, int(code_budget * _SUFFIX_SHARE)))
    prefix = _prefix_window(cursor, max(0, code_budget - len(suffix)))
    line = cursor.line_prefix + cursor.line_suffix
    return CompletionContext(
        file_name=file_name,
        language=document.language,
        prefix=prefix,
        suffix=suffix,
        line_prefix=cursor.line_prefix,
        line_suffix=cursor.line_suffix,
        scope=scope,
        imports=imports,
        related=related,
        mode=mode,
        indent=_INDENT.match(line).group(),
    )


class _Cursor:
    """A position in a document, with what every part of gathering asks about it."""

    def __init__(self, document: Document, offset: int) -> None:
        content = document.content
        text = content.text
        self.document = document
        self.language = document.language
        self.offset = offset = min(max(offset, 0), len(text))
        self.row = row = bisect_right(content.line_starts, offset) - 1
        self.line_start = content.line_starts[row]
        line = content.line(row)
        self.line_prefix = text[self.line_start : offset]
        self.line_suffix = line[len(self.line_prefix) :]
        self.byte = content.byte_of_offset(offset)
        self.line_start_byte = content.byte_line_starts[row]
        self.line_end_byte = self.byte + len(self.line_suffix.encode("utf-8", "surrogatepass"))
        tree = document.tree
        self.root: tree_sitter.Node | None = tree.root_node if tree is not None else None

    @property
    def source(self) -> bytes:
        return self.document.source

    def in_comment_or_string(self) -> bool:
        """Whether the character before the cursor belongs to a comment or a string
        (the cursor right after a closing quote or `*/` is outside)."""
        byte = self.byte
        if byte == 0 or self.root is None:
            return False
        node: tree_sitter.Node | None = self.root.descendant_for_byte_range(byte - 1, byte)
        while node is not None:
            kind = node.type
            if kind in _INTERPOLATIONS:
                return False
            if "comment" in kind:
                closed = node.end_byte == byte and self.source[byte - 2 : byte] == b"*/"
                return not closed
            if kind in _STRINGS:
                return byte < node.end_byte or _unterminated(node)
            node = node.parent
        return self._in_unclosed_quote()

    def _in_unclosed_quote(self) -> bool:
        """While a string is being typed it is often not a string node yet but an
        ERROR: then read the cursor line's quotes up to the cursor."""
        start = self.line_start_byte
        around = self.root.descendant_for_byte_range(start, max(start, self.byte - 1))
        if around is None or not around.has_error:
            return False
        quotes = _QUOTES.get(self.language or "", "\"'")
        comment = _LINE_COMMENTS.get(self.language or "", "//")
        open_quote = ""
        escaped = False
        line = self.line_prefix
        for index, char in enumerate(line):
            if open_quote:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == open_quote:
                    open_quote = ""
            elif char in quotes:
                open_quote = char
            elif line.startswith(comment, index):
                return True
        return bool(open_quote)

    @cached_property
    def anchor_node(self) -> tree_sitter.Node | None:
        """The smallest node at the last non-blank character before the cursor (the
        cursor itself when its line has text before it): where a blank line belongs."""
        if self.root is None:
            return None
        if self.line_prefix.strip():
            end = self.byte
        else:
            end = _skip_blanks_back(self.source, self.line_start_byte)
        if end == 0:
            return self.root
        return self.root.descendant_for_byte_range(end - 1, end)

    @cached_property
    def scope_nodes(self) -> list[tree_sitter.Node]:
        """The scopes (functions, classes, ...) the cursor is inside, outermost first,
        leaving out those whose signature ends on the cursor line."""
        kinds = _SCOPES.get(self.language or "")
        node = self.anchor_node
        if not kinds or node is None:
            return []
        found = []
        while node is not None:
            if node.type in kinds and self._inside(node):
                found.append(node)
            node = node.parent
        return found[::-1]

    def _inside(self, node: tree_sitter.Node) -> bool:
        if _header_end(node, self.source) > self.line_start_byte:
            return False  # the cursor is on its signature line, not in its body
        if self.byte < node.end_byte:
            return True
        if self.language != "python":
            return False
        # Python's blocks end at their last statement: a cursor after it belongs to
        # the block when it is at the end of that statement, or indented deeper.
        if self.byte == node.end_byte:
            return True
        blank = not self.line_prefix.strip()
        return blank and len(self.line_prefix) > len(_line_indent(self.source, node.start_byte))

    def next_line_indent(self) -> int | None:
        """The indentation width of the next non-blank line after the cursor line, or
        None at the end of the file."""
        content = self.document.content
        for row in range(self.row + 1, min(content.line_count, self.row + 200)):
            line = content.line(row)
            if line.strip():
                return _width(_INDENT.match(line).group())
        return None

    def scopes(self) -> list[str]:
        return [_signature(node, self.source) for node in self.scope_nodes]

    def in_body(self) -> bool:
        """Whether a blank cursor line is inside a body: an enclosing scope, an
        indented line, or the line after one that opens a block."""
        if self.line_prefix or self.scope_nodes:
            return True
        end = _skip_blanks_back(self.source, self.line_start_byte)
        previous = self.source[self.source.rfind(b"\n", 0, end) + 1 : end]
        return _opens_block(previous.decode("utf-8", "replace"), self.language)


def _skip_blanks_back(source: bytes, end: int) -> int:
    """Where the text before `end` ends, not counting blank lines and spaces."""
    while end > 0 and source[end - 1] in b" \t\r\n\f\v":
        end -= 1
    return end


def _unterminated(string: tree_sitter.Node) -> bool:
    last = string.child(string.child_count - 1) if string.child_count else None
    return string.has_error or (last is not None and last.is_missing)


def _line_indent(source: bytes, byte: int) -> bytes:
    start = source.rfind(b"\n", 0, byte) + 1
    line = source[start:byte]
    return line[: len(line) - len(line.lstrip(b" \t"))]


def _header_end(node: tree_sitter.Node, source: bytes) -> int:
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


def _signature(node: tree_sitter.Node, source: bytes) -> str:
    """A definition's signature line(s), from the start of its first line (so the
    indentation, `export` or `pub` come with it) to the end of its header."""
    start = source.rfind(b"\n", 0, node.start_byte) + 1
    text = source[start : _header_end(node, source)].decode("utf-8", "replace").rstrip()
    lines = text.splitlines()
    if len(lines) > _SIGNATURE_MAX_LINES or len(text) > _SIGNATURE_MAX_CHARS:
        text = lines[0][:_SIGNATURE_MAX_CHARS]
    return text


def _fit_scopes(scopes: list[str], budget: int) -> str:
    """The innermost scopes that fit in `budget` characters, outermost first."""
    kept: list[str] = []
    used = 0
    for signature in reversed(scopes):
        used += len(signature) + 1
        if used > budget:
            break
        kept.append(signature)
    return "\n".join(reversed(kept))


def _fit_lines(blocks: list[str], budget: int) -> str:
    """The first blocks that fit in `budget` characters, one per line."""
    kept: list[str] = []
    used = 0
    for block in blocks:
        used += len(block) + 1
        if used > budget:
            break
        kept.append(block)
    return "\n".join(kept)


# ---------------------------------------------------------------- the windows


def _suffix_window(cursor: _Cursor, budget: int) -> str:
    """The cursor line's rest and the whole lines after it that fit in `budget`."""
    text = cursor.document.text
    starts = cursor.document.content.line_starts
    offset = cursor.offset
    if len(text) - offset <= budget:
        return text[offset:]
    last = bisect_right(starts, offset + budget) - 1  # the text up to its start fits
    if last <= cursor.row:
        return cursor.line_suffix[:budget]
    return text[offset : starts[last]]


def _prefix_window(cursor: _Cursor, budget: int) -> str:
    """Whole lines before the cursor line that fit in `budget` with the cursor line's
    start, beginning on a multiple of WINDOW_STEP lines (or at the top)."""
    text = cursor.document.text
    starts = cursor.document.content.line_starts
    if len(cursor.line_prefix) >= budget:
        return cursor.line_prefix[len(cursor.line_prefix) - budget :] if budget else ""
    room = budget - len(cursor.line_prefix)
    first = bisect_left(starts, cursor.line_start - room)
    if first > 0:
        first = min(-(-first // WINDOW_STEP) * WINDOW_STEP, cursor.row)
    return text[starts[first] : cursor.offset]


# ---------------------------------------------------------------- imports


def _imports(cursor: _Cursor) -> list[str]:
    """The file's top-level import statements, except one on the cursor line (being
    typed, it would change the start of the prompt at each keystroke)."""
    language = cursor.language or ""
    kinds = _IMPORT_NODES.get(language, frozenset())
    calls, call_pattern = _IMPORT_CALLS.get(language, (frozenset(), None))
    if cursor.root is None or not (kinds or calls):
        return []
    source = cursor.source
    found = []
    for node in cursor.root.children:
        kind = node.type
        if kind not in kinds and kind not in calls:
            continue
        if node.start_byte <= cursor.line_end_byte and node.end_byte > cursor.line_start_byte:
            continue  # on the cursor line
        text = source[node.start_byte : node.end_byte].decode("utf-8", "replace").rstrip()
        if kind in kinds or call_pattern.match(text):
            found.append(text)
    return found


# ---------------------------------------------------------------- related symbols


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


def _related(cursor: _Cursor, others: Iterable[Document], budget: int) -> str:
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
        (other.uri, _file_name(other.uri, None), _definitions(other)) for other in candidates
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


def _names_near(cursor: _Cursor) -> list[str]:
    """Identifiers on the lines around the cursor, the nearest lines first. The cursor
    line is left out: the word being typed there would change the prompt's start."""
    content = cursor.document.content
    band = cursor.row - cursor.row % WINDOW_STEP
    first = max(0, band - _NEAR_BEFORE)
    last = min(content.line_count, band + WINDOW_STEP + _NEAR_AFTER)
    text, starts = content.text, content.line_starts
    names: dict[str, None] = {}  # an ordered set
    for distance in range(1, max(cursor.row - first, last - 1 - cursor.row) + 1):
        for row in (cursor.row - distance, cursor.row + distance):
            if first <= row < last:
                end = starts[row + 1] if row + 1 < len(starts) else len(text)
                names.update(dict.fromkeys(_IDENTIFIER.findall(text, starts[row], end)))
    return list(names)


def _definitions(document: Document) -> dict[str, list[_Definition]]:
    found = _DEFINITIONS.get(document)
    if found is None:
        found = {}
        tree = document.tree
        language = document.language or ""
        if tree is not None and language in _SCOPES:
            _collect(tree.root_node, document.source, _SCOPES[language], (), found)
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
        name = _name(child, source)
        if kind in scopes:
            signature = _signature(child, source)
        else:
            signature = _declaration_signature(child, source)
        if name and signature:
            definition = _Definition(name, child.start_byte, outer, signature)
            found.setdefault(name, []).append(definition)
        body = child.child_by_field_name("body")
        if kind in scopes and kind not in _FUNCTION_KINDS and body is not None:
            _collect(body, source, scopes, (*outer, signature) if signature else outer, found)


def _name(node: tree_sitter.Node, source: bytes) -> str | None:
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
    names = _IDENTIFIER.findall(source[node.start_byte : node.end_byte].decode("utf-8", "replace"))
    return names[-1] if names else None


def _function_declarator(node: tree_sitter.Node | None) -> tree_sitter.Node | None:
    """The function_declarator inside pointer and reference declarators (C, C++)."""
    while node is not None and node.type != "function_declarator":
        node = node.child_by_field_name("declarator")
    return node


def _declaration_signature(node: tree_sitter.Node, source: bytes) -> str:
    """A body-less definition's first line: a prototype, a type alias, `const f = ...`."""
    start = source.rfind(b"\n", 0, node.start_byte) + 1
    end = source.find(b"\n", node.start_byte)
    end = node.end_byte if end == -1 else min(end, node.end_byte)
    return source[start:end].decode("utf-8", "replace").rstrip()[:_SIGNATURE_MAX_CHARS]


# ---------------------------------------------------------------- names


def _file_name(uri: str, root_uri: str | None) -> str:
    """The document's path relative to the workspace root if it is inside, else its
    file name."""
    path = _uri_path(uri)
    if root_uri:
        root = _uri_path(root_uri).rstrip("/")
        if root and path.startswith(root + "/"):
            return path[len(root) + 1 :]
    return PurePosixPath(path).name or uri


def _uri_path(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme else uri


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
    kinds = _SCOPES.get(document.language or "")
    tree = document.tree
    if not kinds or tree is None:
        return None
    content = document.content
    start_byte = content.byte_line_starts[min(start_line, len(content.byte_line_starts) - 1)]
    line = content.line(min(end_line, len(content.line_starts) - 1))
    end_byte = content.byte_line_starts[min(end_line, len(content.byte_line_starts) - 1)]
    end_byte += len(line.rstrip("\r\n").encode("utf-8", "surrogatepass"))
    # From the first non-blank character, so a selection of whole lines still sits inside.
    first = content.line(min(start_line, len(content.line_starts) - 1))
    start_byte += len(first) - len(first.lstrip()) if first.strip() else 0
    node = tree.root_node.descendant_for_byte_range(start_byte, max(start_byte, end_byte))
    while node is not None:
        if node.type in kinds and node.start_byte <= start_byte and end_byte <= node.end_byte:
            return Definition(
                node.start_point.row, node.end_point.row, _name(node, document.source)
            )
        node = node.parent
    return None
