"""Steps 5 and 6 of cleaning a suggestion: line and bracket rules, then the tidy-up.

Pure text logic (no I/O, no LSP); the rules are in ds_lsp/suggestions.py's docstring.
`Lines` reads the answer one character at a time and says where the suggestion
ends; `tidy` turns what it kept into the text shown.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ds_lsp.completion_prompts import header_lines
from ds_lsp.context.gather import CompletionContext

TAB_WIDTH = 4

_PAIRS = {")": "(", "]": "[", "}": "{"}
_OPENERS = frozenset(_PAIRS.values())
_BRACKETS = _OPENERS | frozenset(_PAIRS)
# What often follows the cursor and is copied by the model: dropped from the end.
_QUOTES_AND_SEPARATORS = frozenset("\"'`;,:")
_LINE_COMMENTS = {
    "python": "#",
    "ruby": "#",
    "bash": "#",
    "lua": "--",
    **{
        name: "//"
        for name in ("javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "csharp")
    },
}

# A prompt's header line, whatever file it names (models invent others).
_PATH_HEADER = re.compile(r"(#|//|--) Path: ")
# A statement after which nothing at the same depth runs.
_BLOCK_END = re.compile(r"(return|raise|break|continue)\b")


# ---------------------------------------------------------------- step 5: lines and brackets


class _Lexer:
    """Just enough lexing to count brackets: skips strings (one line long) and line comments."""

    def __init__(self, language: str | None) -> None:
        self._comment = _LINE_COMMENTS.get(language or "")
        self._quotes = '"`' if language == "rust" else "\"'`"  # 'a is a Rust lifetime
        self._quote: str | None = None
        self._escaped = False
        self._in_comment = False
        self._previous = ""

    def is_bracket(self, character: str) -> bool:
        """Read one character; True when it is a bracket in code."""
        previous, self._previous = self._previous, character
        if character == "\n":
            self._quote, self._escaped, self._in_comment = None, False, False
            return False
        if self._in_comment:
            return False
        if self._quote is not None:
            if self._escaped:
                self._escaped = False
            elif character == "\\":
                self._escaped = True
            elif character == self._quote:
                self._quote = None
            return False
        if character in self._quotes:
            self._quote = character
            return False
        if self._comment and character == self._comment[-1]:
            if len(self._comment) == 1 or previous == self._comment[0]:
                self._in_comment = True
                return False
        return character in _BRACKETS

    def read(self, text: str) -> None:
        for character in text:
            self.is_bracket(character)


def _open_brackets(context: CompletionContext) -> list[str]:
    """Brackets opened before the cursor and not closed after it, innermost last."""
    lexer = _Lexer(context.language)
    stack: list[str] = []
    for character in context.prefix:
        if lexer.is_bracket(character):
            if character in _OPENERS:
                stack.append(character)
            elif stack and stack[-1] == _PAIRS[character]:
                stack.pop()
    own: list[str] = []  # opened after the cursor
    closed = 0
    for character in context.suffix:
        if lexer.is_bracket(character):
            if character in _OPENERS:
                own.append(character)
            elif own:
                own.pop()
            else:
                closed += 1
    return stack[: max(0, len(stack) - closed)]


def indentation_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def opens_block(context: CompletionContext) -> bool:
    """Multi-line at the end of a line with code: the suggestion is the block it opens."""
    return (
        context.mode == "multi_line"
        and bool(context.line_prefix.strip())
        and not context.line_suffix.strip()
        # After `(` or `[` the arguments often go on on the same line.
        and not context.line_prefix.rstrip().endswith(("(", "["))
    )


def _columns(indentation: str) -> int:
    return len(indentation.expandtabs(TAB_WIDTH))


def _next_line(context: CompletionContext) -> str:
    """The first non-blank line after the cursor line, stripped."""
    for line in context.suffix.split("\n")[1:]:
        if line.strip():
            return line.strip()
    return ""


class Lines:
    """Step 5: line and bracket rules, one character at a time."""

    def __init__(
        self, context: CompletionContext, frame: Callable[[], str | None], next_line: bool = False
    ) -> None:
        self._context = context
        self._frame = frame  # the model's indentation of the cursor line, when known
        self._single = context.mode != "multi_line" or bool(context.line_suffix.strip())
        # One line wanted at the end of a line: if the model adds nothing to it, the
        # line after it (at the same depth or deeper) is the suggestion.
        self._next_line = next_line
        self._on_next_line = False
        self._blank = not context.line_prefix.strip()
        # After a line that opens a block the suggestion starts on a new line, even
        # when the model starts right away (an indented first line, or after a fence).
        self._starts_new_line = opens_block(context)
        indentation = indentation_of(context.line_prefix)
        self._base = _columns(indentation)
        self._tabs = "\t" in indentation
        self._next = _next_line(context)
        self._furniture = header_lines(context)  # the prompt's own comment header
        self._lexer = _Lexer(context.language)
        self._lexer.read(context.line_prefix)  # are we in a string or a comment?
        self._own: list[str] = []  # brackets the suggestion opened
        self._outer: list[str] | None = None  # open around the cursor; computed when needed
        self._frame_columns: int | None = None
        self.lines = [""]
        self._pending_indent: str | None = None  # a later line's, until its first visible character
        self._depth_at_line_start = 0
        self.cut_closer: str | None = None  # the closer the suggestion was cut at
        self.done = False

    def feed(self, text: str, final: bool) -> str:
        for character in text:
            if self.done:
                break
            self._read(character)
        if final and not self.done:
            self._end_line()
            self.done = True
        return ""

    def _read(self, character: str) -> None:
        if character == "\r":
            return
        if self._starts_new_line:
            self._starts_new_line = False
            if character != "\n":
                self._read("\n")
        if character == "\n":
            self._end_line()
            if self._single and self._next_line and self.lines == [""] and not self.done:
                self._next_line, self._on_next_line = False, True  # that line, then stop
            elif self.done or self._single:  # single line: stop at its end
                self.done = True
                return
            self._lexer.is_bracket(character)
            self.lines.append("")
            self._pending_indent = ""
            self._depth_at_line_start = len(self._own)
            return
        if self._pending_indent is not None:
            if character in " \t":
                self._pending_indent += character
                return
            indentation = self._rebased(self._pending_indent, character)
            if indentation is None:
                self.done = True  # dedented out of the block
                return
            self.lines[-1] = indentation
            self._pending_indent = None
        if self._lexer.is_bracket(character):
            if character in _OPENERS:
                self._own.append(character)
            elif not self._close(character):
                self.cut_closer = character  # already in the file, or wrong: stop here
                self._end_line()
                self.done = True
                return
        self.lines[-1] += character

    def _close(self, closer: str) -> bool:
        """Whether `closer` closes a bracket the suggestion or the code before it opened."""
        stack = self._own
        if not stack:
            if self._outer is None:
                self._outer = _open_brackets(self._context)
            stack = self._outer
        if stack and stack[-1] == _PAIRS[closer]:
            stack.pop()
            return True
        return False

    def _rebased(self, indentation: str, first: str) -> str | None:
        """A later line's indentation in the file, or None when it leaves the block."""
        columns = _columns(indentation)
        if self._frame_columns is None:
            frame = self._frame()
            if frame is not None:
                self._frame_columns = _columns(frame)
            elif columns > self._base:  # the first body line says: indented like the file
                self._frame_columns = self._base
            elif columns > 0:  # ... from column 0
                self._frame_columns = 0
            else:  # ... not at all: give the body one level
                self._frame_columns = -TAB_WIDTH
        columns = max(0, self._base + columns - self._frame_columns)
        if first not in _BRACKETS:
            sibling = self._on_next_line and columns == self._base
            if columns < self._base or (columns == self._base and not self._blank and not sibling):
                return None
        tabs = self._tabs or (self._base == 0 and "\t" in indentation)
        if tabs:
            return "\t" * (columns // TAB_WIDTH) + " " * (columns % TAB_WIDTH)
        return " " * columns

    def _end_line(self) -> None:
        """A line is complete: stop before it if it repeats the code after the cursor."""
        line = self.lines[-1].strip()
        later = len(self.lines) > 1 or self._blank
        repeats = later and line == self._next and self._depth_at_line_start == 0
        furniture = later and (line in self._furniture or _PATH_HEADER.match(line) is not None)
        if line and (repeats or furniture):
            self.lines[-1] = ""
            self.done = True
            return
        # Nothing after a return (raise, break, continue) at the cursor's depth runs:
        # the model is writing past the end of the block.
        at_base = len(self.lines) == 1 or _columns(indentation_of(self.lines[-1])) <= self._base
        if at_base and self._depth_at_line_start == 0 and _BLOCK_END.match(line):
            self.done = True


# ---------------------------------------------------------------- step 6


def tidy(lines_step: Lines, context: CompletionContext) -> str:
    """Step 6: the suggestion shown, from the lines step's output."""
    mid_line = bool(context.line_suffix.strip())
    lines = [line.rstrip() for line in lines_step.lines]
    if mid_line:
        lines[-1] = lines_step.lines[-1]  # a space before the text after the cursor counts
    while len(lines) > 1 and not lines[-1]:
        lines.pop()
    text = "\n".join(lines)
    if mid_line:
        text = _drop_suffix_copy(text, context.line_suffix, lines_step.cut_closer)
    return text if text.strip() else ""


def _drop_suffix_copy(text: str, line_suffix: str, cut_closer: str | None) -> str:
    """Drop a tail of `text` that copies the start of the text after the cursor.

    A copy with a closer that closes a bracket opened before it is kept: the
    bracket rule let it through, so it closes one the suggestion opened
    (`f(` + `g(1)` before `)`)."""
    after = line_suffix.strip()
    spacing = line_suffix[: len(line_suffix) - len(line_suffix.lstrip())]
    for length in range(len(after), 0, -1):
        start = after[:length]
        if _closes_from_outside(start):
            continue
        if length == len(after):  # all of it, when the answer went on to the line's end
            copied = cut_closer is None and text.rstrip().endswith(start)
            if copied:
                text = text.rstrip()
        else:  # its start, up to the closer it was cut at, or quotes and separators
            copied = text.endswith(start) and (
                after[length] == cut_closer or set(start) <= _QUOTES_AND_SEPARATORS
            )
        if copied:
            text = text[: len(text) - length]
            # The space before the copy is the file's own, before the text after the cursor.
            if spacing and text.endswith(spacing):
                text = text[: len(text) - len(spacing)]
            return text
    return text


def _closes_from_outside(text: str) -> bool:
    """Whether `text` has a closing bracket for a bracket opened before it."""
    depth = 0
    for character in text:
        if character in _OPENERS:
            depth += 1
        elif character in _PAIRS:
            depth -= 1
            if depth < 0:
                return True
    return False
