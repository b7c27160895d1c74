"""Lines, line breaks and token counts of plain text: one place for each.

Lines end at "\\n", "\\r\\n" or "\\r", as LSP counts them, and nowhere else
(not at the other Unicode breaks `str.splitlines` knows). Pure, no LSP.
"""

from __future__ import annotations

import math
import re

LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")

# A fair average for code with the usual BPE vocabularies (R1's included).
CHARS_PER_TOKEN = 3.5


def split_lines(text: str) -> list[str]:
    """Lines with their endings, split where LSP splits (\\n, \\r\\n, \\r) and nowhere else."""
    return _LINE.findall(text)


def lines_of(text: str) -> list[str]:
    """The lines without their endings, as LSP counts them: an empty last line after a
    final line break (where a cursor can be), and one empty line for an empty text."""
    lines = [line.rstrip("\r\n") for line in split_lines(text)]
    if not text or ends_with_break(text):
        lines.append("")
    return lines


def newline_of(text: str) -> str:
    """The text's line break (its first one; "\\n" when it has none)."""
    found = LINE_BREAK.search(text)
    return found.group() if found else "\n"


def final_break(text: str) -> str:
    """The line break the text ends with ("" when it ends mid-line)."""
    for ending in ("\r\n", "\n", "\r"):
        if text.endswith(ending):
            return ending
    return ""


def ends_with_break(text: str) -> bool:
    return text.endswith(("\n", "\r"))


def normalize_breaks(text: str, newline: str = "\n") -> str:
    """Every line break in `text` made `newline`."""
    return LINE_BREAK.sub(newline, text)


def leading_whitespace(line: str) -> str:
    """The spaces and tabs a line starts with."""
    return line[: len(line) - len(line.lstrip(" \t"))]


def estimate_tokens(text: str) -> int:
    """A token count good enough for a budget, without a tokenizer."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)
