"""Split R1 output into reasoning and answer, whole or as it streams.

R1 distills think inside `<think>...</think>` and answer after it. How much of
that reaches us varies from server to server: the chat template may
have prefilled `<think>` so only `</think>` arrives, a server may deliver the
reasoning in its own field and leave stray tags in the content, and special
tokens sometimes leak into the text. The rules, in the order they apply:

1. Special tokens (`<｜end▁of▁sentence｜>`, `<|im_end|>`, ... see
   `SPECIAL_TOKENS`) that leak into the text are removed from the reasoning
   and from the edges of the answer: before its first and after its last
   visible (non-whitespace, non-token) character. Inside the answer they stay,
   verbatim: `END = "<|im_end|>"` in the code being edited is code, not a leak.
   Tags are looked for as if the tokens were not there, so
   `</thi<|im_end|>nk>` still closes the reasoning. Tokens are found in one
   pass, like `re.finditer`: the text left around a token is not searched
   again, so `<|im_<|im_end|>end|>` in the reasoning leaves `<|im_end|>`.
2. Tags are recognised only until the reasoning has ended:
   - `open=True` (the template prefilled `<think>`): the text starts inside the
     reasoning. A leading `<think>` (after optional whitespace) is dropped;
     everything up to the first `</think>` is reasoning.
   - `open=False` (the text is answer from its first character, e.g. the
     `content` of a server that sends reasoning in its own field): only a tag at
     the very start (after optional whitespace) counts. `<think>` opens a
     reasoning block that runs to the first `</think>`; a lone `</think>` is a
     stray left by a router and is dropped. Anything else makes the whole text
     answer, verbatim, leading whitespace included.
   After the reasoning has ended (or once the answer has begun without a tag),
   the answer is passed through verbatim: a `"</think>"` or `<think>` inside the
   code being edited is part of that code. Tags are exact and case-sensitive:
   `<thinking>`, `<THINK>` and `< think>` are ordinary text.
3. Reasoning is trimmed of leading and trailing whitespace, so
   `<think>\\n\\n</think>` gives empty reasoning.
4. After a `</think>` (a real one or the stray one of rule 2), the answer's
   leading blank lines are dropped: whitespace up to and including the last
   line break before the first visible character goes, the indentation of that
   first line stays (`</think>\\n\\n    return x` gives `    return x`). An answer
   of whitespace only is empty.
5. A reasoning block that never closes (cut off at max tokens) is all
   reasoning, the answer is empty, and `closed` stays False so the caller can
   report the cut-off.

Streaming gives exactly the one-shot result however the text is chunked. The
splitter holds back only what could still turn into a tag or a special token
(`</thi`, `<｜end▁of`), the trailing whitespace of the reasoning and the
blank lines after `</think>` whose fate depends on what follows, and special
tokens at the answer's end so far (with the whitespace after them) until
something visible follows; `finish()` releases or drops the rest. Each `feed`
costs time linear in its chunk.

One trade-off to know: a special token that ends an answer with no code fence
(`x = 1 <|im_end|>` as the whole answer) is taken for a leak and removed. In a
fenced block the closing fence follows it, so it stays.
"""

from __future__ import annotations

import re
from typing import Literal

Kind = Literal["reasoning", "answer"]
Piece = tuple[Kind, str]
# A stretch of text, or one whole special token (True).
Segment = tuple[str, bool]

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"

_DEEPSEEK_TOKEN_NAMES = ("begin▁of▁sentence", "end▁of▁sentence", "User", "Assistant")
_ASCII_TOKEN_NAMES = (
    "im_start",
    "im_end",
    "endoftext",
    "fim_prefix",
    "fim_middle",
    "fim_suffix",
    "fim_pad",
    "eot_id",
    "begin_of_text",
    "end_of_text",
    "start_header_id",
    "end_header_id",
)

# DeepSeek's own tokens use fullwidth bars; models also emit them with ASCII bars.
SPECIAL_TOKENS: tuple[str, ...] = (
    *(f"<｜{name}｜>" for name in _DEEPSEEK_TOKEN_NAMES),
    *(f"<|{name}|>" for name in _DEEPSEEK_TOKEN_NAMES),
    *(f"<|{name}|>" for name in _ASCII_TOKEN_NAMES),
)

_SPECIAL_TOKEN_RE = re.compile("|".join(re.escape(token) for token in SPECIAL_TOKENS))
# Every proper prefix of a special token: text ending in one of these is held back.
_SPECIAL_TOKEN_PREFIXES = frozenset(
    token[:end] for token in SPECIAL_TOKENS for end in range(1, len(token))
)
_LONGEST_SPECIAL_TOKEN = max(map(len, SPECIAL_TOKENS))


def strip_special_tokens(text: str) -> str:
    """Remove leaked special tokens (see `SPECIAL_TOKENS`) from `text`."""
    return _SPECIAL_TOKEN_RE.sub("", text)


def split_reasoning(text: str, open: bool = True) -> tuple[str, str]:
    """Return `(reasoning, answer)` of a whole text; see the module docstring for the rules."""
    splitter = ReasoningSplitter(open=open)
    pieces = splitter.feed(text) + splitter.finish()
    reasoning = "".join(piece for kind, piece in pieces if kind == "reasoning")
    answer = "".join(piece for kind, piece in pieces if kind == "answer")
    return reasoning, answer


class _SpecialTokenScanner:
    """Streaming `re.finditer` for special tokens: cuts text into text and token
    segments, holding back only a possible token start."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, chunk: str) -> list[Segment]:
        text = self._held + chunk
        segments: list[Segment] = []
        position = 0
        for match in _SPECIAL_TOKEN_RE.finditer(text):
            if match.start() > position:
                segments.append((text[position : match.start()], False))
            segments.append((match.group(), True))
            position = match.end()
        # Tokens hold a ">" only as their last character, so no token can start
        # before a complete one and end after it: these matches are final.
        hold_from = len(text)
        for start in range(max(position, len(text) - _LONGEST_SPECIAL_TOKEN + 1), len(text)):
            if text[start] == "<" and text[start:] in _SPECIAL_TOKEN_PREFIXES:
                hold_from = start
                break
        if hold_from > position:
            segments.append((text[position:hold_from], False))
        self._held = text[hold_from:]
        return segments

    def finish(self) -> list[Segment]:
        held, self._held = self._held, ""
        return [(held, False)] if held else []


def _leading_whitespace_length(text: str) -> int:
    return len(text) - len(text.lstrip())


def partial_suffix_length(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`:
    what a streaming reader must hold back because it may still become `tag`."""
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return length
    return 0


class ReasoningSplitter:
    """Split a stream of R1 output into reasoning and answer pieces as it arrives.

    `feed(chunk)` returns the `("reasoning" | "answer", text)` pieces that are
    certain so far; `finish()` returns the rest at the end of the stream. Empty
    pieces are never returned; adjacent pieces of one kind are merged.
    """

    _START, _REASONING, _AFTER_CLOSE, _ANSWER = "start", "reasoning", "after_close", "answer"

    def __init__(self, open: bool = True) -> None:
        self._open = open
        self._special_tokens = _SpecialTokenScanner()
        self._state = self._START
        self._closed = False
        self._saw_open_tag = False
        # start: leading whitespace, then what may still become a tag (with the
        # tokens inside it, which stay if it turns out to be the answer's start)
        self._leading_whitespace: list[str] = []
        self._maybe_tag: list[Segment] = []
        # reasoning: trailing whitespace and a possible "</think>" start, both held
        self._reasoning_started = False
        self._reasoning_whitespace: list[str] = []
        self._maybe_close_tag = ""
        # after close: whitespace since the last line break
        self._indentation: list[str] = []
        # answer: special tokens (and whitespace) since its last visible character
        self._answer_tail: list[Segment] = []
        self._pieces: list[Piece] = []
        self._finished = False

    @property
    def closed(self) -> bool:
        """A `</think>` was seen: the reasoning ended (False at the end means cut off)."""
        return self._closed

    @property
    def saw_open_tag(self) -> bool:
        """A `<think>` was seen at the start."""
        return self._saw_open_tag

    def feed(self, chunk: str) -> list[Piece]:
        if self._finished:
            raise ValueError("feed() after finish()")
        self._split(self._special_tokens.feed(chunk))
        return self._take_pieces()

    def finish(self) -> list[Piece]:
        if self._finished:
            return []
        self._finished = True
        self._split(self._special_tokens.finish())
        if self._state == self._START:
            # What was held never became a tag: it is ordinary text.
            self._leave_start([])
        if self._state == self._REASONING:
            held, self._maybe_close_tag = self._maybe_close_tag, ""
            self._emit_reasoning(held)
        if self._state == self._ANSWER:
            # Tokens after the answer's last visible character are leaks.
            self._emit("answer", "".join(text for text, token in self._answer_tail if not token))
            self._answer_tail = []
        # Trailing reasoning whitespace and a whitespace-only answer are dropped.
        return self._take_pieces()

    def _split(self, segments: list[Segment]) -> None:
        for text, is_token in segments:
            if is_token:
                self._on_special_token(text)
            else:
                self._split_text(text)

    def _on_special_token(self, token: str) -> None:
        if self._state == self._START and self._maybe_tag:
            self._maybe_tag.append((token, True))  # inside what may be the answer's start
        elif self._state == self._ANSWER:
            self._answer_tail.append((token, True))  # kept only if more answer follows
        # Otherwise it is before the answer or in the reasoning: a leak, dropped.

    def _split_text(self, text: str) -> None:
        while text:
            if self._state == self._START:
                text = self._at_start(text)
            elif self._state == self._REASONING:
                text = self._in_reasoning(text)
            elif self._state == self._AFTER_CLOSE:
                text = self._after_close(text)
            else:
                self._in_answer(text)
                text = ""

    def _at_start(self, text: str) -> str:
        """Before anything visible: look for a leading tag. Returns unconsumed text."""
        if not self._maybe_tag:
            skip = _leading_whitespace_length(text)
            self._leading_whitespace.append(text[:skip])
            text = text[skip:]
            if not text:
                return ""
        candidate = "".join(piece for piece, token in self._maybe_tag if not token) + text
        tags = (OPEN_TAG,) if self._open else (OPEN_TAG, CLOSE_TAG)
        for tag in tags:
            if candidate.startswith(tag):
                self._leading_whitespace, self._maybe_tag = [], []
                if tag == OPEN_TAG:
                    self._saw_open_tag = True
                    self._state = self._REASONING
                else:
                    self._closed = True
                    self._state = self._AFTER_CLOSE
                return candidate[len(tag) :]
        if any(tag.startswith(candidate) for tag in tags):
            self._maybe_tag.append((text, False))
            return ""
        self._leave_start([(text, False)])
        return ""

    def _leave_start(self, rest: list[Segment]) -> None:
        """No leading tag after all: replay what was held as reasoning or answer."""
        held = [("".join(self._leading_whitespace), False), *self._maybe_tag, *rest]
        self._leading_whitespace, self._maybe_tag = [], []
        self._state = self._REASONING if self._open else self._ANSWER
        self._split(held)

    def _in_answer(self, text: str) -> None:
        if self._answer_tail:
            if not text.strip():
                self._answer_tail.append((text, False))
                return
            # Something visible follows the held tokens: they are inside the answer.
            text = "".join(piece for piece, _ in self._answer_tail) + text
            self._answer_tail = []
        self._emit("answer", text)

    def _in_reasoning(self, text: str) -> str:
        text = self._maybe_close_tag + text
        self._maybe_close_tag = ""
        end = text.find(CLOSE_TAG)
        if end >= 0:
            self._emit_reasoning(text[:end])
            self._reasoning_whitespace = []
            self._closed = True
            self._state = self._AFTER_CLOSE
            return text[end + len(CLOSE_TAG) :]
        held = partial_suffix_length(text, CLOSE_TAG)
        self._emit_reasoning(text[: len(text) - held])
        self._maybe_close_tag = text[len(text) - held :]
        return ""

    def _emit_reasoning(self, text: str) -> None:
        """Emit reasoning trimmed at both ends, holding trailing whitespace until more follows."""
        if not self._reasoning_started:
            text = text.lstrip()
        body = text.rstrip()
        if body:
            self._reasoning_started = True
            self._emit("reasoning", "".join(self._reasoning_whitespace) + body)
            self._reasoning_whitespace = []
        trailing = text[len(body) :]
        if trailing:
            self._reasoning_whitespace.append(trailing)

    def _after_close(self, text: str) -> str:
        """Drop blank lines before the answer, keep the first line's indentation."""
        skip = _leading_whitespace_length(text)
        whitespace = text[:skip]
        line_break = whitespace.rfind("\n")
        if line_break >= 0:
            self._indentation = [whitespace[line_break + 1 :]]
        else:
            self._indentation.append(whitespace)
        if skip == len(text):
            return ""
        self._state = self._ANSWER
        indentation, self._indentation = "".join(self._indentation), []
        return indentation + text[skip:]

    def _emit(self, kind: Kind, text: str) -> None:
        if not text:
            return
        if self._pieces and self._pieces[-1][0] == kind:
            self._pieces[-1] = (kind, self._pieces[-1][1] + text)
        else:
            self._pieces.append((kind, text))

    def _take_pieces(self) -> list[Piece]:
        pieces, self._pieces = self._pieces, []
        return pieces
