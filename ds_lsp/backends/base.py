"""The one protocol every model backend speaks.

A backend turns a `ChatRequest` into a stream of `Delta`s: reasoning text and
answer text as they arrive, then exactly one final delta carrying a
`FinishReason`. Wire formats (`<think>` tags, `reasoning_content`,
`reasoning`, `thinking`) are normalised inside the backend, so no caller ever
sees a tag. Failures (server down, bad model file, HTTP errors, malformed
streams) raise `ModelError` with a message meant for the user.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol


class ModelError(Exception):
    """A failure the user can act on. The message says what happened and what to try.

    Messages never contain API keys.
    """


class FinishReason(enum.StrEnum):
    STOP = "stop"  # the model finished its answer
    LENGTH = "length"  # cut off: max tokens, or the reasoning budget over HTTP
    CANCELLED = "cancelled"  # the caller asked to stop
    ERROR = "error"  # the server ended the stream abnormally (abort, filter, ...)


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class RawPrompt:
    """A prompt ds-lsp rendered itself, sent with no chat template around it: a
    fill-in-the-middle template, or R1's chat format with an empty think block
    prefilled (reasoning skipped, for servers with no per-request switch).

    The pieces alternate between the format's own markers (`<|fim_prefix|>`,
    `<｜User｜>`: special tokens) and the user's text (never read as special
    tokens, so code that contains such text cannot inject them)."""

    pieces: tuple[tuple[str, bool], ...]  # (text, is_marker)

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.pieces)


@dataclass(frozen=True)
class ChatRequest:
    """What to generate. R1 advice: no system prompt, instructions in the user turn."""

    messages: Sequence[Message]
    max_tokens: int = 4096
    # "on": the model reasons first (answer forced to start with "<think>\n").
    # "off": reasoning skipped with a prefilled empty think block (fast tasks).
    reasoning: Literal["on", "off"] = "on"
    # Reasoning tokens allowed before we force "</think>" (in process) or stop
    # and report it (over HTTP). None: no budget beyond max_tokens.
    reasoning_budget: int | None = None
    temperature: float = 0.6
    top_p: float = 0.95
    stop: Sequence[str] = ()
    # Which of the model's slots runs it. In process, "completion" has its own
    # context, so inline completions never wait behind an edit or a chat answer.
    slot: Literal["chat", "completion"] = "chat"
    # Set: send this prompt as it is (no chat template, no reasoning; `messages`
    # are ignored) and read everything the model says as the answer.
    raw: RawPrompt | None = None
    # Set: this model name instead of the backend's own (a FIM model on the same server).
    model: str | None = None
    # Set it to stop generation; the stream then ends with FinishReason.CANCELLED.
    cancel: asyncio.Event | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Delta:
    """One piece of a stream. The last delta of a stream has `finish` set."""

    reasoning: str = ""
    content: str = ""
    finish: FinishReason | None = None
    # Why it finished, in words, where there is more to say than the reason
    # ("the reasoning budget of 512 tokens ran out", "server sent finish_reason=abort").
    detail: str = ""


class Backend(Protocol):
    """A loaded model, local or remote."""

    name: str  # for messages: "llama_cpp (~/models/x.gguf)", "openai (http://...)"

    def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """Yield deltas, then one delta with `finish`. Raise ModelError on failure.

        Closing the iterator early (or cancelling the task consuming it)
        stops generation promptly: in process at the next token.
        """
        ...

    async def aclose(self) -> None:
        """Release the model / HTTP client."""
        ...


@dataclass
class Speed:
    """A backend's measured speed in tokens a second, smoothed over its requests:
    what sizes the inline-completion context (a cold spot should cost about 1 s)."""

    prompt_tps: float | None = None
    generation_tps: float | None = None

    # Weight of the newest measurement: follows a change of load within a few requests.
    SMOOTHING = 0.3

    def note_prompt(self, tokens: int, seconds: float) -> None:
        if tokens >= 16 and seconds > 0:  # a few cached-prefix tokens say nothing
            self.prompt_tps = self._smoothed(self.prompt_tps, tokens / seconds)

    def note_generation(self, tokens: int, seconds: float) -> None:
        if tokens >= 4 and seconds > 0:
            self.generation_tps = self._smoothed(self.generation_tps, tokens / seconds)

    def _smoothed(self, old: float | None, new: float) -> float:
        return new if old is None else old + self.SMOOTHING * (new - old)


@dataclass
class Generation:
    """A whole stream, collected."""

    reasoning: str = ""
    answer: str = ""
    finish: FinishReason = FinishReason.STOP
    detail: str = ""


async def collect(stream: AsyncIterator[Delta], on_delta=None) -> Generation:
    """Drain a stream into a Generation; `on_delta(delta)` sees each piece live."""
    reasoning: list[str] = []
    answer: list[str] = []
    result = Generation()
    async for delta in stream:
        if on_delta is not None:
            on_delta(delta)
        reasoning.append(delta.reasoning)
        answer.append(delta.content)
        if delta.finish is not None:
            result.finish = delta.finish
            result.detail = delta.detail
    result.reasoning = "".join(reasoning)
    result.answer = "".join(answer)
    return result
