"""Every code point class, in every position encoding, round-trips exactly: in
the style of rust-analyzer's `test_every_chars` (crates/ide-db/src/line_index.rs),
then edits through the document store, then an inline completion end to end.

Classes: ASCII, Latin-1, CJK, emoji as UTF-16 surrogate pairs, ZWJ sequences,
combining marks, other planes, characters Python (not LSP) takes for line
breaks (U+2028, U+0085, form feed), and "\\n", "\\r\\n" and "\\r" line ends.
"""

from __future__ import annotations

import re
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from lsprotocol.types import Position, PositionEncodingKind
from pytest_lsp import ClientServerConfig, LanguageClient

from ds_lsp.documents import DocumentStore
from ds_lsp.positions import IndexedText
from tests.fake_openai_server import Reply
from tests.test_completion_lsp import ghost_text, open_doc, start
from tests.test_server import server_env

ENCODINGS = [PositionEncodingKind.Utf16, PositionEncodingKind.Utf8, PositionEncodingKind.Utf32]
CODECS = {
    PositionEncodingKind.Utf16: ("utf-16-le", 2),
    PositionEncodingKind.Utf8: ("utf-8", 1),
    PositionEncodingKind.Utf32: ("utf-32-le", 4),
}
CLASSES = {
    "ascii": "def f(x): return x ~",
    "latin1": "é ß ÿ ñ",
    "cjk": "中文字 漢字",
    "emoji": "😀🚀🦀",  # each two UTF-16 units, four UTF-8 bytes
    "zwj": "\U0001f469\u200d\U0001f469\u200d\U0001f467 🏳️\u200d🌈",
    "combining": "e\u0301 a\u0308\u0323 \u0915\u094d\u0937",
    "planes": "\U00010348 \U0001d11e \U000e0041 \U0010fffd",
    "python_breaks": "a\u2028b\x85c\x0cd\x0be\u2029f",  # one LSP line
}
LINE_ENDS = ["\n", "\r\n", "\r"]


def units(text: str, encoding: PositionEncodingKind) -> int:
    codec, width = CODECS[encoding]
    return len(text.encode(codec)) // width


def every_char_text() -> str:
    """Every code point of the BMP but surrogates and line breaks, and every 13th of
    the other planes (all would take 20 s), 64 to a line, lines ending in turn
    with "\\n", "\\r\\n" and "\\r"."""
    codes = [*range(0x10000), *range(0x10000, 0x110000, 13), 0x10FFFF]
    chars = [chr(c) for c in codes if not 0xD800 <= c <= 0xDFFF and c not in (10, 13)]
    lines = ["".join(chars[i : i + 64]) for i in range(0, len(chars), 64)]
    return "".join(line + LINE_ENDS[n % 3] for n, line in enumerate(lines))


def class_text() -> str:
    lines = [f"{name} = '{sample}'" for name, sample in CLASSES.items()]
    return "".join(line + LINE_ENDS[n % 3] for n, line in enumerate(lines)) + "end"


@pytest.fixture(scope="module")
def every_char() -> IndexedText:
    return IndexedText.of(every_char_text())


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_char_round_trips(every_char, encoding):
    text = every_char
    lines = [text.line(n) for n in range(text.line_count)]
    for number, line in enumerate(lines):
        start = text.line_start(number)
        width = 0
        for column in range(len(line) + 1):
            position = text.position_at(start + column, encoding)
            assert position == Position(number, width), (number, column)
            assert text.offset_at(position, encoding) == start + column
            if column < len(line):
                width += units(line[column], encoding)
        # Past the line's end (into its line break, or beyond): the line's end.
        assert text.offset_at(Position(number, width + 1), encoding) == start + len(line)


def test_every_char_in_bytes_round_trips(every_char):
    text = every_char
    byte = 0
    for offset, char in enumerate(text.text):
        assert text.byte_of_offset(offset) == byte
        assert text.offset_of_byte(byte) == offset
        byte += len(char.encode())
    assert text.byte_of_offset(len(text.text)) == byte == len(text.data)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_edit_at_every_position_lands_exactly(encoding):
    text = class_text()
    store = DocumentStore(encoding)
    document = store.open("file:///classes.py", "python", 1, text)
    version = 1
    for offset in range(len(text) + 1):
        if text[offset - 1 : offset + 1] == "\r\n":
            continue  # inside a line break: no position points there
        position = document.position_at(offset)
        version += 1
        here = types.Range(position, position)
        document = store.change(
            document.uri, version, [types.TextDocumentContentChangePartial(range=here, text="«»")]
        )
        assert document.text == text[:offset] + "«»" + text[offset:]
        # And take it out again, by the range the inserted text now covers.
        end = Position(position.line, position.character + units("«»", encoding))
        version += 1
        document = store.change(
            document.uri,
            version,
            [types.TextDocumentContentChangePartial(range=types.Range(position, end), text="")],
        )
        assert document.text == text


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_range_over_each_class_and_line_end_replaces_exactly_it(encoding):
    text = class_text()
    store = DocumentStore(encoding)
    document = store.open("file:///classes.py", "python", 1, text)
    index = IndexedText.of(text)
    lone_cr = re.search(r"\r(?!\n)", text).start()  # the "\r" of a "\r\n" has no position
    spans = [(text.index(sample), len(sample)) for sample in [*CLASSES.values(), "\r\n"]]
    for first, length in [*spans, (lone_cr, 1)]:
        end = first + length
        change = types.TextDocumentContentChangePartial(
            range=types.Range(index.position_at(first, encoding), index.position_at(end, encoding)),
            text="X",
        )
        changed = store.change(document.uri, 2, [change])
        assert changed.text == text[:first] + "X" + text[end:]
        document = store.open(document.uri, "python", 1, text)


# ---------------------------------------------------------------- end to end


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "ds_lsp"],
        server_env=server_env(DS_LSP_LOG_LEVEL="debug"),
    )
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


URI = "file:///work/classes.py"


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("sample", list(CLASSES))
async def test_a_completion_after_each_class_lands_exactly(client, fake_openai, encoding, sample):
    result = await start(client, fake_openai, encodings=[encoding.value])
    assert result.capabilities.position_encoding == encoding
    head = "import os\r\n"  # a CRLF line above
    line_prefix = f"s = '{CLASSES[sample]}' + "
    open_doc(client, URI, f"{head}{line_prefix}END_OF_LINE\rtail = 1\n")
    fake_openai.enqueue(Reply(content="more", format="none", chunk_size=4))

    character = units(line_prefix, encoding)
    items = await ghost_text(client, URI, 1, character)

    assert [item.insert_text for item in items] == ["more"]
    cursor = Position(1, character)
    assert items[0].range == types.Range(cursor, cursor)
    # The model saw the line cut exactly at the cursor: all of the text before it
    # in the code before the cursor, the rest of the line first after it.
    request = fake_openai.requests[-1]
    prompt = request.get("prompt") or "\n".join(m["content"] for m in request["messages"])
    before = prompt[prompt.rindex("Code before the cursor") :]
    assert line_prefix in before
    assert line_prefix + "E" not in before and "END_OF_LINE" not in before
