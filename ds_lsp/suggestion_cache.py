"""Suggestions reused without a model call: a cache by the text around the cursor, and
the rest of a shown suggestion after the user typed its start. Pure, no LSP."""

from __future__ import annotations

import collections
from collections.abc import Hashable
from dataclasses import dataclass


class SuggestionCache:
    """Least recently used suggestions by the text around the cursor."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._entries: collections.OrderedDict[Hashable, str] = collections.OrderedDict()

    def get(self, key: Hashable) -> str | None:
        suggestion = self._entries.get(key)
        if suggestion is not None:
            self._entries.move_to_end(key)
        return suggestion

    def put(self, key: Hashable, suggestion: str) -> None:
        self._entries[key] = suggestion
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def typed_ahead(shown_prefix: str, suggestion: str, new_prefix: str) -> str | None:
    """The rest of a shown suggestion after the user typed its start, with no model call.

    `shown_prefix` is the text before the cursor when `suggestion` was shown,
    `new_prefix` the text before the cursor now. "" when all of it was typed;
    None when what was typed is not the suggestion's start.
    """
    if not new_prefix.startswith(shown_prefix):
        return None
    typed = new_prefix[len(shown_prefix) :]
    if not suggestion.startswith(typed):
        return None
    return suggestion[len(typed) :]


# Reuse compares this much of the text on each side of the cursor at most. What the
# model sees is far less; the bound keeps a keystroke in a 10 MB file from copying
# and comparing megabytes.
AROUND_CHARS = 1 << 16


@dataclass(frozen=True)
class TextAround:
    """The text before and after a cursor, as reuse compares it. In a file longer
    than AROUND_CHARS, `before` starts at a multiple of AROUND_CHARS (so typing keeps
    its start) and `after` is cut after AROUND_CHARS."""

    start: int  # where `before` starts in the document
    before: str
    after: str

    @classmethod
    def at(cls, text: str, offset: int) -> TextAround:
        start = max(0, (offset - AROUND_CHARS) // AROUND_CHARS * AROUND_CHARS)
        return cls(start, text[start:offset], text[offset : offset + AROUND_CHARS])

    @property
    def offset(self) -> int:
        """The cursor's code point offset in the document."""
        return self.start + len(self.before)

    def typed_since(self, earlier: TextAround) -> str | None:
        """The text typed before the cursor since `earlier`, when the text before the
        cursor is `earlier`'s plus it; else None. (The text after is not compared.)"""
        if self.start != earlier.start or not self.before.startswith(earlier.before):
            return None
        return self.before[len(earlier.before) :]
