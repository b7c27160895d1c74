"""The cursor in a document, and what to complete there.

`Cursor` answers what every part of gathering asks about a position (its line, the
node and scopes around it, whether it is inside a comment or a string);
`completion_mode` decides from that whether to complete one line, a block, or
nothing (inside a comment or a string).

Pure: no LSP types. Read `Document.tree` on one thread (the server's event loop).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

import tree_sitter

from ds_lsp.context.definitions import SCOPES, header_end, scope_signature
from ds_lsp.documents import Document

Mode = Literal["none", "single_line", "multi_line"]

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
INDENT = re.compile(r"[ \t]*")


# ---------------------------------------------------------------- the mode


def completion_mode(document: Document, offset: int, invoked: bool) -> Mode:
    """What to complete at `offset` (code points into document.text).

    "none" inside a comment or a string, unless the user asked (`invoked`): then one
    line. One line in the middle of a line; a block after a line that opens one,
    and on an empty line inside a body. Plain text: one line.
    """
    cursor = Cursor(document, offset)
    return decide_mode(cursor, invoked)


def decide_mode(cursor: Cursor, invoked: bool) -> Mode:
    """`completion_mode` at a cursor already made."""
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
        depth = _width(INDENT.match(cursor.line_prefix).group())
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


class Cursor:
    """A position in a document, with what every part of gathering asks about it."""

    def __init__(self, document: Document, offset: int) -> None:
        content = document.content
        text = content.text
        self.document = document
        self.language = document.language
        self.offset = offset = min(max(offset, 0), len(text))
        self.row = row = content.line_of(offset)
        self.line_start = content.line_start(row)
        line = content.line(row)
        self.line_prefix = text[self.line_start : offset]
        self.line_suffix = line[len(self.line_prefix) :]
        tree = document.tree
        self.root: tree_sitter.Node | None = tree.root_node if tree is not None else None

    @property
    def source(self) -> bytes:
        return self.document.source

    # In bytes, as the syntax tree counts; made only when asked for (a document with
    # no tree may not even have its bytes made: see positions.IndexedText).
    @cached_property
    def byte(self) -> int:
        return self.document.content.byte_of_offset(self.offset)

    @cached_property
    def line_start_byte(self) -> int:
        return self.document.content.byte_line_start(self.row)

    @cached_property
    def line_end_byte(self) -> int:
        return self.byte + len(self.line_suffix.encode("utf-8", "surrogatepass"))

    def in_comment_or_string(self) -> bool:
        """Whether the character before the cursor belongs to a comment or a string
        (the cursor right after a closing quote or `*/` is outside)."""
        if self.root is None or self.byte == 0:
            return False
        byte = self.byte
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
        kinds = SCOPES.get(self.language or "")
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
        if header_end(node, self.source) > self.line_start_byte:
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
                return _width(INDENT.match(line).group())
        return None

    def scopes(self) -> list[str]:
        return [scope_signature(node, self.source) for node in self.scope_nodes]

    def in_body(self) -> bool:
        """Whether a blank cursor line is inside a body: an enclosing scope, an
        indented line, or the line after one that opens a block."""
        if self.line_prefix or self.scope_nodes:
            return True
        text = self.document.text
        end = self.line_start
        while end > 0 and text[end - 1] in " \t\r\n\f\v":
            end -= 1
        return _opens_block(text[text.rfind("\n", 0, end) + 1 : end], self.language)


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
