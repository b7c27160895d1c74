"""However a stream is chunked, the user sees what the whole text would give.

Also checks the one-shot split against a plain re-statement of the documented
rules, on random text made of the characters that tags and special tokens
are built from.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ds_lsp.reasoning import SPECIAL_TOKENS, ReasoningSplitter, split_reasoning

CASES = [
    "<think>Add them.</think>return a + b",
    "Add them.</think>return a + b",
    "<think>\n\n</think>A",
    "\n <think>\nR</think>\n\n    return x\n",
    "R</think>\n\n  ",
    "<think>\nStill thinking about it\n",
    "Nearly done</thi",
    "R</think>if a < b and c <</think",
    "  <thi",
    "<thinking>R</think>A",
    "<think>x</think>A",
    "</think>\n\nA",
    "\n    return x",
    "Wrap it in <think> and </think>.",
    'Fix it.</think>\n\n```python\nEND = "</think>"\n```',
    "<｜Assistant｜><think>R<|im_end|>1</think><｜end▁of▁sentence｜>\n\nA<|eot_id|>",
    "<|User|>R</think>A<|end▁of▁sentence|>",
    "R</think><|im_<|im_end|>end|>",
    "a <| b, <|im_endx|>, <｜User> and <|User",
    'R</think>\n\nEND = "<|im_end|>"<｜end▁of▁sentence｜>\n',
    "<|im_end|> x <|im_end|> y <|im_end|> \n<|eot_id|>",
    "<<|im_end|>x",
    "<thi<|im_end|>nk>R</thi<|im_end|>nk>A",
    "</thi<|im_end|>ng>A",
]

FRAGMENTS = [
    *"</thinkTHINK>｜▁|_ \n\ta",
    "<think>",
    "</think>",
    "</thi",
    "nk>",
    "<thinking>",
    "<｜",
    "｜>",
    "<|",
    "|>",
    "end▁of▁sentence",
    "User",
    "im_end",
    "<｜end▁of▁sentence｜>",
    "<｜Assistant｜>",
    "<|im_start|>",
    "<|User|>",
    "<|eot_id|>",
    "\n\n",
    "    ",
]

rich_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join) | st.text(max_size=30)


def stream(text: str, cuts: list[int], open: bool) -> tuple[str, str, bool, bool]:
    """Feed `text` cut at `cuts`; return joined reasoning, answer and the flags."""
    bounds = [0, *sorted(cuts), len(text)]
    splitter = ReasoningSplitter(open=open)
    pieces = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        pieces += splitter.feed(text[start:end])
    pieces += splitter.finish()
    assert all(piece for _, piece in pieces), "empty pieces are never returned"
    reasoning = "".join(piece for kind, piece in pieces if kind == "reasoning")
    answer = "".join(piece for kind, piece in pieces if kind == "answer")
    return reasoning, answer, splitter.closed, splitter.saw_open_tag


def whole(text: str, open: bool) -> tuple[str, str, bool, bool]:
    return stream(text, [], open)


TOKEN = re.compile("|".join(map(re.escape, SPECIAL_TOKENS)))


def rules(text: str, open: bool) -> tuple[str, str]:
    """The module docstring's rules, applied to the whole text with plain string operations."""
    original = text
    # Where each character left after removing the tokens was in the original.
    origin = [i for i, is_token in enumerate(token_mask(original)) if not is_token]
    text = "".join(original[i] for i in origin)
    reasoning, answer = rules_without_tokens(text, open)
    return reasoning, with_inner_tokens(answer, original, origin)


def token_mask(text: str) -> list[bool]:
    mask = [False] * len(text)
    for match in TOKEN.finditer(text):
        mask[match.start() : match.end()] = [True] * len(match.group())
    return mask


def with_inner_tokens(answer: str, original: str, origin: list[int]) -> str:
    """The answer is a suffix of the token-free text; put back, verbatim, the original
    between its first and last visible character."""
    if not answer.strip():
        return answer
    lead = answer[: len(answer) - len(answer.lstrip())]
    trail = answer[len(answer.rstrip()) :]
    first = len(origin) - len(answer) + len(lead)
    last = len(origin) - len(trail) - 1
    return lead + original[origin[first] : origin[last] + 1] + trail


def rules_without_tokens(text: str, open: bool) -> tuple[str, str]:
    leading_tag = re.match(r"\s*(</?think>)", text)
    if open:
        if leading_tag and leading_tag[1] == "<think>":
            text = text[leading_tag.end() :]
    elif not leading_tag:
        return "", text
    elif leading_tag[1] == "</think>":
        return "", answer_after_close(text[leading_tag.end() :])
    else:
        text = text[leading_tag.end() :]
    reasoning, close_tag, answer = text.partition("</think>")
    return reasoning.strip(), answer_after_close(answer) if close_tag else ""


def answer_after_close(answer: str) -> str:
    if not answer.strip():
        return ""
    return re.sub(r"^\s*\n", "", answer)


@pytest.mark.parametrize("open", [True, False])
@pytest.mark.parametrize("text", CASES)
def test_every_case_cut_anywhere_gives_the_whole_text_result(text, open):
    expected = whole(text, open)
    assert expected[:2] == split_reasoning(text, open=open)
    assert expected[:2] == rules(text, open)
    assert stream(text, list(range(1, len(text))), open) == expected, "one char at a time"
    for cut in range(len(text) + 1):
        assert stream(text, [cut], open) == expected, f"cut at {cut}"


@settings(max_examples=300, deadline=None)
@given(data=st.data(), text=st.sampled_from(CASES) | rich_text, open=st.booleans())
def test_random_chunking_gives_the_whole_text_result(data, text, open):
    cuts = data.draw(st.lists(st.integers(0, len(text)), max_size=12))
    assert stream(text, cuts, open) == whole(text, open)


@settings(max_examples=500, deadline=None)
@given(text=rich_text, open=st.booleans())
def test_one_shot_split_follows_the_documented_rules(text, open):
    assert split_reasoning(text, open=open) == rules(text, open)
