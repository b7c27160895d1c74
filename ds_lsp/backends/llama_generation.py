"""One in-process generation, run in a slot's worker thread.

`Generation` samples tokens after a tokenized prompt, splits reasoning from the
answer as they come, cuts the answer at stop strings, forces `</think>` when
the reasoning budget runs out, and hands every piece over as a `Delta`. It
knows nothing of slots, templates or loading: `llama_cpp.LlamaCppBackend`
prepares the model and the prompt and passes them in.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import llama_cpp
import numpy as np

from ds_lsp.backends.base import ChatRequest, Delta, FinishReason, ModelError, Speed
from ds_lsp.reasoning import ReasoningSplitter, partial_suffix_length

log = logging.getLogger(__name__)

THINK_OPEN = "<think>\n"
# Ends the reasoning when its budget runs out, and (after THINK_OPEN) skips it.
THINK_CLOSE = "\n</think>\n\n"


@dataclass
class Usage:
    """Token counts of the current (or last) request, updated as it runs."""

    prompt_tokens: int = 0
    # Prompt tokens llama.cpp actually evaluated; the rest came from the KV
    # cache of the previous request. Read from llama.cpp's own counters.
    prompt_tokens_evaluated: int = 0
    generated_tokens: int = 0


class AnswerStop:
    """Cuts the answer at the first stop string, as the answer streams.

    Stop strings apply to the answer only: reasoning often quotes code, and a
    stop string such as a closing fence there must not end the generation.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [stop for stop in stops if stop]
        self._held = ""

    def feed(self, text: str) -> tuple[str, str | None]:
        """Return the text that is certainly answer, and the stop string found, if any."""
        text = self._held + text
        self._held = ""
        found = [(text.find(stop), stop) for stop in self._stops if stop in text]
        if found:
            index, stop = min(found)
            return text[:index], stop
        # Hold back the longest ending that could still grow into a stop string.
        held = max((partial_suffix_length(text, stop) for stop in self._stops), default=0)
        self._held = text[len(text) - held :]
        return text[: len(text) - held], None

    def finish(self) -> str:
        held, self._held = self._held, ""
        return held


class Generation:
    """One request in the worker thread: sample tokens, split, stop, hand over."""

    def __init__(
        self,
        request: ChatRequest,
        stop: threading.Event,
        hand_over: Callable[[Delta | BaseException], None],
        speed: Speed,
    ) -> None:
        self.request = request
        self.stop = stop
        self.hand_over = hand_over
        self.speed = speed  # the backend's measured speeds, updated as this runs
        self.reasoning = False  # known once the model is loaded (see run)
        self.splitter = ReasoningSplitter(open=False)
        self.answer_stop = AnswerStop(request.stop)
        self.generated: list[int] = []
        self.hit_stop_string = False
        self.usage = Usage()

    def cancelled(self) -> bool:
        # Reading an asyncio.Event from this thread is safe: is_set() reads a flag.
        cancel = self.request.cancel
        return self.stop.is_set() or (cancel is not None and cancel.is_set())

    def run(self, llm: llama_cpp.Llama, prompt: list[int], model_reasons: bool) -> None:
        """Generate after `prompt` (tokens, the forced answer start included)."""
        request = self.request
        # A model that does not reason, or a raw prompt, answers from the first token;
        # stray tags still go.
        self.reasoning = request.raw is None and request.reasoning == "on" and model_reasons
        self.splitter = ReasoningSplitter(open=self.reasoning)
        n_ctx = llm.n_ctx()
        if len(prompt) >= n_ctx:
            raise ModelError(
                f"the prompt is {len(prompt)} tokens, more than the model's context of {n_ctx}: "
                "send less context or raise n_ctx"
            )
        self.usage.prompt_tokens = len(prompt)
        budget = request.reasoning_budget if self.reasoning else None

        finish, detail = self.sample(llm, prompt, budget, measure_prompt=True)
        if finish is None:  # the reasoning budget ran out: close it, let the model answer
            forced = f"the reasoning budget of {budget} tokens ran out; </think> was forced"
            self.emit(self.splitter.feed(THINK_CLOSE))
            continuation = prompt + self.generated
            continuation += llm.tokenize(
                THINK_CLOSE.encode("utf-8", "replace"), add_bos=False, special=True
            )
            finish, detail = self.sample(llm, continuation, budget=None)
            detail = f"{forced}; {detail}" if detail else forced

        if finish is not FinishReason.CANCELLED and not self.hit_stop_string:
            # Release what the splitter and the stop-string check still hold.
            found = self.emit(self.splitter.finish())
            rest = self.answer_stop.finish() if found is None else ""
            if rest:
                self.hand_over(Delta(content=rest))
            if found is not None:
                detail = f"stop string {found!r}"
            elif not self.splitter.closed and self.reasoning and not detail:
                detail = "the model stopped before its reasoning ended: no answer"
        log.debug(
            "prompt %d tokens (%d evaluated, the rest from the KV cache), generated %d: %s",
            self.usage.prompt_tokens,
            self.usage.prompt_tokens_evaluated,
            self.usage.generated_tokens,
            finish,
        )
        self.hand_over(Delta(finish=finish, detail=detail))

    def sample(
        self,
        llm: llama_cpp.Llama,
        prompt: list[int],
        budget: int | None,
        measure_prompt: bool = False,
    ) -> tuple[FinishReason | None, str]:
        """Generate after `prompt`; return (finish, detail), finish None when over budget."""
        request = self.request
        limit = min(request.max_tokens - len(self.generated), llm.n_ctx() - len(prompt))
        if limit <= 0:
            return FinishReason.LENGTH, self.length_detail(llm)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if measure_prompt:
            # generate() reuses the KV cache for the prefix shared with what the
            # context holds (at least one token is evaluated again, for its logits).
            cached = min(cached_prefix(llm, prompt), len(prompt) - 1)
            self.usage.prompt_tokens_evaluated = len(prompt) - cached
        new_tokens = 0
        started = time.perf_counter()
        first_token_at: float | None = None
        for token in llm.generate(prompt, temp=request.temperature, top_p=request.top_p):
            if first_token_at is None:
                first_token_at = time.perf_counter()
                if measure_prompt:
                    self.speed.note_prompt(
                        self.usage.prompt_tokens_evaluated, first_token_at - started
                    )
            elif new_tokens % 16 == 0:
                self.speed.note_generation(new_tokens, time.perf_counter() - first_token_at)
            if self.cancelled():
                return FinishReason.CANCELLED, ""
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            self.generated.append(token)
            self.usage.generated_tokens = len(self.generated)
            new_tokens += 1
            text = decoder.decode(llm.detokenize([token]))
            found = self.emit(self.splitter.feed(text))
            if found is not None:
                self.hit_stop_string = True
                return FinishReason.STOP, f"stop string {found!r}"
            if new_tokens >= limit:
                return FinishReason.LENGTH, self.length_detail(llm)
            if budget and not self.splitter.closed and len(self.generated) >= budget:
                self.emit(self.splitter.feed(decoder.decode(b"", final=True)))
                return None, ""
        self.emit(self.splitter.feed(decoder.decode(b"", final=True)))
        return FinishReason.STOP, ""

    def length_detail(self, llm: llama_cpp.Llama) -> str:
        where = "the answer" if self.splitter.closed or not self.reasoning else "the reasoning"
        if len(self.generated) >= self.request.max_tokens:
            return f"max_tokens ({self.request.max_tokens}) reached during {where}"
        return f"the context window ({llm.n_ctx()} tokens) is full, during {where}"

    def emit(self, pieces: list[tuple[str, str]]) -> str | None:
        """Hand pieces over as deltas; return the stop string if the answer hit one."""
        for kind, text in pieces:
            if kind == "reasoning":
                self.hand_over(Delta(reasoning=text))
                continue
            answer, found = self.answer_stop.feed(text)
            if answer:
                self.hand_over(Delta(content=answer))
            if found is not None:
                return found
        return None


def cached_prefix(llm: llama_cpp.Llama, prompt: list[int]) -> int:
    """How many leading tokens of `prompt` the context's KV cache already holds."""
    held = llm.input_ids[: llm.n_tokens]
    length = min(len(held), len(prompt))
    same = held[:length] == np.asarray(prompt[:length], dtype=held.dtype)
    return length if same.all() else int(same.argmin())
