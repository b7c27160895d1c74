"""Where R1's reasoning arrives in an OpenAI-compatible stream, made one shape.

Pure: `chunk_parts` reads a chunk's content, reasoning field (whichever
non-standard field the server uses) and finish reason, refusing shapes that
are not a chunk; `Normaliser` turns content and reasoning into reasoning and
answer pieces; `ds_lsp.reasoning.ReasoningSplitter` does the tag work. See
docs/architecture.md and the reasoning-format tests for every wire format.
"""

from __future__ import annotations

import json

import openai

from ds_lsp.reasoning import OPEN_TAG, ReasoningSplitter, split_reasoning

# Non-standard delta fields that carry reasoning, by server family.
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")

Piece = tuple[str, str]  # ("reasoning" | "answer", text), as ReasoningSplitter gives them


class Normaliser:
    """Turns each chunk's `content` and reasoning field into reasoning and answer pieces.

    Where the reasoning comes:
    - In a field (`reasoning_content`, `reasoning`, `thinking`): the field is
      reasoning and the content is answer from its first character, so a short
      tagless answer ("a + b") stays an answer. The content still goes through
      a splitter (open=False) for stray tags. A leading `<think>` block in it
      either repeats the field (llama.cpp's deepseek-legacy: dropped) or was a
      router's stray tag, in which case what follows the tag is the answer,
      verbatim. Which one is settled when the block closes or the stream ends:
      a repeat begins like the field's reasoning.
    - Inline in the content, no field: the text may start inside the reasoning
      (the template prefilled `<think>`) or be a plain answer (reasoning turned
      off server side, or a server that would use a field but got no reasoning).
      Until we know, the content is passed on live as reasoning, provisionally:
      not counted in `reasoning_chars`. It is reasoning once a `</think>` or a
      leading `<think>` shows; it is answer once a reasoning field appears (the
      content so far is then sent again as answer). At the end, still unknown:
      finish_reason "stop" means it was a plain answer, sent whole as answer;
      anything else (cut off at max tokens, aborted) means unfinished
      reasoning. (A plain answer with "</think>" in its code cannot be told
      from prefilled reasoning; that needs reasoning "off".)
    - Reasoning "off" in the request: the content is answer from the start.
    """

    def __init__(self, reasoning_on: bool) -> None:
        # open=True: strips special tokens and tags, trims like inline reasoning.
        self._field = ReasoningSplitter(open=True)
        self._field_text: list[str] = []
        self._content = ReasoningSplitter(open=reasoning_on)
        self._raw_content: list[str] = []
        self._content_shown = False  # pieces known to be what they say were passed on
        self._unknown = reasoning_on  # inline reasoning or plain answer: not known yet
        self._tagged: list[str] = []  # content inside tags, beside a reasoning field
        self._tagged_settled = False
        self._answer_started = False
        self._blank_lines: list[str] = []  # held start of an answer beside a field
        self._finished = False
        # Characters passed on as reasoning that is known to be reasoning (the budget's count).
        self.reasoning_chars = 0

    @property
    def answer_started(self) -> bool:
        """Some of the answer was passed on: the reasoning is over."""
        return self._answer_started

    @property
    def _field_seen(self) -> bool:
        return bool(self._field_text)

    def feed(self, content: str, reasoning: str) -> list[Piece]:
        """One chunk: its `content` and its reasoning field (either may be empty)."""
        pieces: list[Piece] = []
        if reasoning:
            first = not self._field_seen
            self._field_text.append(reasoning)
            if first and not self._content_shown:
                # The server reasons in a field: read the content so far again, as answer.
                self._unknown = False
                self._content = ReasoningSplitter(open=False)
                pieces += self._route(self._content.feed("".join(self._raw_content)))
            field_pieces = [("reasoning", text) for _, text in self._field.feed(reasoning)]
            self.reasoning_chars += sum(len(text) for _, text in field_pieces)
            pieces += field_pieces
        if content:
            self._raw_content.append(content)
            split = self._content.feed(content)
            if self._unknown and self._content.saw_open_tag:
                self._unknown = False  # inline reasoning, from its opening tag on
            pieces += self._route(split)
            if self._unknown and self._content.closed:
                # What was passed on provisionally was reasoning after all.
                self._unknown = False
                self._content_shown = True
        return pieces + self._settle_tagged(at_end=False)

    def finish(self, finish_reason: str) -> list[Piece]:
        if self._finished:
            return []
        self._finished = True
        pieces: list[Piece] = [("reasoning", text) for _, text in self._field.finish()]
        rest = self._route(self._content.finish())
        if self._unknown and finish_reason == "stop":
            # Ended normally, no tag: a plain answer, passed on as reasoning until now.
            _, answer = split_reasoning("".join(self._raw_content), open=False)
            pieces.append(("answer", answer))
        else:
            pieces += rest
        return pieces + self._settle_tagged(at_end=True)

    def _route(self, pieces: list[Piece]) -> list[Piece]:
        routed: list[Piece] = []
        for kind, text in pieces:
            if kind == "answer":
                answer = self._answer(text)
                self._content_shown = self._content_shown or bool(answer)
                routed += answer
            elif self._field_seen and not self._tagged_settled:
                self._tagged.append(text)
            else:
                routed.append((kind, text))
                if not self._unknown:
                    self.reasoning_chars += len(text)
                    self._content_shown = True
        return routed

    def _settle_tagged(self, at_end: bool) -> list[Piece]:
        """Content in tags beside a reasoning field: a repeat of it, or an answer after a
        stray `<think>`? Settled once the block closes or the stream ends."""
        if self._tagged_settled or not self._tagged or not (self._content.closed or at_end):
            return []
        self._tagged_settled = True
        if repeats("".join(self._tagged), "".join(self._field_text)):
            return []
        # A stray tag: what followed it is the answer, tag-like text and all.
        after_tag = "".join(self._raw_content).lstrip().removeprefix(OPEN_TAG)
        self._content = ReasoningSplitter(open=False)
        pieces = self._content.feed(after_tag)
        if at_end:
            pieces += self._content.finish()
        return self._route(pieces)

    def _answer(self, text: str) -> list[Piece]:
        """The answer, without the blank lines a server leaves after a `</think>` it removed."""
        if self._answer_started or not self._field_seen:
            self._answer_started = True
            return [("answer", text)]
        self._blank_lines.append(text)
        text = "".join(self._blank_lines)
        if not text.strip():
            return []
        self._answer_started = True
        visible = len(text) - len(text.lstrip())
        return [("answer", text[text.rfind("\n", 0, visible) + 1 :])]


def reasoning_field(delta) -> str:
    """The reasoning text of a delta, from whichever non-standard field the server uses."""
    extra = getattr(delta, "model_extra", None) or {}
    for name in REASONING_FIELDS:
        value = extra.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def repeats(text: str, reasoning: str) -> bool:
    """Whether `text` begins as `reasoning` does, whitespace aside. (Only the start: the
    content and the field of one stream may be a chunk apart.)"""
    text, reasoning = "".join(text.split()), "".join(reasoning.split())
    length = min(len(text), len(reasoning), 64)
    return length > 0 and text[:length] == reasoning[:length]


class WrongShape(ValueError):
    """A stream event that is JSON, but not a chunk of a completion."""


def chunk_parts(chunk) -> tuple[str, str, str | None] | None:
    """(content, reasoning, finish_reason) of a chat or /v1/completions chunk; None for a
    chunk with no choice (a usage chunk). The client checks no shapes: anything else
    (`[1, 2]`, `null`, a delta that is a number) raises WrongShape."""
    if not isinstance(chunk, openai.BaseModel):
        raise WrongShape(f"an event that is not an object: {json.dumps(chunk)[:40]}")
    choices = getattr(chunk, "choices", None)
    if not choices:
        return None
    choice = choices[0] if isinstance(choices, list) else None
    if not isinstance(choice, openai.BaseModel):
        raise WrongShape("`choices` is not a list of objects")
    wire = getattr(choice, "delta", None)  # None in a /v1/completions chunk
    if wire is not None and not isinstance(wire, openai.BaseModel):
        raise WrongShape("a `delta` that is not an object")
    content = getattr(choice, "text", None) if wire is None else getattr(wire, "content", None)
    finish_reason = getattr(choice, "finish_reason", None)
    if not isinstance(content, str | None) or not isinstance(finish_reason, str | None):
        raise WrongShape("a `content`, `text` or `finish_reason` that is not text")
    return content or "", reasoning_field(wire), finish_reason
