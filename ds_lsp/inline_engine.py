"""Ghost-text suggestions: when to ask the model, what to ask, what to reuse.

No LSP here: the handlers in features/completion.py turn positions into
offsets and suggestions into items. Per request, cheapest first:

1. typed-ahead: the user typed the start of the suggestion on screen -> the rest;
2. the cache: the same text around the cursor was answered before;
3. the in-flight generation for this spot: begun at the keystroke's didChange,
   or for an earlier keystroke whose suggestion the user is typing along with;
4. a new generation, after the rest of the typing pause.

Timing, as llama.vim and tabby-agent do it:
- The work starts at didChange, where the cursor is the end of the typed text:
  the wait for a pause counts from the keystroke, not from the request. An
  editor that waits itself before asking (Neovim: 200 ms) finds the wait over,
  or the answer ready: it never waits twice.
- A keystroke that leaves a generation behind (the text before the cursor is no
  longer its prompt plus what it has produced) stops it at once; the next one
  never queues behind it. What llama.cpp evaluated of its prompt stays in the
  KV cache for the next.
- The first keystroke at a new spot prefills that spot's prompt (evaluation
  only), so by the pause only the last few tokens are left to evaluate.
- The context is sized from the backend's measured prompt speed, so a cold spot
  costs about COLD_SPOT_SECONDS; once a suggestion is shown there and the user
  stops typing for GROW_AFTER_IDLE, the full context is prefilled in the
  background and used from then on. A keystroke stops that prefill: a prompt's
  evaluation, which neither llama-server nor llama.cpp can share, must never
  hold up the next suggestion.
- A generation never starts while its spot is being prefilled: sent beside the
  prefill, it would evaluate the same cold prompt again (llama-server gives it
  another slot) and a closed stream does not stop a prompt's evaluation.
- Generation is capped: after completion_time_budget_ms of writing, the
  suggestion ends with its first complete line (llama.vim's t_max_predict_ms).

A result computed for an older version of the document is never returned.
After a suggestion is shown, the one that follows its acceptance is computed in
the background (speculative, as llama.vim does).

The typing rhythm is in inline_typing.py, the prefills that warm the model's
prompt cache in inline_warmup.py, the counts for benchmarks in inline_stats.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ds_lsp.backends.base import ChatRequest, ModelError
from ds_lsp.completion_prompts import (
    PromptStyle,
    completion_request,
    fim_template_problem,
    reserved_chars,
)
from ds_lsp.config import Settings
from ds_lsp.context.gather import CompletionContext, gather
from ds_lsp.documents import Document
from ds_lsp.inline_stats import Stats
from ds_lsp.inline_typing import WAITING_CLIENT_FACTOR, Typing
from ds_lsp.inline_warmup import Warmup
from ds_lsp.prompt_style import chosen_style
from ds_lsp.suggestion_cache import SuggestionCache, TextAround, typed_ahead
from ds_lsp.suggestions import SuggestionStream

log = logging.getLogger(__name__)

# A generation whose request was cancelled waits this long for a newer request to
# take it over before it is cancelled too (a keystroke that does not fit it stops
# it at once, at didChange).
ADOPTION_GRACE = 0.2
# A suggestion still on screen after this long gets its follow-up prepared.
SPECULATE_AFTER = 0.25
# After the time cap, a suggestion still without a complete line is cut this much later.
HARD_CAP_FACTOR = 2.0
# How much text around the cursor identifies a request for the cache.
CACHE_PREFIX_CHARS = 600
CACHE_SUFFIX_CHARS = 200


@dataclass(frozen=True)
class Suggestion:
    text: str  # what goes in at the cursor
    end: int  # code point offset up to which existing text is replaced (the cursor: none)
    source: str  # "model", "cache", "typed-ahead", "stream" (for logs and benchmarks)
    wait_ms: float = 0.0  # spent waiting for the pause after the request came
    model_ms: float = 0.0  # spent waiting for the model after the request came


@dataclass
class _Shown:
    """The last suggestion given for a document: for typed-ahead."""

    around: TextAround  # the text around the cursor when it was shown
    text: str


@dataclass
class _InFlight:
    """Work under way for one spot of one document: the wait for a pause, then the
    generation."""

    around: TextAround  # the text around the cursor it is for
    task: asyncio.Task | None = None  # -> the cleaned suggestion, "" or None
    stream: SuggestionStream | None = None  # once the model writes: what it produced
    speculative: bool = False
    waited_until: float = 0.0  # when the wait for the pause ended
    followers: int = 0  # requests waiting for its suggestion

    def produced(self) -> str:
        return self.stream.text if self.stream is not None else ""


def _key(uri: str, around: TextAround) -> tuple[str, str, str]:
    """The cache key: the text around the cursor, cheap enough to check before the
    context is gathered."""
    return (uri, around.before[-CACHE_PREFIX_CHARS:], around.after[:CACHE_SUFFIX_CHARS])


class InlineEngine:
    def __init__(
        self,
        models,  # ModelScheduler: stream, prefill, completion_style, completion_speed
        settings: Callable[[], Settings],
        open_documents: Callable[[], list[Document]],
        start_task: Callable,  # TaskRegistry.start, for background work
        root_uri: Callable[[], str | None] = lambda: None,  # for file names in prompts
    ) -> None:
        self._models = models
        self._root_uri = root_uri
        self._settings = settings
        self._open_documents = open_documents
        self._start_task = start_task
        self.cache = SuggestionCache()
        self.stats = Stats()
        self._typing = Typing(settings)
        self._warmup = Warmup(models, settings, start_task, self._request, self.stats)
        self._shown: dict[str, _Shown] = {}
        self._in_flight: dict[str, _InFlight] = {}
        self._asked: set[str] = set()  # documents the editor asks ghost text for
        self._preparing: asyncio.Task | None = None
        self._last_error: str | None = None
        self._cancelled_at: dict[asyncio.Task, float] = {}

    # -- what the editor does ------------------------------------------------------------

    def note_open(self, document: Document) -> None:
        """A document opened: get the model ready (loaded, its prompt style known) before
        the first pause, off the event loop."""
        if self._preparing is None:
            self._preparing = self._start_task(self._prepare(), name="prepare the model")

    def note_change(self, document: Document, cursor: int | None) -> None:
        """A didChange applied; `cursor` is where the typed text ends (None: unknown).
        Stops a generation the change left behind, then starts this spot's work."""
        uri, now = document.uri, time.perf_counter()
        self._typing.note_change(uri, now)
        self._warmup.stop_growing(uri)  # typing goes on: the next suggestion first
        if cursor is None:
            self._cancel_in_flight(uri)
            return
        around = TextAround.at(document.text, cursor)
        self._drop_stale(uri, around)
        if uri not in self._asked or uri in self._in_flight:
            return  # the editor does not ask here, or a generation that fits runs
        if self._reusable(uri, around):
            return  # typed-ahead or the cache will answer
        self._warmup.maybe_prefill(document, cursor)
        delay = self._typing.debounce_seconds(uri)
        if self._typing.client_waits(uri):
            # Its own wait already filters the keystrokes of a burst: ours can be short.
            delay *= WAITING_CLIENT_FACTOR
        self._begin(document, cursor, invoked=False, delay=delay)

    async def suggest(self, document: Document, offset: int, invoked: bool) -> Suggestion | None:
        """A suggestion at `offset` of `document`, or None. Cancellable at any await."""
        self.stats.requests += 1
        uri = document.uri
        self._asked.add(uri)
        around = TextAround.at(document.text, offset)
        asked = time.perf_counter()
        self._typing.note_request(uri, asked)
        self._drop_stale(uri, around)
        reused = self._reusable(uri, around)
        if reused is not None:
            if reused.source == "cache":
                self._after_shown(document, offset, reused.text)
            return reused

        in_flight = self._in_flight.get(uri)
        if in_flight is not None and invoked and in_flight.stream is None:
            self._cancel_in_flight(uri)  # asked for now: no more waiting for a pause
            in_flight = None
        if in_flight is None:
            self._warmup.maybe_prefill(document, offset)
            delay = 0.0
            if not invoked:  # the wait counts from the keystroke: never twice
                delay = self._typing.changed_at(uri, asked) + self._typing.debounce_seconds(uri)
                delay -= asked
            in_flight = self._begin(document, offset, invoked, max(0.0, delay))
        suggestion = await self._follow(uri, in_flight)
        done = time.perf_counter()
        typed = around.typed_since(in_flight.around)
        rest = typed_ahead("", suggestion or "", typed) if typed is not None else None
        if not rest:
            return None
        wait_ms = max(0.0, in_flight.waited_until - asked) * 1e3
        model_ms = (done - max(asked, in_flight.waited_until)) * 1e3
        source = "model" if around.before == in_flight.around.before else "stream"
        if source == "stream":
            self.stats.stream_reuses += 1
        shown = self._show(uri, around, rest, source, wait_ms, model_ms)
        if source == "model" and self._typing.changed_at(uri, 0.0) <= asked:
            self._after_shown(document, offset, rest)  # nothing typed since: it shows
        return shown

    def tasks_held(self) -> int:
        """The tasks this engine holds on to (for `dsLsp.inlineStats`): a few at most,
        whatever the length of the session."""
        return len(self._in_flight) + len(self._cancelled_at) + self._warmup.tasks_held()

    def forget(self, uri: str) -> None:
        """The document closed."""
        self._cancel_in_flight(uri)
        self._warmup.forget(uri)
        self._typing.forget(uri)
        self._shown.pop(uri, None)
        self._asked.discard(uri)

    # -- reuse -----------------------------------------------------------------------------

    def _reusable(self, uri: str, around: TextAround) -> Suggestion | None:
        """Typed-ahead or a cache hit: an answer with no model call."""
        shown = self._shown.get(uri)
        typed = around.typed_since(shown.around) if shown is not None else None
        if typed is not None and around.after == shown.around.after:
            rest = typed_ahead("", shown.text, typed)
            if rest:
                self.stats.typed_ahead_hits += 1
                return Suggestion(rest, around.offset, "typed-ahead")
        cached = self.cache.get(_key(uri, around))
        if cached is not None:
            self.stats.cache_hits += 1
            return self._show(uri, around, cached, "cache")
        return None

    def _drop_stale(self, uri: str, around: TextAround) -> None:
        """Stop the generation under way if the text no longer fits it: only the old
        prompt plus text the model already produced may stand before the cursor."""
        in_flight = self._in_flight.get(uri)
        if in_flight is None or in_flight.around.after != around.after:
            if in_flight is not None:
                self._cancel_in_flight(uri, stale=True)
            return
        if in_flight.speculative and in_flight.around.typed_since(around) is not None:
            return  # typing along the suggestion its speculation follows
        typed = around.typed_since(in_flight.around)
        if typed is not None and in_flight.produced().startswith(typed):
            return
        self._cancel_in_flight(uri, stale=True)

    def _show(
        self,
        uri: str,
        around: TextAround,
        text: str,
        source: str,
        wait_ms: float = 0.0,
        model_ms: float = 0.0,
    ) -> Suggestion:
        self._shown[uri] = _Shown(around, text)
        return Suggestion(text, around.offset, source, wait_ms, model_ms)

    async def _follow(self, uri: str, in_flight: _InFlight) -> str | None:
        """Wait for a generation's suggestion. If this request is cancelled (the
        editor's $/cancelRequest comes just before the next keystroke's request),
        the generation goes on for a moment, for that next request to take it
        over, unless a keystroke that does not fit it stops it first."""
        in_flight.followers += 1
        try:
            return await asyncio.shield(in_flight.task)
        except asyncio.CancelledError:
            if in_flight.task.cancelled() and not asyncio.current_task().cancelling():
                return None  # a keystroke left the generation behind: nothing to show
            asyncio.get_running_loop().call_later(
                ADOPTION_GRACE, self._cancel_if_orphaned, uri, in_flight
            )
            raise
        finally:
            in_flight.followers -= 1

    def _cancel_if_orphaned(self, uri: str, in_flight: _InFlight) -> None:
        if self._in_flight.get(uri) is in_flight and in_flight.followers == 0:
            self._cancel_in_flight(uri)

    def _cancel_in_flight(self, uri: str, stale: bool = False) -> None:
        in_flight = self._in_flight.pop(uri, None)
        if in_flight is None or in_flight.task is None or in_flight.task.done():
            return
        if stale and in_flight.stream is not None:
            self.stats.stale_aborted += 1
        self._cancelled_at[in_flight.task] = time.perf_counter()
        in_flight.task.cancel()

    # -- the model -------------------------------------------------------------------------

    async def _prepare(self) -> PromptStyle | None:
        """Load the completion model and learn its prompt style; log the choice once."""
        try:
            detected = await self._models.completion_style()
        except ModelError as exc:
            self._report(exc)
            return None
        settings = self._settings()
        style = chosen_style(detected, settings.completion_prompt, settings.fim_template)
        log.info("inline completions: %s prompt (%s)", style.style, style.reason)
        return style

    async def _style(self) -> PromptStyle | None:
        if self._preparing is None or (self._preparing.done() and self._preparing.result() is None):
            self._preparing = self._start_task(self._prepare(), name="prepare the model")
        style = await asyncio.shield(self._preparing)
        if style is None:
            return None
        settings = self._settings()  # settings may have changed since
        return chosen_style(style, settings.completion_prompt, settings.fim_template)

    def _begin(self, document: Document, offset: int, invoked: bool, delay: float) -> _InFlight:
        """Start this spot's work: wait `delay` for the pause, then generate."""
        self._cancel_in_flight(document.uri)
        in_flight = _InFlight(TextAround.at(document.text, offset))
        in_flight.waited_until = time.perf_counter() + delay
        work = self._wait_then_generate(document, offset, invoked, delay, in_flight)
        in_flight.task = asyncio.ensure_future(work)
        self._in_flight[document.uri] = in_flight
        in_flight.task.add_done_callback(lambda task: self._drop_in_flight(document.uri, task))
        return in_flight

    async def _wait_then_generate(
        self, document: Document, offset: int, invoked: bool, delay: float, in_flight: _InFlight
    ) -> str | None:
        if delay > 0:
            _ = document.tree  # bring the syntax tree up to date while waiting anyway
            await asyncio.sleep(delay)
        prefill = self._warmup.prefilling(document.uri)
        if prefill is not None and not prefill.done():
            # A generation sent now would evaluate the same cold prompt beside the
            # prefill (llama-server puts it in another slot), and neither a closed
            # stream nor an abort stops a prompt's evaluation: wait for the warm cache.
            # asyncio.wait, not await: cancelling this request must not cancel it.
            await asyncio.wait([prefill])
        request = await self._request(document, offset, invoked)
        if request is None:
            return None
        context, chat_request = request
        suggestion = await self._generate(context, chat_request, in_flight)
        if suggestion:  # an editor that asks later (Neovim) finds it in the cache
            self.cache.put(_key(document.uri, in_flight.around), suggestion)
        return suggestion

    async def _request(
        self, document: Document, offset: int, invoked: bool = False, full: bool = False
    ) -> tuple[CompletionContext, ChatRequest] | None:
        """The context and model request for a suggestion at `offset`, or None (no
        suggestion wanted there, or no usable prompt style)."""
        style = await self._style()
        if style is None:
            return None
        settings = self._settings()
        if style.style == "fim" and fim_template_problem(style.fim_template or ""):
            problem = fim_template_problem(style.fim_template or "")
            self._report(ModelError(f"fim_template {style.fim_template!r}: {problem}"))
            return None
        # Asked for by hand: the user waits for it, so the full context.
        tokens = self._warmup.context_tokens(document, offset, full or invoked)
        context = gather(
            document,
            offset,
            [other for other in self._open_documents() if other.uri != document.uri],
            tokens,
            invoked=invoked,
            root_uri=self._root_uri(),
            reserved_chars=reserved_chars(style),
        )
        if context.mode == "none":
            return None
        request = completion_request(
            context, style, settings.completion_max_tokens, settings.completion_model
        )
        return context, request

    async def _generate(
        self, context: CompletionContext, request: ChatRequest, in_flight: _InFlight
    ) -> str | None:
        """Ask the model; return the cleaned suggestion ("" or None: nothing to show)."""
        settings = self._settings()
        self.stats.model_requests += 1
        stream = in_flight.stream = SuggestionStream(
            context, continues_text=request.raw is not None
        )
        started = time.perf_counter()
        cap = settings.completion_time_budget_ms / 1000
        chunks = self._models.stream(request)
        loop = asyncio.get_running_loop()
        first_output: float | None = None
        written: list[str] = []  # what the model wrote, for the debug log
        try:
            async for delta in chunks:
                written.append(delta.content)
                # Reasoning never becomes ghost text, whatever the server sends.
                if delta.content and not stream.feed(delta.content):
                    break  # complete: stop the model now
                now = loop.time()
                if first_output is None and delta.content:
                    first_output = now
                # The cap bounds the writing, not the prompt's evaluation (which a
                # keystroke cancels, and the KV cache makes short once warm).
                if first_output is not None and now - first_output > cap:
                    line_done = "\n" in stream.text
                    if line_done or now - first_output > cap * HARD_CAP_FACTOR:
                        log.debug("completion: the %d ms time cap ended it", cap * 1000)
                        break
        except ModelError as exc:
            self._report(exc)
            return None
        finally:
            await chunks.aclose()
            cancelled_at = self._cancelled_at.pop(asyncio.current_task(), None)
            if cancelled_at is not None:  # the stream is closed now
                self.stats.cancel_ms.append((time.perf_counter() - cancelled_at) * 1e3)
        self.stats.model_ms.append((time.perf_counter() - started) * 1e3)
        self._last_error = None
        text = stream.text  # cleaned as it streamed (cleaning twice would re-indent twice)
        if first_output is not None and "\n" in text and loop.time() - first_output > cap:
            text = text.split("\n", 1)[0]  # over the cap: the first complete line only
        log.debug(
            "completion (%s) after %r: the model wrote %r; shown: %r",
            context.mode,
            context.line_prefix[-40:],
            "".join(written),
            text,
        )
        return text

    def _report(self, error: ModelError) -> None:
        """A model failure, logged once until it changes or the model works again."""
        message = str(error)
        if message != self._last_error:
            log.warning("inline completion: %s", message)
            self._last_error = message

    # -- ahead of the pause ----------------------------------------------------------------

    def _after_shown(self, document: Document, offset: int, suggestion: str) -> None:
        """A suggestion shows: prepare what comes next in the background: the
        suggestion after accepting this one; where the spot got less than the full
        context, the full prompt prefilled, used from the next request on."""
        self._warmup.after_shown(document, offset)
        self._speculate(document, offset, suggestion)

    def _speculate(self, document: Document, offset: int, suggestion: str) -> None:
        """Compute, in the background, the suggestion that follows accepting this one."""
        if "\n" in suggestion.rstrip("\n"):
            return  # a multi-line suggestion ends a thought: nothing to guess after it
        uri = document.uri
        if uri in self._in_flight:
            return
        accepted = document.with_insertion(offset, suggestion)
        around = TextAround.at(accepted.text, offset + len(suggestion))
        key = _key(uri, around)
        if self.cache.get(key) is not None:
            return
        in_flight = _InFlight(around, speculative=True)

        async def speculate():
            # Only once the user looks at the suggestion: a keystroke that does not
            # accept it cancels this task before it asks the model.
            await asyncio.sleep(SPECULATE_AFTER)
            request = await self._request(accepted, offset + len(suggestion))
            if request is None:
                return None
            self.stats.speculative += 1
            result = await self._generate(*request, in_flight)
            if result:
                self.cache.put(key, result)
            return result

        in_flight.waited_until = time.perf_counter() + SPECULATE_AFTER
        in_flight.task = self._start_task(speculate(), name=f"speculative completion {uri}")
        self._in_flight[uri] = in_flight
        in_flight.task.add_done_callback(lambda task: self._drop_in_flight(uri, task))

    def _drop_in_flight(self, uri: str, task: asyncio.Task) -> None:
        # A task cancelled before it reached the model never read its cancel time: an
        # entry kept would keep the task, its frames and its document for good.
        self._cancelled_at.pop(task, None)
        current = self._in_flight.get(uri)
        if current is not None and current.task is task:
            del self._in_flight[uri]
