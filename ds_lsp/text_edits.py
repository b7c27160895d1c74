"""The smallest set of replacements that turns one text into another.

An edit applied as "replace the whole selection" moves the user's cursor,
unfolds folds and loses marks on lines that did not change. So the change is
sent as a diff instead: difflib's line matching, then, inside a changed line
that became one other line, only the characters that differ.

Pure text logic: offsets are indexes into the old text (Python characters);
the caller turns them into LSP positions.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass

from ds_lsp.editing import split_lines


@dataclass(frozen=True)
class Replacement:
    start: int  # offset into the old text
    end: int  # offset into the old text (exclusive)
    text: str  # what goes there


def minimal_replacements(old: str, new: str) -> list[Replacement]:
    """Non-overlapping replacements, in order, that turn `old` into `new`."""
    old_lines, new_lines = split_lines(old), split_lines(new)
    starts = [0]
    for line in old_lines:
        starts.append(starts[-1] + len(line))
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    replacements = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        removed = "".join(old_lines[i1:i2])
        added = "".join(new_lines[j1:j2])
        if tag == "replace" and i2 - i1 == 1 and j2 - j1 == 1:
            replacements.append(_within_line(starts[i1], removed, added))
        else:
            replacements.append(Replacement(starts[i1], starts[i2], added))
    return replacements


def _within_line(offset: int, old: str, new: str) -> Replacement:
    """One line changed into one line: keep its common start and end."""
    prefix = len(os.path.commonprefix([old, new]))
    room = min(len(old), len(new)) - prefix
    suffix = len(os.path.commonprefix([old[::-1], new[::-1]]))
    suffix = min(suffix, room)
    return Replacement(offset + prefix, offset + len(old) - suffix, new[prefix : len(new) - suffix])


def apply_replacements(text: str, replacements: list[Replacement]) -> str:
    """`text` with the replacements made (what an editor does with the edits)."""
    out, position = [], 0
    for replacement in replacements:
        out.append(text[position : replacement.start])
        out.append(replacement.text)
        position = replacement.end
    out.append(text[position:])
    return "".join(out)
