"""What the user sees of R1 output: reasoning apart, answer clean.

Every case runs three ways: the whole text at once, streamed one character at
a time, and streamed in two chunks cut at every position.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from ds_lsp.reasoning import (
    SPECIAL_TOKENS,
    ReasoningSplitter,
    split_reasoning,
    strip_special_tokens,
)


class Split(NamedTuple):
    reasoning: str
    answer: str
    closed: bool
    saw_open_tag: bool


def _stream(chunks: list[str], open: bool) -> Split:
    splitter = ReasoningSplitter(open=open)
    pieces = [piece for chunk in chunks for piece in splitter.feed(chunk)]
    pieces += splitter.finish()
    for kind, text in pieces:
        assert kind in ("reasoning", "answer")
        assert text, "empty pieces are never returned"
    return Split(
        "".join(text for kind, text in pieces if kind == "reasoning"),
        "".join(text for kind, text in pieces if kind == "answer"),
        splitter.closed,
        splitter.saw_open_tag,
    )


def _whole(text: str, open: bool = True) -> Split:
    reasoning, answer = split_reasoning(text, open=open)
    flags = _stream([text], open)
    return Split(reasoning, answer, flags.closed, flags.saw_open_tag)


def _char_by_char(text: str, open: bool = True) -> Split:
    return _stream(list(text), open)


def _cut_in_two_everywhere(text: str, open: bool = True) -> Split:
    results = {cut: _stream([text[:cut], text[cut:]], open) for cut in range(len(text) + 1)}
    first = results[0]
    for cut, result in results.items():
        assert result == first, f"cut at {cut}: {text[:cut]!r} + {text[cut:]!r}"
    return first


@pytest.fixture(params=[_whole, _char_by_char, _cut_in_two_everywhere])
def split(request):
    return request.param


# 1. Reasoning and answer are told apart, with or without the opening tag.


def test_reasoning_and_answer_are_separated_at_the_closing_tag(split):
    result = split("<think>Add them.</think>return a + b")
    assert (result.reasoning, result.answer) == ("Add them.", "return a + b")
    assert result.closed and result.saw_open_tag


def test_output_after_a_prefilled_think_tag_starts_inside_the_reasoning(split):
    result = split("Add them.</think>return a + b")
    assert (result.reasoning, result.answer) == ("Add them.", "return a + b")
    assert result.closed and not result.saw_open_tag


def test_reasoning_keeps_its_inner_line_breaks(split):
    result = split("<think>\nFirst.\n\nSecond.\n</think>\n\nA")
    assert result.reasoning == "First.\n\nSecond."


def test_opening_tag_after_leading_whitespace_is_dropped(split):
    assert split("\n <think>\nR</think>A")[:2] == ("R", "A")


def test_think_tag_later_in_the_reasoning_is_reasoning_text(split):
    assert split("I could write <think> here</think>A")[:2] == ("I could write <think> here", "A")


# 2. An empty think block and the blank lines after "</think>".


def test_empty_think_block_gives_empty_reasoning_and_the_answer(split):
    assert split("<think>\n\n</think>A")[:2] == ("", "A")


def test_blank_lines_after_the_closing_tag_are_not_part_of_the_answer(split):
    assert split("R</think>\n\n \nA")[:2] == ("R", "A")


def test_indentation_of_the_first_answer_line_is_kept(split):
    assert split("R</think>\n\n    return x\n")[:2] == ("R", "    return x\n")


def test_spaces_right_after_the_closing_tag_stay_without_a_line_break(split):
    assert split("R</think>  x")[:2] == ("R", "  x")


def test_answer_of_only_whitespace_is_empty(split):
    assert split("R</think>\n\n  ")[:2] == ("R", "")


# 3. Reasoning that never closes.


def test_cut_off_reasoning_is_all_reasoning_and_reported_unclosed(split):
    result = split("<think>\nStill thinking about it\n")
    assert (result.reasoning, result.answer) == ("Still thinking about it", "")
    assert not result.closed


def test_cut_off_inside_the_closing_tag_keeps_the_partial_tag_as_reasoning(split):
    result = split("Nearly done</thi")
    assert (result.reasoning, result.answer, result.closed) == ("Nearly done</thi", "", False)


def test_empty_output_is_empty_and_unclosed(split):
    assert split("") == Split("", "", False, False)


# 4. Things that only look like the start of a tag.


def test_comparisons_in_the_answer_are_not_swallowed(split):
    assert split("R</think>if a < b and c <</think")[:2] == ("R", "if a < b and c <</think")


def test_partial_tag_at_the_end_of_the_reasoning_is_flushed(split):
    assert split("a <th")[:2] == ("a <th", "")


def test_partial_opening_tag_at_the_start_is_flushed(split):
    assert split("  <thi")[:2] == ("<thi", "")
    assert split("  <thi", open=False)[:2] == ("", "  <thi")


def test_lone_less_than_sign_is_flushed(split):
    assert split("R</think><")[:2] == ("R", "<")
    assert split("<", open=False)[:2] == ("", "<")


def test_thinking_tag_is_ordinary_text(split):
    assert split("<thinking>A</thinking>", open=False)[:2] == ("", "<thinking>A</thinking>")
    assert split("<thinking>R</think>A")[:2] == ("<thinking>R", "A")


def test_tags_are_case_sensitive(split):
    assert split("<THINK>R</THINK>", open=False)[:2] == ("", "<THINK>R</THINK>")


def test_reasoning_is_shown_while_it_streams_and_held_text_is_released():
    splitter = ReasoningSplitter()
    assert splitter.feed("<think>\nLet me") == [("reasoning", "Let me")]
    # "</thi" could be the closing tag: only that is held back.
    assert splitter.feed(" see</thi") == [("reasoning", " see")]
    assert splitter.feed("s") == [("reasoning", "</this")]
    assert splitter.feed(" one</think>\n\nx = a <") == [
        ("reasoning", " one"),
        ("answer", "x = a "),
    ]
    assert splitter.closed
    assert splitter.feed(" b") == [("answer", "< b")]
    assert splitter.feed("<") == []
    assert splitter.finish() == [("answer", "<")]


def test_finish_releases_everything_once():
    splitter = ReasoningSplitter(open=False)
    assert splitter.feed("x <|im") == [("answer", "x ")]
    assert splitter.finish() == [("answer", "<|im")]
    assert splitter.finish() == []


# 5. Reasoning in its own field, stray tags in the content (open=False).


def test_think_block_in_content_is_still_reasoning(split):
    result = split("<think>x</think>A", open=False)
    assert (result.reasoning, result.answer, result.closed) == ("x", "A", True)


def test_think_block_after_blank_lines_in_content_is_still_reasoning(split):
    assert split("\n\n<think>x</think>\n\nA", open=False)[:2] == ("x", "A")


def test_stray_closing_tag_at_the_start_of_content_is_dropped(split):
    result = split("</think>\n\nA", open=False)
    assert (result.reasoning, result.answer, result.closed) == ("", "A", True)


def test_short_tagless_content_is_the_answer_not_lost_as_reasoning(split):
    result = split("a + b", open=False)
    assert (result.reasoning, result.answer, result.closed) == ("", "a + b", False)


def test_leading_whitespace_of_tagless_content_is_kept(split):
    assert split("\n    return x", open=False)[:2] == ("", "\n    return x")


def test_tags_after_the_content_has_begun_are_answer_text(split):
    text = "Wrap it in <think> and </think>."
    assert split(text, open=False)[:2] == ("", text)


def test_unclosed_think_block_in_content_is_reported_unclosed(split):
    result = split("<think>x", open=False)
    assert (result.reasoning, result.answer, result.closed) == ("x", "", False)
    assert result.saw_open_tag


# 6. Tag-like text in the answer's code.


def test_closing_tag_in_a_string_literal_of_the_answer_stays(split):
    code = '```python\nEND = "</think>"\nSTART = "<think>"\n```'
    assert split("Fix it.</think>\n\n" + code)[:2] == ("Fix it.", code)


def test_tags_in_answer_code_stay_when_reasoning_came_in_the_content(split):
    code = "tags = ['<think>', '</think>']"
    assert split("<think>x</think>" + code, open=False)[:2] == ("x", code)


def test_second_think_block_after_the_answer_began_is_answer_text(split):
    assert split("R</think>A<think>S</think>B")[:2] == ("R", "A<think>S</think>B")


# 7. Leaked special tokens.


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_leaked_special_tokens_are_removed_from_reasoning_and_the_answers_edges(split, token):
    text = f"{token}<think>R{token}1</think>{token}\n\nA2{token}"
    assert split(text)[:2] == ("R1", "A2")
    text = f"{token}  {token}return x  {token}\n{token} \n"
    assert split(text, open=False)[:2] == ("", "  return x  \n \n")


@pytest.mark.parametrize("token", SPECIAL_TOKENS)
def test_special_token_text_inside_the_answer_is_kept_verbatim(split, token):
    code = f'END = "{token}"\nSTART = "{token}" + "{token}"'
    assert split(f"R</think>\n\n{code}{token}\n")[:2] == ("R", code + "\n")
    assert split(f"{token}```python\n{code}\n```{token}", open=False)[:2] == (
        "",
        f"```python\n{code}\n```",
    )


def test_tokens_in_what_looked_like_a_tag_stay_when_it_is_answer(split):
    assert split("<<|im_end|>x", open=False)[:2] == ("", "<<|im_end|>x")
    assert split("</thi<|im_end|>ng>A", open=False)[:2] == ("", "</thi<|im_end|>ng>A")


def test_tags_are_found_through_leaked_tokens(split):
    result = split("<thi<|im_end|>nk>R</thi<|im_end|>nk>A", open=False)
    assert result == ("R", "A", True, True)


def test_end_of_sentence_after_the_answer_is_removed(split):
    assert split("R</think>return x<｜end▁of▁sentence｜>")[:2] == ("R", "return x")


def test_ascii_bar_variants_of_deepseek_tokens_are_removed(split):
    assert split("<|User|>R</think>A<|end▁of▁sentence|>")[:2] == ("R", "A")


def test_special_tokens_are_found_in_one_pass(split):
    assert split("R<|im_<|im_end|>end|></think>A")[:2] == ("R<|im_end|>", "A")
    assert split("R</think><|im_<|im_end|>end|>")[:2] == ("R", "<|im_<|im_end|>end|>")


def test_text_that_only_resembles_a_special_token_stays(split):
    text = "a <| b, <|im_endx|>, <｜User> and <|User"
    assert split(text, open=False)[:2] == ("", text)


def test_strip_special_tokens_removes_every_listed_token():
    assert strip_special_tokens("".join(f"x{token}" for token in SPECIAL_TOKENS)) == "x" * len(
        SPECIAL_TOKENS
    )
    assert strip_special_tokens("<|im_start|>user\nhi<|im_end|>") == "user\nhi"
