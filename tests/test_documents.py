"""The open-document store: text, version, language and a live syntax tree per document."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol.types import (
    Position,
    PositionEncodingKind,
    Range,
    TextDocumentContentChangePartial,
    TextDocumentContentChangeWholeDocument,
)

from ds_lsp.context.treesitter import get_parser
from ds_lsp.documents import SYNTAX_LIMIT_BYTES, DocumentStore, OutOfSync

URI = "file:///home/me/project/app.py"
UTF8, UTF16, UTF32 = (
    PositionEncodingKind.Utf8,
    PositionEncodingKind.Utf16,
    PositionEncodingKind.Utf32,
)

PYTHON = '''import os


def greet(name: str) -> str:
    """Say hello 😀."""
    return f"héllo {name}"


class Counter:
    def __init__(self):
        self.count = 0

    def bump(self, by=1):
        self.count += by
        return self.count
'''


def edit(start_line, start_character, end_line, end_character, text):
    return TextDocumentContentChangePartial(
        range=Range(
            start=Position(line=start_line, character=start_character),
            end=Position(line=end_line, character=end_character),
        ),
        text=text,
    )


def nodes(tree):
    """Every node of a tree, with what a feature reads from it: kind, bytes, points."""
    out, pending = [], [tree.root_node]
    while pending:
        node = pending.pop()
        out.append(
            (node.type, node.start_byte, node.end_byte, node.start_point, node.end_point)
            + (node.is_missing, node.is_error)
        )
        pending.extend(reversed(node.children))
    return out


def assert_tree_is_fresh(document):
    """The incrementally updated tree equals a parse of the text from scratch."""
    fresh = get_parser(document.language).parse(document.text.encode("utf-8", "surrogatepass"))
    assert nodes(document.tree) == nodes(fresh)
    assert str(document.tree.root_node) == str(fresh.root_node)


def test_open_keeps_text_version_language_and_a_tree():
    store = DocumentStore()
    document = store.open(URI, "python", 3, PYTHON)
    assert store.get(URI) is document
    assert (document.uri, document.version, document.language_id) == (URI, 3, "python")
    assert document.language == "python"
    assert document.text == PYTHON
    assert document.source == PYTHON.encode()
    assert document.tree.root_node.type == "module"
    assert not document.tree.root_node.has_error
    assert document.line(3) == "def greet(name: str) -> str:"
    assert list(store) == [document] and len(store) == 1 and URI in store


def test_close_forgets_the_document_and_closing_twice_is_harmless():
    store = DocumentStore()
    store.open(URI, "python", 1, PYTHON)
    store.close(URI)
    store.close(URI)
    assert store.get(URI) is None and list(store) == []


def test_insert_delete_and_replace_across_lines_keep_the_tree_current():
    store = DocumentStore()
    store.open(URI, "python", 1, PYTHON)

    document = store.change(URI, 2, [edit(0, 9, 0, 9, "\nimport sys")])  # insert a line
    assert document.text.startswith("import os\nimport sys\n\n")
    assert document.version == 2
    assert_tree_is_fresh(document)

    document = store.change(URI, 3, [edit(1, 0, 2, 0, "")])  # delete that line again
    assert document.text == PYTHON
    assert_tree_is_fresh(document)

    # Replace from inside greet's signature to inside the class: across five lines.
    document = store.change(URI, 4, [edit(3, 10, 8, 13, "): pass\n\n\nclass Tally")])
    assert document.text.splitlines()[3:6] == ["def greet(): pass", "", ""]
    assert "class Tally:" in document.text
    assert_tree_is_fresh(document)


@pytest.mark.parametrize(
    ("encoding", "after_emoji"),
    [(UTF16, 19), (UTF8, 21), (UTF32, 18)],  # "    \"\"\"Say hello 😀" in each encoding
)
def test_edits_after_an_emoji_land_where_the_client_means(encoding, after_emoji):
    store = DocumentStore(encoding)
    store.open(URI, "python", 1, PYTHON)
    document = store.change(URI, 2, [edit(4, after_emoji, 4, after_emoji, "👍")])
    assert document.line(4) == '    """Say hello 😀👍."""'
    assert document.position_at(document.text.index("👍")) == Position(
        line=4, character=after_emoji
    )
    assert_tree_is_fresh(document)


def test_typing_between_the_halves_of_a_surrogate_pair_rounds_down():
    store = DocumentStore(UTF16)
    store.open(URI, "python", 1, PYTHON)
    document = store.change(URI, 2, [edit(4, 18, 4, 18, "!")])  # 17 is the emoji's first half
    assert document.line(4) == '    """Say hello !😀."""'
    assert_tree_is_fresh(document)


def test_several_changes_in_one_notification_apply_in_order():
    store = DocumentStore()
    store.open(URI, "python", 1, "x = 1\n")
    document = store.change(
        URI, 2, [edit(0, 4, 0, 5, "2"), edit(1, 0, 1, 0, "y = x\n"), edit(0, 0, 0, 1, "z")]
    )
    assert document.text == "z = 2\ny = x\n"
    assert_tree_is_fresh(document)


def test_crlf_and_cr_documents_are_edited_by_lsp_lines():
    store = DocumentStore()
    store.open(URI, "python", 1, "a = 1\r\nb = 2\rc = 3\n")
    document = store.change(URI, 2, [edit(2, 4, 2, 5, "30")])
    assert document.text == "a = 1\r\nb = 2\rc = 30\n"
    document = store.change(URI, 3, [edit(0, 5, 1, 0, "")])  # join the first two lines
    assert document.text == "a = 1b = 2\rc = 30\n"
    document = store.change(URI, 4, [edit(0, 5, 0, 5, "\r\n")])  # and split them again
    assert document.text == "a = 1\r\nb = 2\rc = 30\n"
    assert document.line_count == 4
    assert_tree_is_fresh(document)


def test_the_tree_is_updated_incrementally_not_reparsed():
    # A parse that reuses the old tree keeps its untouched subtrees: the same nodes,
    # with the same ids. A parse from scratch shares none with a tree still alive.
    store = DocumentStore()
    text = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(200))
    before = store.open(URI, "python", 1, text)
    assert not before.tree.root_node.has_error  # parsed, as when a feature reads it
    after = store.change(URI, 2, [edit(301, 18, 301, 18, " * 2")])
    assert "return x + 100 * 2" in after.text

    def ids(tree):
        found, pending = set(), [tree.root_node]
        while pending:
            node = pending.pop()
            found.add(node.id)
            pending.extend(node.children)
        return found

    # Python's grammar rebuilds the nodes around indentation, but keeps the rest.
    shared = ids(before.tree) & ids(after.tree)
    assert len(shared) > 0.25 * len(ids(before.tree))
    fresh = get_parser("python").parse(after.source)
    assert not ids(before.tree) & ids(fresh)
    assert_tree_is_fresh(after)


def test_a_snapshot_never_changes_under_its_holder():
    store = DocumentStore()
    before = store.open(URI, "python", 1, PYTHON)
    tree_before = nodes(before.tree)
    store.change(URI, 2, [edit(0, 0, 0, 0, "# header\n")])
    assert before.text == PYTHON and before.version == 1
    assert nodes(before.tree) == tree_before
    assert store.get(URI).version == 2


def test_versions_nobody_parsed_still_get_their_own_tree():
    store = DocumentStore()
    first = store.open(URI, "python", 1, PYTHON)
    assert first.tree is not None  # parsed
    second = store.change(URI, 2, [edit(0, 0, 0, 0, "x = (\n")])  # not parsed yet
    third = store.change(URI, 3, [edit(0, 5, 0, 5, ")")])  # edits the unparsed tree further
    assert_tree_is_fresh(third)
    assert_tree_is_fresh(second)  # parsed after its successor, from its own edits
    assert second.tree.root_node.has_error and not third.tree.root_node.has_error


def test_a_whole_document_change_replaces_the_text():
    store = DocumentStore()
    store.open(URI, "python", 1, PYTHON)
    document = store.change(URI, 2, [TextDocumentContentChangeWholeDocument(text="x = (\n")])
    assert document.text == "x = (\n"
    assert document.tree.root_node.has_error
    assert_tree_is_fresh(document)
    # Partial changes after a whole one in the same notification apply to the new text.
    document = store.change(
        URI,
        3,
        [TextDocumentContentChangeWholeDocument(text="y = 1\n"), edit(0, 4, 0, 5, "2")],
    )
    assert document.text == "y = 2\n"
    assert_tree_is_fresh(document)


def test_positions_past_the_end_are_clamped_so_appending_works():
    store = DocumentStore()
    store.open(URI, "python", 1, "x = 1\n")
    document = store.change(URI, 2, [edit(1, 40, 99, 0, "y = 2\n")])
    assert document.text == "x = 1\ny = 2\n"
    document = store.change(URI, 3, [edit(0, 99, 0, 99, "0")])
    assert document.text == "x = 10\ny = 2\n"
    assert_tree_is_fresh(document)


def test_a_change_to_a_document_that_is_not_open_is_a_clear_error():
    with pytest.raises(ValueError, match="not open: file:///nowhere.py"):
        DocumentStore().change("file:///nowhere.py", 2, [edit(0, 0, 0, 0, "x")])


def test_a_bad_range_puts_the_document_out_of_sync_until_the_whole_text_comes():
    """The editor applied a change the server could not: from then on the server's
    copy is not the editor's, so nothing may be computed on it (get answers None)
    and later changes, which the editor made to its own text, are not applied to
    the wrong one. The editor's whole text, or a re-open, heals it."""
    store = DocumentStore()
    before = store.open(URI, "python", 1, PYTHON)
    good, backwards = edit(0, 0, 0, 0, "# ok\n"), edit(2, 0, 1, 0, "x")
    with pytest.raises(OutOfSync, match="ends before it starts: 2:0 to 1:0"):
        store.change(URI, 2, [good, backwards])
    assert store.get(URI) is None and URI in store
    assert "ends before it starts" in store.out_of_sync(URI)
    assert nodes(before.tree) == nodes(get_parser("python").parse(PYTHON.encode()))
    # A later, valid change is refused too: it was made to a text the server lacks.
    with pytest.raises(OutOfSync):
        store.change(URI, 3, [good])
    assert store.get(URI) is None and store.values() == []
    # The whole text brings it back, with the changes after it in the same message.
    healed = store.change(URI, 4, [TextDocumentContentChangeWholeDocument(text="y = 1\n"), good])
    assert healed.text == "# ok\ny = 1\n" and store.get(URI) is healed
    assert store.out_of_sync(URI) is None
    assert_tree_is_fresh(healed)


def test_a_version_that_does_not_go_up_puts_the_document_out_of_sync():
    store = DocumentStore()
    store.open(URI, "python", 5, "x = 1\n")
    with pytest.raises(OutOfSync, match="version 4 came after version 5"):
        store.change(URI, 4, [edit(0, 0, 0, 0, "#")])
    assert store.get(URI) is None
    # A re-open starts afresh.
    assert store.open(URI, "python", 1, "z = 3\n").text == store.get(URI).text == "z = 3\n"


def test_the_version_after_an_edit_is_kept_for_checking_it():
    store = DocumentStore()
    store.open(URI, "python", 1, "x = 1\n")
    store.change(URI, 2, [edit(0, 4, 0, 5, "2")])
    store.change(URI, 3, [edit(0, 4, 0, 5, "3")])
    assert [d.text for d in store.versions_after(URI, 1)] == ["x = 2\n", "x = 3\n"]
    assert store.versions_after(URI, 3) == []
    store.close(URI)
    assert store.versions_after(URI, 1) == []


def test_a_lone_surrogate_in_the_clients_text_is_kept_and_parsed():
    store = DocumentStore()
    document = store.open(URI, "python", 1, 'x = "\ud800"\n')  # JSON allows "\ud800"
    assert document.tree.root_node.type == "module"
    document = store.change(URI, 2, [edit(0, 5, 0, 6, "ok")])
    assert document.text == 'x = "ok"\n'
    assert_tree_is_fresh(document)


@pytest.mark.parametrize(
    ("language_id", "uri", "language", "text"),
    [
        ("csharp", "file:///P.cs", "csharp", "class P {\n  static int Main() => 0;\n}\n"),
        ("ruby", "file:///a.rb", "ruby", "class A\n  def b = 1\nend\n"),
        ("lua", "file:///init.lua", "lua", "local t = { a = 1 }\nprint(t.a)\n"),
        ("shellscript", "file:///run.sh", "bash", 'for f in *.py; do echo "$f"; done\n'),
        ("sh", "file:///run", "bash", "set -eu\nexport A=1\n"),
        ("python", "file:///notes.txt", "python", "x = 1\n"),
        ("plaintext", "file:///main.go", "go", "package main\n"),
    ],
)
def test_languages_come_from_the_language_id_then_the_extension(language_id, uri, language, text):
    document = DocumentStore().open(uri, language_id, 1, text)
    assert document.language == language
    assert not document.tree.root_node.has_error


@pytest.mark.parametrize(
    ("language_id", "uri"),
    [("markdown", "file:///README.md"), ("plaintext", "untitled:Untitled-1"), ("", "x")],
)
def test_other_languages_are_plain_text_without_a_tree(language_id, uri):
    store = DocumentStore()
    document = store.open(uri, language_id, 1, "# Notes 😀\r\nline two\n")
    assert document.language is None and document.tree is None
    document = store.change(uri, 2, [edit(1, 4, 1, 8, " 2")])
    assert document.text == "# Notes 😀\r\nline 2\n"
    assert document.tree is None


# ---------------------------------------------------------------- property

PIECES = ["x", "1", " ", "\n", "\r\n", "\r", "(", ")", ":", "def ", "    ", "😀", "é", '"', "中"]


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from([UTF8, UTF16, UTF32]),
    st.lists(
        st.tuples(
            st.floats(0, 1),
            st.floats(0, 1),
            st.lists(st.sampled_from(PIECES), max_size=4),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_any_edit_sequence_keeps_text_and_tree_as_a_fresh_open_would(encoding, edits):
    store = DocumentStore(encoding)
    document = store.open(URI, "python", 0, PYTHON)
    expected = PYTHON
    for version, (a, b, pieces, read_tree) in enumerate(edits, start=1):
        start, end = sorted((int(a * len(expected)), int(b * len(expected))))
        # No LSP position names the point between "\r" and "\n".
        start -= expected[start - 1 : start + 1] == "\r\n"
        end -= expected[end - 1 : end + 1] == "\r\n"
        new = "".join(pieces)
        document = store.change(
            URI,
            version,
            [
                TextDocumentContentChangePartial(
                    range=Range(start=document.position_at(start), end=document.position_at(end)),
                    text=new,
                )
            ],
        )
        expected = expected[:start] + new + expected[end:]
        assert document.text == expected
        if read_tree:  # a tree nobody read meanwhile takes the next edits unparsed
            assert_tree_is_fresh(document)
    assert_tree_is_fresh(document)
    reopened = DocumentStore(encoding).open(URI, "python", 0, expected)
    assert document.content.line_starts.tolist() == reopened.content.line_starts.tolist()
    assert document.content.byte_line_starts.tolist() == reopened.content.byte_line_starts.tolist()


def test_a_document_over_the_size_limit_is_plain_text_and_says_so_once(caplog):
    store = DocumentStore()
    big = "x = 1\n" * (SYNTAX_LIMIT_BYTES // 6 + 10)
    with caplog.at_level("INFO", logger="ds_lsp.documents"):
        document = store.open(URI, "python", 1, big)
        for version in range(2, 5):  # typing at the top
            document = store.change(URI, version, [edit(0, 0, 0, 0, "y")])
    assert document.language == "python" and document.tree is None
    assert document.text == "yyy" + big
    said = [r.getMessage() for r in caplog.records if "no syntax tree" in r.getMessage()]
    assert said == [
        "app.py is 1.0 MB, more than 1 MB: it gets no syntax tree, and DeepSeek reads it "
        "as plain text (the lines around the cursor)"
    ]


def test_a_document_that_shrinks_under_the_limit_gets_its_tree_back_and_loses_it_above():
    store = DocumentStore()
    lines = SYNTAX_LIMIT_BYTES // 6
    document = store.open(URI, "python", 1, "x = 1\n" * (lines + 10))
    assert document.tree is None
    document = store.change(URI, 2, [edit(0, 0, 20, 0, "")])  # 120 bytes fewer: under it
    assert document.tree is not None and not document.tree.root_node.has_error
    assert document.tree.root_node.child_count == lines - 10
    document = store.change(URI, 3, [edit(0, 0, 0, 0, "z = 2\n" * 40)])
    assert document.tree is None


def test_a_huge_document_keeps_fewer_old_versions():
    store = DocumentStore()
    store.open(URI, "python", 1, "x = 1\n" * 2_000_000)  # 12 MB
    for version in range(2, 10):
        store.change(URI, version, [edit(0, 0, 0, 0, "y")])
    assert [d.version for d in store.versions_after(URI, 0)] == [8, 9]


def test_a_document_too_big_for_a_tree_is_edited_and_read_as_any_other():
    store = DocumentStore()
    big = "x = 1\n" * (SYNTAX_LIMIT_BYTES // 6 + 10) + "é"
    document = store.open(URI, "python", 1, big)
    document = store.change(URI, 2, [edit(1, 0, 1, 0, "yé = 2\n")])
    expected = big.replace("x = 1\n", "x = 1\nyé = 2\n", 1)
    assert document.text == expected and document.tree is None
    assert document.source == expected.encode()
    assert document.line(1) == "yé = 2"
    assert document.byte_at(Position(line=1, character=2)) == len(b"x = 1\ny") + 2
