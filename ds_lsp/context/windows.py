"""The document's own text in the prompt: the windows before and after the cursor,
and the name the document goes by.

The prefix window starts on a line number that moves in steps of `WINDOW_STEP`
lines, not with each character, so that typing keeps the prompt's start (and the
model's KV cache) unchanged.

Pure: no LSP types.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from ds_lsp.context.cursor import Cursor

# The prefix window starts on a multiple of this many lines: moving it re-evaluates
# the whole prefix, so it moves once per WINDOW_STEP lines typed, not on every line.
WINDOW_STEP = 16


def suffix_window(cursor: Cursor, budget: int) -> str:
    """The cursor line's rest and the whole lines after it that fit in `budget`."""
    content = cursor.document.content
    text = content.text
    offset = cursor.offset
    if len(text) - offset <= budget:
        return text[offset:]
    last = content.line_of(offset + budget)  # the text up to its start fits
    if last <= cursor.row:
        return cursor.line_suffix[:budget]
    return text[offset : content.line_start(last)]


def prefix_window(cursor: Cursor, budget: int) -> str:
    """Whole lines before the cursor line that fit in `budget` with the cursor line's
    start, beginning on a multiple of WINDOW_STEP lines (or at the top)."""
    content = cursor.document.content
    if len(cursor.line_prefix) >= budget:
        return cursor.line_prefix[len(cursor.line_prefix) - budget :] if budget else ""
    room = budget - len(cursor.line_prefix)
    first = content.first_line_from(cursor.line_start - room)
    if first > 0:
        first = min(-(-first // WINDOW_STEP) * WINDOW_STEP, cursor.row)
    return content.text[content.line_start(first) : cursor.offset]


def display_name(uri: str, root_uri: str | None) -> str:
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
