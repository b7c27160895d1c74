"""Every conversion between LSP positions, code point offsets and UTF-8 byte offsets.

LSP positions are (line, character) where `character` counts units of the negotiated
position encoding: UTF-16 code units (the default), UTF-8 bytes or UTF-32 code points.
Python strings index by code point; tree-sitter works in UTF-8 bytes and points of
(row, byte column) where only "\\n" starts a row. `IndexedText` holds a text with its
UTF-8 bytes and the start of every line in both, and does all of these conversions.

Lines end at "\\n", "\\r\\n" or "\\r", as the LSP spec says. A character past the end
of its line means the line's end; a line past the end of the text means the text's
end (clients may send both). A UTF-16 position inside a surrogate pair, or a UTF-8
one inside a multi-byte character, rounds down to the start of that character.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple, Protocol

import numpy as np
from lsprotocol.types import Position, PositionEncodingKind

# "surrogatepass": text from JSON may hold a lone surrogate; it must not crash encoding.
_ERRORS = "surrogatepass"
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_BYTES = re.compile(rb"\r\n|\r|\n")

SUPPORTED_ENCODINGS: tuple[PositionEncodingKind, ...] = (
    PositionEncodingKind.Utf16,
    PositionEncodingKind.Utf8,
    PositionEncodingKind.Utf32,
)


class LspPosition(Protocol):
    """Anything with a line and a character, like lsprotocol's Position."""

    line: int
    character: int


def choose_position_encoding(offered: Sequence[str] | None) -> PositionEncodingKind:
    """The encoding to answer in `capabilities.positionEncoding`, from the client's offer.

    UTF-16 when the client offers nothing (the LSP default, which every client supports).
    Otherwise the first one we support in the client's order: clients list their own
    preference first (Neovim offers utf-8 first, its buffers' encoding), and every
    conversion here works line by line, so all three cost us the same.
    """
    for name in offered or ():
        for encoding in SUPPORTED_ENCODINGS:
            if name == encoding.value:
                return encoding
    return PositionEncodingKind.Utf16


def code_points_from_units(line: str, units: int, encoding: PositionEncodingKind) -> int:
    """How many code points of `line` the first `units` units cover (clamped, rounded down).

    Counted by encoding and decoding, not character by character: a line of a
    megabyte (minified code) costs a millisecond, not a tenth of a second."""
    if encoding == PositionEncodingKind.Utf32 or line.isascii():
        return min(units, len(line))
    if encoding == PositionEncodingKind.Utf16:
        covered = line.encode("utf-16-le", _ERRORS)[: max(units, 0) * 2]
        decoded = covered.decode("utf-16-le", _ERRORS)
        count = len(decoded)
        # A cut between the halves of a surrogate pair left its first half alone.
        if count and decoded[-1] != line[count - 1]:
            count -= 1
        return count
    data = line.encode("utf-8", _ERRORS)
    end = min(max(units, 0), len(data))
    while 0 < end < len(data) and _continues(data, end):
        end -= 1  # inside a multi-byte character: round down to its start
    return len(data[:end].decode("utf-8", _ERRORS))


def units_from_code_points(line: str, column: int, encoding: PositionEncodingKind) -> int:
    """How many units of `encoding` the first `column` code points of `line` take."""
    prefix = line[:column]
    if encoding == PositionEncodingKind.Utf32 or prefix.isascii():
        return len(prefix)
    if encoding == PositionEncodingKind.Utf16:
        return len(prefix.encode("utf-16-le", _ERRORS)) // 2
    return len(prefix.encode("utf-8", _ERRORS))


def _line_starts(text: str | bytes) -> np.ndarray:
    pattern = _LINE_BREAK if isinstance(text, str) else _LINE_BREAK_BYTES
    ends = (match.end() for match in pattern.finditer(text))
    return np.fromiter(itertools.chain((0,), ends), dtype=np.int64)


def _updated_line_starts(
    starts: np.ndarray, start: int, end: int, new_text: str | bytes, new_end: int
) -> np.ndarray:
    """Line starts after text[start:end] was replaced, making new_text[start:new_end].

    Whether offset s starts a line depends only on the characters at s - 1 and s (a
    "\\r" followed by "\\n" ends no line), so starts before `start` stay, starts after
    `end` shift, and only [start, new_end] is scanned again: one character to each
    side of the replacement, so an edit joining "\\r" and "\\n" is seen. The shift
    is one vector addition: a keystroke in a file of 300,000 lines costs 0.1 ms
    here, where a Python list took 8 ms.
    """
    pattern = _LINE_BREAK if isinstance(new_text, str) else _LINE_BREAK_BYTES
    first = max(start, 1)  # offset 0 always starts a line
    head = starts[: int(np.searchsorted(starts, first, side="left"))]
    middle = np.fromiter(
        (
            match.end()
            for match in pattern.finditer(new_text, first - 1, new_end + 1)
            if first <= match.end() <= new_end
        ),
        dtype=np.int64,
    )
    tail = starts[int(np.searchsorted(starts, end, side="right")) :] + (new_end - end)
    return np.concatenate((head, middle, tail))


@dataclass(frozen=True, slots=True, eq=False)
class IndexedText:
    """A text, its UTF-8 bytes, and where each line starts in both. Never changed in place.

    The bytes (and their line starts) may be left out (`without_bytes`): then they
    are made when first asked for, and edits keep the text alone. A huge document
    with no syntax tree never needs them, and a keystroke there then copies the
    text only (bench/documents.py).
    """

    text: str
    # Where each line starts, as code point offsets: a numpy array (see
    # _updated_line_starts); read it through the methods below.
    line_starts: np.ndarray
    byte_length: int  # the length of the UTF-8 bytes, known without making them
    # Whether the text may hold a "\r" (then tree-sitter's rows and LSP lines can differ).
    may_have_cr: bool = True
    _data: bytes | None = None
    _byte_line_starts: np.ndarray | None = None

    @classmethod
    def of(cls, text: str) -> IndexedText:
        data = text.encode("utf-8", _ERRORS)
        starts, byte_starts = _line_starts(text), _line_starts(data)
        return cls(text, starts, len(data), "\r" in text, data, byte_starts)

    @property
    def data(self) -> bytes:
        """The text in UTF-8 (tree-sitter's)."""
        if self._data is None:
            object.__setattr__(self, "_data", self.text.encode("utf-8", _ERRORS))
        return self._data

    @property
    def byte_line_starts(self) -> np.ndarray:
        """Where each line starts, as byte offsets."""
        if self._byte_line_starts is None:
            object.__setattr__(self, "_byte_line_starts", _line_starts(self.data))
        return self._byte_line_starts

    def without_bytes(self) -> IndexedText:
        """The same text, its bytes left to be made when asked for."""
        return replace(self, _data=None, _byte_line_starts=None)

    # ------------------------------------------------------------ lines

    @property
    def line_count(self) -> int:
        return len(self.line_starts)

    def line(self, number: int) -> str:
        """Line `number` (0-based) without its line break; "" past the end."""
        if not 0 <= number < len(self.line_starts):
            return ""
        start = self.line_start(number)
        if number + 1 == len(self.line_starts):
            return self.text[start:]
        end = self.line_start(number + 1) - 1
        if self.text[end] == "\n" and end > start and self.text[end - 1] == "\r":
            end -= 1
        return self.text[start:end]

    def line_start(self, number: int) -> int:
        """The code point offset where line `number` starts."""
        return int(self.line_starts[number])

    def byte_line_start(self, number: int) -> int:
        """The byte offset where line `number` starts."""
        return int(self.byte_line_starts[number])

    def line_of(self, offset: int) -> int:
        """The line that code point `offset` is on."""
        return int(np.searchsorted(self.line_starts, offset, side="right")) - 1

    def first_line_from(self, offset: int) -> int:
        """The first line that starts at `offset` or after it (line_count if none)."""
        return int(np.searchsorted(self.line_starts, offset, side="left"))

    def _line_of_byte(self, byte: int) -> int:
        return int(np.searchsorted(self.byte_line_starts, byte, side="right")) - 1

    # ------------------------------------------------------------ conversions

    def offset_at(self, position: LspPosition, encoding: PositionEncodingKind) -> int:
        """The code point offset of an LSP position (clamped to the line and the text)."""
        line, character = position.line, position.character
        if line < 0 or character < 0:
            raise ValueError(f"position {line}:{character} is negative")
        if line >= len(self.line_starts):
            return len(self.text)
        content = self.line(line)
        return self.line_start(line) + code_points_from_units(content, character, encoding)

    def position_at(self, offset: int, encoding: PositionEncodingKind) -> Position:
        """The LSP position of a code point offset (clamped to the text)."""
        offset = min(max(offset, 0), len(self.text))
        line = self.line_of(offset)
        content = self.line(line)
        column = min(offset - self.line_start(line), len(content))  # inside "\r\n": line end
        return Position(line=line, character=units_from_code_points(content, column, encoding))

    def byte_of_offset(self, offset: int) -> int:
        """The UTF-8 byte offset of a code point offset (clamped to the text)."""
        offset = min(max(offset, 0), len(self.text))
        if self.byte_length == len(self.text):  # ASCII only: a byte per code point
            return offset
        line = self.line_of(offset)
        in_line = self.text[self.line_start(line) : offset]
        width = len(in_line) if in_line.isascii() else len(in_line.encode("utf-8", _ERRORS))
        return self.byte_line_start(line) + width

    def offset_of_byte(self, byte: int) -> int:
        """The code point offset of a byte offset; inside a character rounds down."""
        byte = min(max(byte, 0), len(self.data))
        if self.byte_length == len(self.text):  # ASCII only: a byte per code point
            return byte
        line = self._line_of_byte(byte)
        line_start = self.byte_line_start(line)
        while byte > line_start and _continues(self.data, byte):
            byte -= 1
        in_line = self.data[line_start:byte].decode("utf-8", _ERRORS)
        return self.line_start(line) + len(in_line)

    def byte_at(self, position: LspPosition, encoding: PositionEncodingKind) -> int:
        """The UTF-8 byte offset of an LSP position, as tree-sitter counts."""
        return self.byte_of_offset(self.offset_at(position, encoding))

    def position_of_byte(self, byte: int, encoding: PositionEncodingKind) -> Position:
        """The LSP position of a byte offset, e.g. a tree-sitter node's start_byte.

        Use this, not the node's start_point: tree-sitter's rows count "\\n" only.
        """
        return self.position_at(self.offset_of_byte(byte), encoding)

    def point_of_byte(self, byte: int) -> tuple[int, int]:
        """tree-sitter's point for a byte offset: (row counting "\\n" only, byte column)."""
        if self.may_have_cr:  # rows and lines differ where a lone "\r" ends a line
            row = self.data.count(b"\n", 0, byte)
        else:
            row = self._line_of_byte(byte)
        return row, byte - (self.data.rfind(b"\n", 0, byte) + 1)

    # ------------------------------------------------------------ edits

    def replace(self, start: int, end: int, new: str) -> tuple[IndexedText, ByteEdit | None]:
        """The text with code points [start, end) replaced by `new`, and that edit in
        bytes (None for a text kept without its bytes)."""
        if not 0 <= start <= end <= len(self.text):
            raise ValueError(f"cannot replace [{start}, {end}) in a text of {len(self.text)}")
        # One copy of the text per change, and of the bytes (slices of a memoryview
        # copy nothing): 10 MB texts stay cheap.
        text = "".join((self.text[:start], new, self.text[end:]))
        starts = _updated_line_starts(self.line_starts, start, end, text, start + len(new))
        may_have_cr = self.may_have_cr or "\r" in new
        if self._data is None:
            length = self.byte_length - _utf8_length(self.text[start:end]) + _utf8_length(new)
            return IndexedText(text, starts, length, may_have_cr), None
        start_byte, end_byte = self.byte_of_offset(start), self.byte_of_offset(end)
        new_data = new.encode("utf-8", _ERRORS)
        new_end_byte = start_byte + len(new_data)
        with memoryview(self.data) as old_data:
            data = b"".join((old_data[:start_byte], new_data, old_data[end_byte:]))
        byte_starts = _updated_line_starts(
            self.byte_line_starts, start_byte, end_byte, data, new_end_byte
        )
        replaced = IndexedText(text, starts, len(data), may_have_cr, data, byte_starts)
        return replaced, self._byte_edit(start_byte, end_byte, new_data)

    def replace_many(
        self, spans: Sequence[tuple[int, int, str]]
    ) -> tuple[IndexedText, list[ByteEdit]]:
        """The text with each (start, end, new) span replaced, and those edits in bytes,
        in the spans' order. The spans go from the bottom of the text up, without
        overlapping: each one's offsets hold in the text the ones before it left, as in
        an editor's didChange for a multi-edit. One copy of the text for all of them
        (a 3,000-edit rename: 3 ms, where one replace() after another took 80 ms);
        the line index is made afresh, so this is for texts of a few MB at most."""
        previous_start = len(self.text)
        for start, end, _ in spans:
            if not 0 <= start <= end <= previous_start:
                raise ValueError(f"replacements out of order or overlapping at [{start}, {end})")
            previous_start = start
        text_parts: list[str] = []
        data_parts: list = []
        edits: list[ByteEdit] = []
        text_at, byte_at = len(self.text), len(self.data)
        with memoryview(self.data) as old_data:
            for start, end, new in spans:
                start_byte, end_byte = self.byte_of_offset(start), self.byte_of_offset(end)
                new_data = new.encode("utf-8", _ERRORS)
                text_parts += (self.text[end:text_at], new)
                data_parts += (old_data[end_byte:byte_at], new_data)
                edits.append(self._byte_edit(start_byte, end_byte, new_data))
                text_at, byte_at = start, start_byte
            text_parts.append(self.text[:text_at])
            data_parts.append(old_data[:byte_at])
            text = "".join(reversed(text_parts))
            data = b"".join(reversed(data_parts))
        starts, byte_starts = _line_starts(text), _line_starts(data)
        return IndexedText(text, starts, len(data), "\r" in text, data, byte_starts), edits

    def _byte_edit(self, start_byte: int, end_byte: int, new_data: bytes) -> ByteEdit:
        """tree-sitter's edit for replacing bytes [start_byte, end_byte) of this text."""
        start_row, start_column = self.point_of_byte(start_byte)
        # The end points from the start one: counting only the replaced bytes.
        old_end_point = (
            start_row + self.data.count(b"\n", start_byte, end_byte),
            end_byte - (self.data.rfind(b"\n", 0, end_byte) + 1),
        )
        last_break = new_data.rfind(b"\n")
        new_end_point = (
            start_row + new_data.count(b"\n"),
            start_column + len(new_data) if last_break < 0 else len(new_data) - last_break - 1,
        )
        return ByteEdit(
            start_byte,
            end_byte,
            start_byte + len(new_data),
            (start_row, start_column),
            old_end_point,
            new_end_point,
        )


class ByteEdit(NamedTuple):
    """One replacement in bytes and points: the arguments of tree_sitter.Tree.edit, in order."""

    start_byte: int
    old_end_byte: int
    new_end_byte: int
    start_point: tuple[int, int]
    old_end_point: tuple[int, int]
    new_end_point: tuple[int, int]


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", _ERRORS))


def _continues(data: bytes, byte: int) -> bool:
    """Whether data[byte] is a UTF-8 continuation byte (so `byte` is inside a character)."""
    return byte < len(data) and data[byte] & 0xC0 == 0x80
