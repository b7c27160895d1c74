"""LSP positions <-> code points <-> UTF-8 bytes, in every encoding a client may pick."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lsprotocol.types import Position, PositionEncodingKind

from ds_lsp.positions import IndexedText, choose_position_encoding

UTF8, UTF16, UTF32 = (
    PositionEncodingKind.Utf8,
    PositionEncodingKind.Utf16,
    PositionEncodingKind.Utf32,
)
ZWJ_FAMILY = "\U0001f469\u200d\U0001f469\u200d\U0001f467"  # 👩‍👩‍👧: 5 code points

# text, code point offset, its line, and its character in UTF-8, UTF-16 and UTF-32
CASES = [
    ("hello", 3, 0, 3, 3, 3),
    ("中文abc", 2, 0, 6, 2, 2),
    ("中文abc", 3, 0, 7, 3, 3),
    ("a😀b", 1, 0, 1, 1, 1),
    ("a😀b", 2, 0, 5, 3, 2),
    ("a😀b", 3, 0, 6, 4, 3),
    (f"x{ZWJ_FAMILY}y", 2, 0, 5, 3, 2),
    (f"x{ZWJ_FAMILY}y", 6, 0, 19, 9, 6),
    ("e\u0301t", 1, 0, 1, 1, 1),  # between "e" and its combining accent
    ("e\u0301t", 2, 0, 3, 2, 2),
    ("a\r\nb\rc\nd", 3, 1, 0, 0, 0),
    ("a\r\nb\rc\nd", 5, 2, 0, 0, 0),
    ("a\r\nb\rc\nd", 7, 3, 0, 0, 0),
    ("a\r\nb\rc\nd", 8, 3, 1, 1, 1),
    ("😀\r😀\r\n😀", 2, 1, 0, 0, 0),
    ("😀\r😀\r\n😀", 3, 1, 4, 2, 1),
    ("😀\r😀\r\n😀", 5, 2, 0, 0, 0),
    ("😀\r😀\r\n😀", 6, 2, 4, 2, 1),
    ("a\n", 2, 1, 0, 0, 0),  # the empty last line after a final line break
]


@pytest.mark.parametrize(("text", "offset", "line", "utf8", "utf16", "utf32"), CASES)
def test_positions_and_offsets_in_every_encoding(text, offset, line, utf8, utf16, utf32):
    indexed = IndexedText.of(text)
    byte = len(text[:offset].encode("utf-8"))
    for encoding, character in ((UTF8, utf8), (UTF16, utf16), (UTF32, utf32)):
        position = Position(line=line, character=character)
        assert indexed.position_at(offset, encoding) == position
        assert indexed.offset_at(position, encoding) == offset
        assert indexed.byte_at(position, encoding) == byte
        assert indexed.position_of_byte(byte, encoding) == position


def test_lines_end_at_lf_crlf_and_cr():
    indexed = IndexedText.of("a\r\nb\rc\n")
    assert indexed.line_count == 4
    assert [indexed.line(n) for n in range(4)] == ["a", "b", "c", ""]
    assert indexed.line(4) == ""
    assert IndexedText.of("").line_count == 1
    # Other Unicode line separators are not LSP line ends.
    assert IndexedText.of("a\u2028b\x0cc\x85d").line_count == 1


@pytest.mark.parametrize(
    ("text", "encoding", "character", "offset"),
    [
        ("a😀b", UTF16, 2, 1),  # between the two halves of the surrogate pair
        ("a😀b", UTF8, 2, 1),
        ("a😀b", UTF8, 4, 1),
        ("中b", UTF8, 1, 0),
        ("中b", UTF8, 2, 0),
        (ZWJ_FAMILY, UTF16, 4, 2),  # inside the second woman: before her
    ],
)
def test_a_position_inside_a_character_rounds_down(text, encoding, character, offset):
    assert IndexedText.of(text).offset_at(Position(line=0, character=character), encoding) == offset


@pytest.mark.parametrize("encoding", [UTF8, UTF16, UTF32])
def test_positions_past_the_line_or_the_text_are_clamped(encoding):
    indexed = IndexedText.of("ab\r\ncd😀\n")
    assert indexed.offset_at(Position(line=0, character=10), encoding) == 2  # before "\r\n"
    assert indexed.offset_at(Position(line=1, character=99), encoding) == 7
    assert indexed.offset_at(Position(line=2, character=3), encoding) == 8
    assert indexed.offset_at(Position(line=9, character=0), encoding) == 8
    assert indexed.position_at(3, encoding) == Position(line=0, character=2)  # inside "\r\n"
    assert indexed.position_at(99, encoding) == Position(line=2, character=0)


class _Position:
    def __init__(self, line, character):
        self.line, self.character = line, character


def test_negative_line_or_character_is_a_clear_error():
    for position in (_Position(-1, 0), _Position(0, -2)):
        with pytest.raises(ValueError, match="negative"):
            IndexedText.of("abc").offset_at(position, UTF16)


def test_a_byte_inside_a_character_rounds_down():
    indexed = IndexedText.of("a😀b")
    assert [indexed.offset_of_byte(byte) for byte in range(7)] == [0, 1, 1, 1, 1, 2, 3]
    assert indexed.position_of_byte(3, UTF16) == Position(line=0, character=1)


def test_tree_sitter_points_count_only_lf_as_a_row():
    indexed = IndexedText.of("a\rb\nc😀d")
    byte_of_d = len("a\rb\nc😀".encode())
    assert indexed.point_of_byte(byte_of_d) == (1, 5)
    assert indexed.position_of_byte(byte_of_d, UTF16) == Position(line=2, character=3)


def test_a_lone_surrogate_from_the_client_does_not_break_anything():
    indexed = IndexedText.of("a\ud800b")
    assert indexed.offset_at(Position(line=0, character=2), UTF16) == 2
    assert indexed.offset_at(Position(line=0, character=4), UTF8) == 2
    assert indexed.byte_of_offset(2) == 4
    replaced, _ = indexed.replace(1, 2, "")
    assert replaced.text == "ab"


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (None, UTF16),
        ([], UTF16),
        (["utf-8", "utf-16"], UTF8),
        (["utf-16", "utf-8"], UTF16),
        (["utf-32"], UTF32),
        (["latin-1", "utf-32", "utf-8"], UTF32),
        (["latin-1"], UTF16),
    ],
)
def test_the_position_encoding_is_the_clients_first_supported_choice(offered, chosen):
    assert choose_position_encoding(offered) == chosen


# ---------------------------------------------------------------- properties

TEXTS = st.text(alphabet="ab \t\r\n中é😀\u0301\u200d", max_size=40)


@given(TEXTS, st.data())
def test_every_offset_round_trips_through_positions_and_bytes(text, data):
    indexed = IndexedText.of(text)
    offset = data.draw(st.integers(0, len(text)))
    if text[offset - 1 : offset + 1] == "\r\n":
        offset -= 1  # no position names the point between "\r" and "\n"
    byte = len(text[:offset].encode())
    assert indexed.byte_of_offset(offset) == byte
    assert indexed.offset_of_byte(byte) == offset
    for encoding in (UTF8, UTF16, UTF32):
        position = indexed.position_at(offset, encoding)
        assert indexed.offset_at(position, encoding) == offset
        before = text[:offset].replace("\r\n", "\n").replace("\r", "\n")
        assert position.line == before.count("\n")


@given(TEXTS, TEXTS, st.data())
def test_a_replaced_text_is_indexed_as_if_it_were_new(text, new, data):
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    replaced, edit = IndexedText.of(text).replace(start, end, new)
    expected_text = text[:start] + new + text[end:]
    fresh = IndexedText.of(expected_text)
    assert replaced.text == expected_text
    assert replaced.data == fresh.data
    assert replaced.line_starts.tolist() == fresh.line_starts.tolist()
    assert replaced.byte_line_starts.tolist() == fresh.byte_line_starts.tolist()

    def point(source: bytes, byte: int) -> tuple[int, int]:
        lines = source[:byte].split(b"\n")
        return len(lines) - 1, len(lines[-1])

    old_data = text.encode()
    start_byte, end_byte = len(text[:start].encode()), len(text[:end].encode())
    new_end_byte = start_byte + len(new.encode())
    assert edit == (
        start_byte,
        end_byte,
        new_end_byte,
        point(old_data, start_byte),
        point(old_data, end_byte),
        point(fresh.data, new_end_byte),
    )


def test_replacing_outside_the_text_is_refused():
    with pytest.raises(ValueError, match="cannot replace"):
        IndexedText.of("abc").replace(2, 5, "x")


@given(TEXTS, st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5), TEXTS), max_size=6))
def test_a_text_kept_without_its_bytes_edits_and_converts_as_one_with_them(text, edits):
    with_bytes, without = IndexedText.of(text), IndexedText.of(text).without_bytes()
    for at, length, new in edits:
        start = min(at, len(with_bytes.text))
        end = min(start + length, len(with_bytes.text))
        with_bytes, _ = with_bytes.replace(start, end, new)
        without, edit = without.replace(start, end, new)
        assert edit is None  # no bytes, so no syntax tree to edit
        assert without.text == with_bytes.text
        assert without.byte_length == len(with_bytes.data)
        assert without.line_starts.tolist() == with_bytes.line_starts.tolist()
    # The bytes, made when first asked for, are those of the text.
    assert without.data == with_bytes.data
    assert without.byte_line_starts.tolist() == with_bytes.byte_line_starts.tolist()
    for offset in range(len(without.text) + 1):
        assert without.byte_of_offset(offset) == with_bytes.byte_of_offset(offset)
