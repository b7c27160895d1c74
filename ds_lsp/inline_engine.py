"""Ghost-text suggestions: when to ask the model, what to ask, what to reuse.

No LSP here: the handlers in features/completion.py turn positions into
offsets and suggestions into items. Per request, cheapest first:

1. typed-ahead: the user typed the start of the suggestion on screen -> the rest;
2. the cache: the same text around the cursor was answered before;
3. the in-flight stream: a generation already running for an earlier keystroke
   whose suggestion the user is typing along with -> wait for it, give the rest;
4. the model, after a debounce (automatic triggers only), with its reasoning
   skipped, a token cap, a time budget, and a stream filter that stops it as
   soon as the suggestion is complete.

A newer request for a document supersedes the older one: its debounce or model
stream is cancelled (unless it can be reused), and a result computed for an
older version of the document is never returned. After a suggestion is shown,
the one that follows its acceptance is computed in the background
(speculative, as llama.vim does) under the same rules.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ds_lsp.backends.base import ChatRequest, Message, ModelError
from ds_lsp.config import Settings
from ds_lsp.context.gather import (
    CompletionContext,
    fim_template_problem,
    gather,
    render_chat_prompt,
    render_fim,
)
from ds_lsp.documents import Document
from ds_lsp.suggestions import SuggestionCache, SuggestionStream, typed_ahead

log = logging.getLogger(__name__)

# Single-line suggestions need few tokens; multi-line ones get the setting's cap.
SINGLE_LINE_MAX_TOKENS = 32
# Typing gaps longer than this are pauses, not typing speed.
TYPING_GAP_LIMIT = 0.6
# The adaptive debounce waits this share of the user's median typing gap: a
# little under the gap, so a pause is answered soon after the gap it exceeds.
ADAPTIVE_FACTOR = 0.9
# The adaptive debounce never waits longer than this.
ADAPTIVE_DEBOUNCE_CEILING = 0.3
# A cancelled request's generation waits this long for a newer request to take
# it over before it is cancelled too (a little more than a typing gap).
ADOPTION_GRACE = 0.2
# A suggestion still on screen after this long gets its follow-up prepared.
SPECULATE_AFTER = 0.25
# How much text around the cursor identifies a request for the cache.
CACHE_PREFIX_CHARS = 600
CACHE_SUFFIX_CHARS = 200


@dataclass(frozen=True)
class Suggestion:
    text: str  # what goes in at the cursor
    end: int  # code point offset up to which existing text is replaced (the cursor: none)
    source: str  # "model", "cache", "typed-ahead", "stream" (for logs and benchmarks)
    wait_ms: float = 0.0  # spent in the debounce
    model_ms: float = 0.0  # spent waiting for the model


@dataclass
class Stats:
    """What the engine did; read by benchmarks and shown in debug logs."""

    requests: int = 0
    model_requests: int = 0
    cache_hits: int = 0
    typed_ahead_hits: int = 0
    stream_reuses: int = 0
    superseded: int = 0
    speculative: int = 0
    model_ms: list[float] = field(default_factory=list)
    # From cancelling a generation until its model stream is closed.
    cancel_ms: list[float] = field(default_factory=list)


@dataclass
class _Shown:
    """The last suggestion given for a document: for typed-ahead."""

    before: str  # the document text before the cursor when it was shown
    after: str  # ... and after it
    text: str


@dataclass
class _InFlight:
    """A generation under way for one document."""

    before: str
    after: str
    task: asyncio.Task  # -> str (the cleaned suggestion) or None
    followers: int = 0  # requests waiting for its suggestion


def _key(uri: str, before: str, after: str) -> tuple[str, str, str]:
    """The cache key: the text around the cursor, cheap enough to check before the
    context is gathered."""
    return (uri, before[-CACHE_PREFIX_CHARS:], after[:CACHE_SUFFIX_CHARS])


class InlineEngine:
    def __init__(
        self,
        stream_model: Callable,  # ModelScheduler.stream
        settings: Callable[[], Settings],
        open_documents: Callable[[], list[Document]],
        start_task: Callable | None = None,  # TaskRegistry.start, for speculative work
        root_uri: Callable[[], str | None] = lambda: None,  # for file names in prompts
    ) -> None:
        self._root_uri = root_uri
        self._stream_model = stream_model
        self._settings = settings
        self._open_documents = open_documents
        self._start_task = start_task
        self.cache = SuggestionCache()
        self.stats = Stats()
        self._shown: dict[str, _Shown] = {}
        self._in_flight: dict[str, _InFlight] = {}
        self._waiting: dict[str, asyncio.Task] = {}  # the request debouncing per document
        self._arrivals: dict[str, collections.deque[float]] = {}
        self._last_error: str | None = None
        self._cancelled_at: dict[asyncio.Task, float] = {}
        self._sequence: dict[str, int] = {}  # requests seen per document

    # -- the entry point -----------------------------------------------------------------

    async def suggest(self, document: Document, offset: int, invoked: bool) -> Suggestion | None:
        """A suggestion at `offset` of `document`, or None. Cancellable at any await."""
        self.stats.requests += 1
        uri, text = document.uri, document.text
        sequence = self._sequence[uri] = self._sequence.get(uri, 0) + 1
        before, after = text[:offset], text[offset:]
        now = time.perf_counter()
        self._note_arrival(uri, now)
        self._supersede_waiting(uri)

        in_flight = self._in_flight.get(uri)
        if in_flight is not None and not self._compatible(in_flight, before, after):
            self._cancel_in_flight(uri)  # it serves a spot the user has left
            in_flight = None
        reused = self._typed_ahead(uri, before, after)
        if reused is not None:
            self.stats.typed_ahead_hits += 1
            return reused
        cached = self.cache.get(_key(uri, before, after))
        if cached is not None:
            self.stats.cache_hits += 1
            return self._show(uri, before, after, cached, "cache")
        waited = 0.0
        if in_flight is None and not invoked:
            # Wait for the user to pause; a newer keystroke cancels this wait.
            waiting = asyncio.current_task()
            if waiting is not None:
                self._waiting[uri] = waiting
            try:
                deadline = now + self.debounce_seconds(uri)
                # Bring the syntax tree up to date while waiting anyway (after an
                # edit in a broken spot that can take tens of ms).
                _ = document.tree
                await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
            finally:
                if self._waiting.get(uri) is waiting:
                    del self._waiting[uri]
            waited = (time.perf_counter() - now) * 1e3
            in_flight = self._in_flight.get(uri)
            if in_flight is not None and not self._compatible(in_flight, before, after):
                self._cancel_in_flight(uri)
                in_flight = None

        followed_ms = 0.0  # spent waiting for an earlier keystroke's generation
        if in_flight is not None:
            joined = time.perf_counter()
            suggestion = await self._follow(uri, in_flight)
            followed_ms = (time.perf_counter() - joined) * 1e3
            rest = typed_ahead("", suggestion or "", before[len(in_flight.before) :])
            if rest:
                self.stats.stream_reuses += 1
                return self._show(uri, before, after, rest, "stream", waited, followed_ms)
            if before == in_flight.before:
                return None  # the same spot: the model had nothing to add

        context = gather(
            document,
            offset,
            [other for other in self._open_documents() if other.uri != uri],
            self._settings().completion_context_tokens,
            invoked=invoked,
            root_uri=self._root_uri(),
        )
        if context.mode == "none":
            return None
        self._cancel_in_flight(uri)  # whatever runs now (a speculation) serves another spot
        task = asyncio.ensure_future(self._generate(context))
        self._in_flight[uri] = _InFlight(before, after, task)
        asked = time.perf_counter()
        try:
            suggestion = await self._follow(uri, self._in_flight[uri])
        finally:
            current = self._in_flight.get(uri)
            if current is not None and current.task is task and task.done():
                del self._in_flight[uri]
        if not suggestion:
            return None
        self.cache.put(_key(uri, before, after), suggestion)
        model_ms = followed_ms + (time.perf_counter() - asked) * 1e3
        shown = self._show(uri, before, after, suggestion, "model", waited, model_ms)
        if self._sequence[uri] == sequence:  # no newer request: this one will be shown
            self._speculate(document, offset, suggestion)
        return shown

    def debounce_seconds(self, uri: str) -> float:
        settings = self._settings()
        floor = settings.completion_debounce_ms / 1000
        if settings.completion_debounce == "fixed":
            return floor
        # Adaptive: wait about the user's usual gap between keystrokes, so many
        # mid-burst keystrokes never reach the model and a pause is answered
        # about one typing gap later.
        arrivals = self._arrivals.get(uri) or ()
        gaps = [b - a for a, b in zip(arrivals, list(arrivals)[1:], strict=False)]
        gaps = [gap for gap in gaps if gap < TYPING_GAP_LIMIT]
        if len(gaps) < 3:
            return floor
        return min(max(floor, statistics.median(gaps) * ADAPTIVE_FACTOR), ADAPTIVE_DEBOUNCE_CEILING)

    def forget(self, uri: str) -> None:
        """The document closed."""
        self._cancel_in_flight(uri)
        self._shown.pop(uri, None)
        self._arrivals.pop(uri, None)
        self._sequence.pop(uri, None)

    # -- reuse -----------------------------------------------------------------------------

    def _typed_ahead(self, uri: str, before: str, after: str) -> Suggestion | None:
        shown = self._shown.get(uri)
        if shown is None or not before.startswith(shown.before) or after != shown.after:
            return None
        rest = typed_ahead("", shown.text, before[len(shown.before) :])
        if not rest:
            return None
        return Suggestion(rest, len(before), "typed-ahead")

    def _compatible(self, in_flight: _InFlight, before: str, after: str) -> bool:
        """Whether a running generation can still serve this spot: the user typed on
        from where it started, and the text after the cursor is unchanged."""
        return before.startswith(in_flight.before) and after == in_flight.after

    def _show(
        self,
        uri: str,
        before: str,
        after: str,
        text: str,
        source: str,
        wait_ms: float = 0.0,
        model_ms: float = 0.0,
    ) -> Suggestion:
        self._shown[uri] = _Shown(before, after, text)
        return Suggestion(text, len(before), source, wait_ms, model_ms)

    async def _follow(self, uri: str, in_flight: _InFlight) -> str | None:
        """Wait for a generation's suggestion. If this request is cancelled (the
        editor's $/cancelRequest comes just before the next keystroke's request),
        the generation goes on for a moment, for that next request to take it
        over: on a CPU the prompt evaluation it has under way is most of the time
        a suggestion takes. Nobody takes it over: it is cancelled."""
        in_flight.followers += 1
        try:
            return await asyncio.shield(in_flight.task)
        except asyncio.CancelledError:
            asyncio.get_running_loop().call_later(
                ADOPTION_GRACE, self._cancel_if_orphaned, uri, in_flight
            )
            raise
        finally:
            in_flight.followers -= 1

    def _cancel_if_orphaned(self, uri: str, in_flight: _InFlight) -> None:
        if self._in_flight.get(uri) is in_flight and in_flight.followers == 0:
            self._cancel_in_flight(uri)

    def _supersede_waiting(self, uri: str) -> None:
        waiting = self._waiting.pop(uri, None)
        if waiting is not None and not waiting.done():
            self.stats.superseded += 1
            waiting.cancel()

    def _cancel_in_flight(self, uri: str) -> None:
        in_flight = self._in_flight.pop(uri, None)
        if in_flight is not None and not in_flight.task.done():
            self._cancelled_at[in_flight.task] = time.perf_counter()
            in_flight.task.cancel()

    def _note_arrival(self, uri: str, now: float) -> None:
        self._arrivals.setdefault(uri, collections.deque(maxlen=9)).append(now)

    # -- the model -------------------------------------------------------------------------

    async def _generate(self, context: CompletionContext) -> str | None:
        """Ask the model; return the cleaned suggestion ("" or None: nothing to show)."""
        settings = self._settings()
        problem = settings.fim_template and fim_template_problem(settings.fim_template)
        if problem:
            self._report(ModelError(f"fim_template {settings.fim_template!r}: {problem}"))
            return None
        self.stats.model_requests += 1
        request = self._request(context, settings)
        stream = SuggestionStream(context)
        started = time.perf_counter()
        budget = settings.completion_time_budget_ms / 1000
        chunks = self._stream_model(request)
        try:
            # The budget runs from the model's first output: it bounds the writing,
            # not the prompt evaluation, which the KV cache makes short once warm
            # (and a newer keystroke cancels anyway).
            async with asyncio.timeout(None) as deadline:
                async for delta in chunks:
                    if deadline.when() is None:
                        deadline.reschedule(asyncio.get_running_loop().time() + budget)
                    # Reasoning never becomes ghost text, whatever the server sends.
                    if delta.content and not stream.feed(delta.content):
                        break  # complete: stop the model now
        except TimeoutError:
            log.debug("completion: the time budget of %d ms ran out", budget * 1000)
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
        return stream.text  # cleaned as it streamed (cleaning twice would re-indent twice)

    def _request(self, context: CompletionContext, settings: Settings) -> ChatRequest:
        max_tokens = settings.completion_max_tokens
        if context.mode == "single_line":
            max_tokens = min(max_tokens, SINGLE_LINE_MAX_TOKENS)
        common = dict(
            max_tokens=max_tokens,
            reasoning="off",
            temperature=0.2,  # a suggestion should be the likely code, not a creative one
            top_p=0.95,
            slot="completion",
            stop=("\n",) if context.mode == "single_line" else (),
        )
        if settings.fim_template:
            return ChatRequest(
                messages=(),
                raw=render_fim(context, settings.fim_template),
                model=settings.completion_model,
                **common,
            )
        return ChatRequest(
            messages=[Message("user", render_chat_prompt(context))],
            model=settings.completion_model,
            **common,
        )

    def _report(self, error: ModelError) -> None:
        """A model failure, logged once until it changes or the model works again."""
        message = str(error)
        if message != self._last_error:
            log.warning("inline completion: %s", message)
            self._last_error = message

    # -- speculative next suggestion -------------------------------------------------------

    def _speculate(self, document: Document, offset: int, suggestion: str) -> None:
        """Compute, in the background, the suggestion that follows accepting this one."""
        if self._start_task is None or "\n" in suggestion.rstrip("\n"):
            return  # a multi-line suggestion ends a thought: nothing to guess after it
        uri, text = document.uri, document.text
        accepted_before = text[:offset] + suggestion
        after = text[offset:]
        key = _key(uri, accepted_before, after)
        if self.cache.get(key) is not None or uri in self._in_flight:
            return
        accepted = document.with_insertion(offset, suggestion)

        async def speculate():
            # Only once the user looks at the suggestion: a keystroke that does not
            # accept it cancels this task before it asks the model.
            await asyncio.sleep(SPECULATE_AFTER)
            context = gather(
                accepted,
                offset + len(suggestion),
                [other for other in self._open_documents() if other.uri != uri],
                self._settings().completion_context_tokens,
                root_uri=self._root_uri(),
            )
            if context.mode == "none":
                return None
            self.stats.speculative += 1
            result = await self._generate(context)
            if result:
                self.cache.put(key, result)
            return result

        task = self._start_task(speculate(), name=f"speculative completion {uri}")
        self._in_flight[uri] = _InFlight(accepted_before, after, task)
        task.add_done_callback(lambda _: self._drop_in_flight(uri, task))

    def _drop_in_flight(self, uri: str, task: asyncio.Task) -> None:
        current = self._in_flight.get(uri)
        if current is not None and current.task is task:
            del self._in_flight[uri]
