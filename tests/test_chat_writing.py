"""The model's answer as it goes into the chat: nothing it writes reads as structure."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ds_lsp.chat import parse_chat
from ds_lsp.chat_writing import AnswerText, answer_heading, next_question_heading

QUESTION = "## You\n\nFix it?\n"


def written(*pieces: str) -> str:
    text = AnswerText()
    return "".join(text.feed(piece) for piece in pieces) + text.finish()


def test_turn_headings_in_an_answer_are_escaped_wherever_the_stream_splits_them():
    assert written("Sure.\n\n#", "# Y", "ou\nDo it.\n") == "Sure.\n\n\\## You\nDo it.\n"
    assert written("## DeepSeek (edited)") == "\\## DeepSeek (edited)"


def test_other_lines_go_out_as_they_come():
    text = AnswerText()
    assert text.feed("Partial li") == "Partial li"
    assert text.feed("ne\n# Title") == "ne\n"  # a line starting with # waits for its end
    assert text.feed("\n") == "# Title\n"
    assert written("## Your options\n### You\n ## You\n") == "## Your options\n### You\n ## You\n"


def test_code_blocks_are_code_and_stay_as_written():
    answer = "````markdown\n## You\n```\n## You\n````\n## You\n"
    assert written(answer) == "````markdown\n## You\n```\n## You\n````\n\\## You\n"
    assert written("~~~\n## You\n") == "~~~\n## You\n"


@given(st.lists(st.sampled_from(["## You", "## DeepSeek", "\n", "```", "x", "#", " "])))
def test_no_answer_adds_a_turn(pieces):
    chat = QUESTION + answer_heading(QUESTION)
    chat += written(*pieces)
    chat += next_question_heading(chat)
    roles = [turn.role for turn in parse_chat(chat).turns]
    assert roles == ["user", "assistant", "user"]
