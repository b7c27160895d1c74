"""The chat document: parsing, messages for the model, what gets appended, where it lives."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ds_lsp import prompts
from ds_lsp.chat import (
    ChatFormatError,
    ChatTooLong,
    CodeReference,
    EmptyQuestion,
    answer_block_at,
    chat_folder,
    chat_path,
    default_state_dir,
    is_chat_file,
    new_chat_path,
    parse_chat,
    pending_question,
    question_text,
    to_messages,
)
from ds_lsp.chat_writing import (
    answer_heading,
    cut_off_marker,
    new_chat_text,
    next_question_heading,
    reference_display,
    selection_addition,
    selection_block,
)
from ds_lsp.documents import file_name_of
from ds_lsp.markdown import fenced
from ds_lsp.text import estimate_tokens, newline_of

F = "```"
URI = "file:///home/me/proj/src/cli.py"
PARSE_ARGS = "def parse_args(argv):\n    return argv[1:]"
LINK = f"`parse_args` in [src/cli.py:12-13]({URI}#L12-L13)"
INSTRUCTIONS = prompts.render("chat").strip()


def block(symbol="parse_args", code=PARSE_ARGS, start=12, end=13, language="python", uri=URI):
    return selection_block("src/cli.py", uri, start, end, symbol, language, code)


def conversation(*parts: str) -> str:
    """A chat from alternating questions and answers, as the server writes it."""
    text = new_chat_text("proj")
    for index, part in enumerate(parts):
        if index % 2:
            text += answer_heading(text)
            text += part
            text += next_question_heading(text)
        else:
            text += part
    return text


def line_of(text: str, needle: str, occurrence: int = 0) -> int:
    rows = [row for row, line in enumerate(text.splitlines()) if needle in line]
    return rows[occurrence]


# ---------------------------------------------------------------- parsing


def test_turns_with_roles_lines_and_text_and_the_title_ignored():
    text = "# My chat\n\nintro\n\n## You\n\nhello\n\n## DeepSeek\n\nhi there\n\n## You\n\nbye\n"
    chat = parse_chat(text)
    assert [(t.role, t.heading_line, t.start_line, t.end_line) for t in chat.turns] == [
        ("user", 4, 5, 8),
        ("assistant", 8, 9, 12),
        ("user", 12, 13, 16),
    ]
    assert chat.turns[0].text == "\nhello\n"
    assert chat.turns[2].text == "\nbye\n"
    assert chat.turn_at(2) is None
    assert chat.turn_at(9) is chat.turns[1]


@pytest.mark.parametrize("heading", ["## You  ", "## You\t", "## You (edited)"])
def test_heading_variants_that_count(heading):
    chat = parse_chat(f"{heading}\nq\n## DeepSeek (cut off)\na\n## You\nq2")
    assert [t.role for t in chat.turns] == ["user", "assistant", "user"]


@pytest.mark.parametrize("line", ["## Youth", "### You", " ## You", "## you", "##You", "# You"])
def test_lines_that_are_not_turn_headings(line):
    chat = parse_chat(f"## You\nq\n{line}\nmore")
    assert len(chat.turns) == 1
    assert line in chat.turns[0].text


def test_a_heading_inside_a_code_block_does_not_split_the_turn():
    text = f"## You\n\n{F}markdown\n## DeepSeek\n## You\n{F}\n\nwhat is this?\n"
    chat = parse_chat(text)
    assert len(chat.turns) == 1
    assert chat.turns[0].blocks[0].code == "## DeepSeek\n## You"
    assert pending_question(chat) is chat.turns[0]


def test_backtick_fences_inside_a_tilde_fence_are_its_content():
    code = f"{F}\n## DeepSeek\n{F}"
    chat = parse_chat(f"## You\n~~~md\n{code}\n~~~\nq\n## DeepSeek\nok\n## You\nnext")
    assert [t.role for t in chat.turns] == ["user", "assistant", "user"]
    assert chat.turns[0].blocks[0].code == code


def test_a_fence_left_open_runs_to_the_end():
    chat = parse_chat(f"## You\nq\n## DeepSeek\n{F}python\nx = 1\n## You")
    answer = chat.turns[-1]
    assert answer.role == "assistant"
    assert answer.blocks[0].closed is False
    assert answer.blocks[0].code == "x = 1\n## You"


def test_crlf_chat_parses_like_lf():
    text = conversation(block() + "\n\nwhy?\n", "because").replace("\n", "\r\n")
    chat = parse_chat(text)
    lf = parse_chat(text.replace("\r\n", "\n"))
    assert chat == lf
    assert chat.turns[0].references[0].code == PARSE_ARGS


def test_unicode_text_paths_and_symbols():
    uri = "file:///home/me/caf%C3%A9/%E6%97%A5%E6%9C%AC.py"
    code = 'def grüßen():\n    return "日本 ✓ 😀"'
    text = conversation(selection_block("日本.py", uri, 1, 2, "grüßen", "python", code) + "\n\nß?")
    reference = parse_chat(text).turns[0].references[0]
    assert (reference.display, reference.symbol, reference.code) == ("日本.py", "grüßen", code)
    assert reference.uri == uri


def test_an_empty_chat_has_no_turns_and_cannot_be_sent():
    for text in ("", "\n\n", "# Title\n\nno headings here\n"):
        chat = parse_chat(text)
        assert chat.turns == ()
        with pytest.raises(ChatFormatError, match='has no "## You" heading: write "## You"'):
            pending_question(chat)


def test_a_chat_ending_in_an_answer_cannot_be_sent():
    with pytest.raises(ChatFormatError, match='does not end with a "## You" turn: add a line'):
        pending_question(parse_chat("## You\nq\n## DeepSeek\na\n"))


@pytest.mark.parametrize("question", ["", "   \n\t\n", "\n" + block() + "\n\n" + block() + "\n"])
def test_an_empty_question_is_refused(question):
    with pytest.raises(EmptyQuestion) as caught:
        pending_question(parse_chat(f"## You\n{question}"))
    assert str(caught.value) == 'the question under the last "## You" is empty: write it, then send'


def test_code_pasted_by_hand_is_a_question():
    chat = parse_chat(f"## You\n{F}\nTraceback: KeyError\n{F}\n")
    assert pending_question(chat).references == ()


def test_the_question_text_is_the_turn_less_its_added_code():
    text = conversation(f"Why?\n\n{block()}\n\n  Fix it, please.  \n")
    assert question_text(pending_question(parse_chat(text))) == "Why?\n\n  Fix it, please."


# ---------------------------------------------------------------- references


def test_two_selections_round_trip():
    other = "def main():\n    run()"
    text = conversation(block() + "\n\n" + block("main", other, 20, 21) + "\n\nhow do these fit?")
    question = pending_question(parse_chat(text))
    first, second = question.references
    assert first == CodeReference(
        uri=URI,
        display="src/cli.py",
        start=12,
        end=13,
        symbol="parse_args",
        language="python",
        code=PARSE_ARGS,
        line=line_of(text, LINK),
    )
    assert (second.symbol, second.start, second.end, second.code) == ("main", 20, 21, other)


def test_the_link_form():
    assert block() == f"{LINK}\n{F}python\n{PARSE_ARGS}\n{F}"
    one_line = selection_block("a.py", "file:///a.py", 7, 7, None, "python", "x = 1\n")
    assert one_line == f"[a.py:7](file:///a.py#L7)\n{F}python\nx = 1\n{F}"


def test_awkward_targets_and_names_round_trip():
    uri = "file:///tmp/a (copy)/b c.py"  # not percent-encoded by some client
    text = selection_block("[x] a.py", uri, 3, 4, "f", None, "f()\ng()")
    assert f"[\\[x\\] a.py:3-4](<{uri}#L3-L4>)" in text
    reference = parse_chat(f"## You\n{text}\n").turns[0].references[0]
    assert (reference.uri, reference.display, reference.start, reference.end) == (
        uri,
        "[x] a.py",
        3,
        4,
    )
    assert reference.language is None


def test_a_code_block_containing_fences_gets_a_longer_fence():
    code = f'DOC = """\n{F}python\nx = 1\n{F}\n"""\n## You'
    text = selection_block("a.py", "file:///a.py", 1, 6, None, "python", code)
    assert text.split("\n")[1] == "````python"
    chat = parse_chat(f"## You\n{text}\nq")
    assert len(chat.turns) == 1
    assert chat.turns[0].references[0].code == code


def test_fenced_code_takes_a_fence_its_lines_cannot_close():
    assert fenced("x = 1\n", "python") == f"{F}python\nx = 1\n{F}"
    assert fenced(f"a\r\n{F}\nb") == f"````\na\n{F}\nb\n````"


def test_selected_code_with_crlf_and_a_final_newline_is_stored_plainly():
    text = selection_block("a.py", "file:///a.py", 1, 2, None, "python", "a = 1\r\nb = 2\r\n")
    assert parse_chat(f"## You\n{text}").turns[0].references[0].code == "a = 1\nb = 2"


def test_an_empty_selected_line():
    text = selection_block("a.py", "file:///a.py", 5, 5, None, "python", "")
    assert parse_chat(f"## You\n{text}").turns[0].references[0].code == ""


def test_a_hand_written_link_with_lines_in_its_text_is_a_reference():
    chat = parse_chat(f"## You\n[lib/x.rb:3-5](lib/x.rb)\n{F}ruby\nputs 1\n{F}\nq")
    reference = chat.turns[0].references[0]
    assert (reference.uri, reference.display, reference.start, reference.end) == (
        "lib/x.rb",
        "lib/x.rb",
        3,
        5,
    )


def test_what_is_not_a_reference():
    not_followed = f"## You\n{LINK}\n\n{F}python\nx\n{F}\n"
    no_lines = f"## You\n[notes](file:///n.md)\n{F}\nx\n{F}\n"
    in_an_answer = f"## You\nq\n## DeepSeek\n{block()}\n## You\nq"
    for text in (not_followed, no_lines, in_an_answer):
        assert all(not turn.references for turn in parse_chat(text).turns)


# ---------------------------------------------------------------- appending


def test_a_new_chat_and_two_selections_leave_one_blank_line_between_blocks():
    text = new_chat_text("proj")
    assert text.endswith("\n\n## You\n\n")
    assert parse_chat(text).turns[-1].role == "user"
    text += selection_addition(text, block())
    assert text.endswith(f"## You\n\n{block()}\n\n")
    text += "why does it fail?"  # typed by the user, no final newline
    addition = selection_addition(text, block("main", "main()", 30, 30))
    assert addition.startswith("\n\n`main` in [src/cli.py:30]")
    text += addition
    assert len(pending_question(parse_chat(text)).references) == 2


@pytest.mark.parametrize(
    ("ending", "separator"),
    [("q", "\n\n"), ("q\n", "\n"), ("q\n\n", ""), ("q\n  \n", ""), ("q   ", "\n\n")],
)
def test_one_blank_line_before_an_addition_whatever_the_text_ends_with(ending, separator):
    text = f"## You\n\n{ending}"
    assert answer_heading(text) == f"{separator}## DeepSeek\n\n"


def test_a_selection_added_after_an_answer_starts_a_new_question():
    text = "## You\nq\n## DeepSeek\nanswer"
    addition = selection_addition(text, block())
    assert addition == f"\n\n## You\n\n{block()}\n\n"
    assert selection_addition("", block()) == f"## You\n\n{block()}\n\n"


def test_additions_use_the_documents_line_breaks():
    text = new_chat_text("proj", newline="\r\n")
    assert "\n" not in text.replace("\r\n", "")
    addition = selection_addition(text, block())
    assert addition == f"{block()}\n\n".replace("\n", "\r\n")
    text += addition + "q"
    assert answer_heading(text) == "\r\n\r\n## DeepSeek\r\n\r\n"
    assert newline_of(text) == "\r\n"
    assert newline_of("one line") == "\n"


def test_a_cut_off_answer_is_closed_marked_and_followed_by_a_question():
    text = conversation(block() + "\n\nfix it")
    text += answer_heading(text)
    text += f"Here:\n\n{F}python\ndef parse_args(argv):\n    ## You"  # stopped mid-block
    text += cut_off_marker(text, "cancelled\nby the user")
    assert text.endswith(f"    ## You\n{F}\n\n*(cut off: cancelled by the user)*")
    text += next_question_heading(text)
    chat = parse_chat(text)
    assert [t.role for t in chat.turns] == ["user", "assistant", "user"]
    assert chat.turns[1].blocks[0].closed
    with pytest.raises(EmptyQuestion):
        pending_question(chat)


def test_an_open_fence_in_the_question_is_closed_before_the_answer():
    text = "## You\n\nwhat about\n  ~~~~\ncode"
    text += answer_heading(text)
    assert text.endswith("code\n  ~~~~\n\n## DeepSeek\n\n")
    assert parse_chat(text).turns[-1].role == "assistant"


_PIECES = ["a", " ", "\n", "\r\n", "`", "~", "#", "## You", "## DeepSeek", F, "~~~~", "```py"]


@given(st.lists(st.sampled_from(_PIECES), max_size=30).map("".join))
def test_appended_headings_are_always_headings_and_nothing_is_lost(text):
    with_answer = text + answer_heading(text)
    assert parse_chat(with_answer).turns[-1].role == "assistant"
    after = with_answer + "an answer"
    with_question = after + next_question_heading(after)
    last = parse_chat(with_question).turns[-1]
    assert (last.role, last.text.strip()) == ("user", "")
    assert with_question.startswith(text)  # only ever appended to


# ---------------------------------------------------------------- messages


def test_messages_carry_instructions_plain_references_and_no_links():
    text = conversation(block() + "\n\nwhy?")
    messages = to_messages(parse_chat(text), 10_000)
    assert [m.role for m in messages] == ["user"]
    assert messages[0].content == (
        f"{INSTRUCTIONS}\n\n`parse_args` in src/cli.py:12-13\n{F}python\n{PARSE_ARGS}\n{F}\n\nwhy?"
    )
    assert "file://" not in messages[0].content


def test_history_alternates_and_answers_lose_reasoning_and_the_cut_off_marker():
    text = conversation(
        "first",
        "<think>\nreasoning that leaked\n</think>\n\nanswer one",
        "second",
        f'answer two:\n{F}python\nTAGS = ("<think>", "</think>")\n{F}',
        "third",
    )
    text += answer_heading(text) + "partial"
    text += cut_off_marker(text)
    text += next_question_heading(text) + "fourth"
    messages = to_messages(parse_chat(text), 10_000)
    assert [(m.role, m.content) for m in messages] == [
        ("user", f"{INSTRUCTIONS}\n\nfirst"),
        ("assistant", "answer one"),
        ("user", "second"),
        ("assistant", f'answer two:\n{F}python\nTAGS = ("<think>", "</think>")\n{F}'),
        ("user", "third"),
        ("assistant", "partial"),
        ("user", "fourth"),
    ]


def test_an_answer_cut_off_before_any_text_merges_the_questions_around_it():
    text = conversation("first")
    text += answer_heading(text)
    text += cut_off_marker(text)
    text += next_question_heading(text) + "second"
    messages = to_messages(parse_chat(text), 10_000)
    assert [(m.role, m.content) for m in messages] == [
        ("user", f"{INSTRUCTIONS}\n\nfirst\n\nsecond")
    ]


def test_a_chat_starting_with_an_answer():
    messages = to_messages(parse_chat("## DeepSeek\nhello\n## You\nq"), 10_000)
    assert [(m.role, m.content) for m in messages] == [
        ("user", INSTRUCTIONS),
        ("assistant", "hello"),
        ("user", "q"),
    ]


def words(text: str) -> int:
    return len(text.split())


def test_trimming_drops_old_exchanges_but_keeps_their_code_and_the_question():
    old_code = "def old():\n    pass"
    text = conversation(
        block("old", old_code, 1, 2) + "\n\n" + "long " * 50,
        "long answer " * 50,
        "a middle question",
        "a middle answer",
        "the question",
    )
    chat = parse_chat(text)
    full = to_messages(chat, 10_000, words)
    assert len(full) == 5
    budget = sum(words(m.content) + 4 for m in full) - 1
    trimmed = to_messages(chat, budget, words)
    assert [(m.role, m.content) for m in trimmed] == [
        (
            "user",
            f"{INSTRUCTIONS}\n\nCode from earlier in this chat:\n\n"
            f"`old` in src/cli.py:1-2\n{F}python\n{old_code}\n{F}\n\na middle question",
        ),
        ("assistant", "a middle answer"),
        ("user", "the question"),
    ]
    smaller = sum(words(m.content) + 4 for m in trimmed) - 1
    only_question = to_messages(chat, smaller, words)
    assert [m.role for m in only_question] == ["user"]
    assert only_question[0].content.endswith(f"{F}\n\nthe question")
    assert "old()" in only_question[0].content


def test_trimming_keeps_each_block_once():
    text = conversation(
        block() + "\n\n" + "q1 " * 40,
        "a1 " * 40,
        block() + "\n\n" + "q2 " * 40,
        "a2 " * 40,
        block("main", "main()", 30, 30) + "\n\nq3",
    )
    budget = words(INSTRUCTIONS) + 40
    messages = to_messages(parse_chat(text), budget, words)
    assert len(messages) == 1
    assert messages[0].content.count(PARSE_ARGS) == 1  # the same code in two dropped turns
    assert messages[0].content.count("main()") == 1

    kept_twice = conversation(block() + "\n\n" + "q1 " * 40, "a1 " * 40, block() + "\n\nq2")
    messages = to_messages(parse_chat(kept_twice), budget, words)
    assert messages[0].content.count(PARSE_ARGS) == 1  # the question still has it


def test_a_question_too_long_for_the_budget_says_so():
    with pytest.raises(ChatTooLong, match="more than the 10 the context allows"):
        to_messages(parse_chat("## You\n" + "word " * 100), 10, words)


def test_the_default_token_estimate():
    assert estimate_tokens("") == 0
    assert 20 <= estimate_tokens("x" * 80) <= 30
    assert to_messages(parse_chat("## You\nq"), 1_000)  # uses it


def test_messages_refuse_a_chat_that_cannot_be_sent():
    with pytest.raises(EmptyQuestion):
        to_messages(parse_chat("## You\n\n"), 1_000)


# ---------------------------------------------------------------- applying answers


def answered(answer: str, *selections: str) -> tuple[str, object]:
    text = conversation("\n\n".join(selections) + "\n\nfix it", answer)
    return text, parse_chat(text)


def test_the_block_of_an_answer_to_one_reference():
    fixed = "def parse_args(argv):\n    return argv[1:] or ['-h']"
    text, chat = answered(f"Like this:\n\n{F}python\n{fixed}\n{F}\n\nDone.", block())
    fence = line_of(text, f"{F}python", 1)
    for line in (fence, fence + 1, fence + 3):
        found = answer_block_at(chat, line)
        assert found.code == fixed
        assert (found.reference.uri, found.reference.start, found.reference.end) == (URI, 12, 13)
    assert answer_block_at(chat, line_of(text, "Like this")) is None
    assert answer_block_at(chat, line_of(text, "Done.")) is None
    assert answer_block_at(chat, line_of(text, "fix it")) is None  # the question
    assert answer_block_at(chat, 0) is None  # the title


def test_a_block_in_another_language_is_not_applied():
    text, chat = answered(f"{F}bash\npip install x\n{F}\n\n{F}py\nx = 1\n{F}", block())
    assert answer_block_at(chat, line_of(text, "pip install")) is None
    assert answer_block_at(chat, line_of(text, "x = 1")).reference.symbol == "parse_args"


def test_several_references_are_told_apart_by_symbol():
    main = block("main", "def main():\n    run()", 20, 21)
    text, chat = answered(
        f"{F}python\ndef main():\n    run(parse)\n{F}\n\n"
        f"{F}\ndef main():\n    parse_args(argv)\n{F}",
        block(),
        main,
    )
    assert answer_block_at(chat, line_of(text, "run(parse)")).reference.symbol == "main"
    assert answer_block_at(chat, line_of(text, "    parse_args(argv)")) is None  # both named


def test_only_the_questions_just_before_the_answer_count():
    text = conversation(block() + "\n\nfirst", "ok", "now something else", f"{F}\nx\n{F}")
    assert answer_block_at(parse_chat(text), line_of(text, "x", -1)) is None


def test_a_block_the_answer_was_cut_off_in_is_not_offered():
    text = conversation(block() + "\n\nfix it")
    text += answer_heading(text) + f"{F}python\ndef parse_args("
    assert answer_block_at(parse_chat(text), line_of(text, "def parse_args(", 1)) is None
    text += cut_off_marker(text)
    text += next_question_heading(text)
    assert answer_block_at(parse_chat(text), line_of(text, "def parse_args(", 1)) is None


# ---------------------------------------------------------------- names


def test_reference_display():
    root = Path("/home/me/proj")
    assert reference_display("file:///home/me/proj/src/a%20b.py", root) == "src/a b.py"
    assert reference_display("file:///home/me/project2/x.py", root) == "/home/me/project2/x.py"
    assert reference_display("file:///etc/hosts", None) == "/etc/hosts"
    assert reference_display("untitled:Untitled-1", root) == "untitled:Untitled-1"


def test_windows_uris_name_their_files():
    """VS Code on Windows sends the drive letter escaped: file:///c%3A/..."""
    uri = "file:///c%3A/Users/me/proj/src/a%20b.py"
    assert reference_display(uri, Path("c:/Users/me/proj")) == "src/a b.py"
    assert file_name_of(uri) == "a b.py"


# ---------------------------------------------------------------- where chats live


def test_state_and_workspace_locations(tmp_path):
    state = tmp_path / "state"
    root = Path("/home/me/my proj")
    folder = chat_folder(root, "state", state)
    assert folder.parent == state / "ds-lsp" / "chats"
    assert folder.name.startswith("my_proj-") and len(folder.name) == len("my_proj-") + 8
    other = chat_folder(Path("/elsewhere/my proj"), "state", state)
    assert other != folder  # same name, another workspace
    assert chat_folder(root, "workspace", state) == root / ".ds-lsp"
    assert chat_folder(None, "workspace", state) == state / "ds-lsp" / "chats" / "no-workspace"
    with pytest.raises(ValueError, match="unknown chat location"):
        chat_folder(root, "elsewhere", state)


def test_chats_are_numbered_and_the_newest_is_current(tmp_path):
    root = tmp_path / "proj"
    assert chat_path(root, "workspace", tmp_path) == root / ".ds-lsp" / "chat.md"
    first = new_chat_path(root, "workspace", tmp_path)
    assert first == root / ".ds-lsp" / "chat.md"
    first.parent.mkdir(parents=True)
    first.write_text(new_chat_text("proj"))
    second = new_chat_path(root, "workspace", tmp_path)
    assert second.name == "chat-2.md"
    second.write_text("")
    (first.parent / "notes.md").write_text("")
    assert chat_path(root, "workspace", tmp_path) == second
    assert new_chat_path(root, "workspace", tmp_path).name == "chat-3.md"
    assert is_chat_file(second, root, "workspace", tmp_path)
    assert not is_chat_file(first.parent / "notes.md", root, "workspace", tmp_path)
    assert not is_chat_file(root / "chat.md", root, "workspace", tmp_path)


def test_default_state_dir():
    assert default_state_dir({"XDG_STATE_HOME": "/x/state"}) == Path("/x/state")
    home_default = Path.home() / ".local" / "state"
    assert default_state_dir({}) == home_default
    assert default_state_dir({"XDG_STATE_HOME": "relative"}) == home_default


def test_the_documented_example_parses_as_described():
    docs = (Path(__file__).parent.parent / "docs" / "chat.md").read_text(encoding="utf-8")
    example = docs.split("````markdown\n", 1)[1].split("\n````", 1)[0]
    chat = parse_chat(example)
    assert [t.role for t in chat.turns] == ["user", "assistant", "user"]
    assert chat.turns[0].references[0].symbol == "parse_args"
    fixed = answer_block_at(chat, line_of(example, 'else "world"'))
    assert (fixed.reference.start, fixed.reference.end) == (12, 14)
    assert [m.role for m in to_messages(chat, 10_000)] == ["user", "assistant", "user"]
