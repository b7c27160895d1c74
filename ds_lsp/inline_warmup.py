"""The model's prompt cache at the spot being edited, for the inline engine.

The first keystroke at a new spot prefills that spot's prompt (evaluation only),
with a context sized from the backend's measured prompt speed; once a suggestion
shows there and typing stops, the full context is prefilled in the background and
used from then on. No LSP here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ds_lsp.config import Settings
from ds_lsp.context.windows import WINDOW_STEP
from ds_lsp.documents import Document
from ds_lsp.inline_stats import Stats

# What a cold spot's prompt may cost to evaluate, at the backend's measured speed.
COLD_SPOT_SECONDS = 1.0
# A spot's context grows to the full budget only after this long with no keystroke.
GROW_AFTER_IDLE = 1.0
# The least context a cold spot gets, however slow the model.
MIN_CONTEXT_TOKENS = 256


class Warmup:
    """Per document, the spot whose prompt is in the model's cache, and the prefills
    under way."""

    def __init__(
        self,
        models,  # ModelScheduler: prefill, completion_speed
        settings: Callable[[], Settings],
        start_task: Callable,  # TaskRegistry.start, for background work
        # InlineEngine._request: (document, offset, invoked, full) -> (context, request) | None
        request: Callable[..., Awaitable[tuple | None]],
        stats: Stats,
    ) -> None:
        self._models = models
        self._settings = settings
        self._start_task = start_task
        self._request = request
        self._stats = stats
        self._warm: dict[str, tuple[int, int]] = {}  # uri -> (band, context tokens) prefilled
        self._prefilling: dict[str, asyncio.Task] = {}
        self._growing: dict[str, asyncio.Task] = {}  # the full context, prefilled when idle

    def context_tokens(self, document: Document, offset: int, full: bool) -> int:
        """The prompt's budget: the setting's, or at a cold spot what the backend
        evaluates in about COLD_SPOT_SECONDS."""
        wanted = self._settings().completion_context_tokens
        warm = self._warm.get(document.uri)
        if full or (warm is not None and warm[0] == band_of(document, offset)):
            return wanted if full or warm is None else max(warm[1], MIN_CONTEXT_TOKENS)
        speed = self._models.completion_speed()
        if speed is None or not speed.prompt_tps:
            return wanted
        return max(MIN_CONTEXT_TOKENS, min(wanted, int(speed.prompt_tps * COLD_SPOT_SECONDS)))

    def prefilling(self, uri: str) -> asyncio.Task | None:
        """The prefill under way for the document, if any."""
        return self._prefilling.get(uri)

    def maybe_prefill(self, document: Document, offset: int) -> None:
        """At a spot whose prompt is not in the model's cache, evaluate it now, with
        no generation: by the pause only the last few tokens are left."""
        uri, band = document.uri, band_of(document, offset)
        if self._warm.get(uri, (None,))[0] == band:
            return
        tokens = self.context_tokens(document, offset, full=False)
        self._warm[uri] = (band, tokens)
        self._prefill(document, offset, tokens)

    def _prefill(self, document: Document, offset: int, tokens: int) -> None:
        uri = document.uri
        previous = self._prefilling.pop(uri, None)
        if previous is not None:
            previous.cancel()

        async def prefill():
            request = await self._request(document, offset, invoked=True, full=False)
            if request is None:
                return
            self._stats.prefills += 1
            await self._models.prefill(request[1])

        task = self._start_task(prefill(), name=f"prefill {uri}")
        self._prefilling[uri] = task
        task.add_done_callback(
            lambda done: (
                self._prefilling.pop(uri, None) if self._prefilling.get(uri) is done else None
            )
        )

    def after_shown(self, document: Document, offset: int) -> None:
        """A suggestion shows: where the spot got less than the full context, the full
        prompt prefilled, used from the next request on."""
        uri, band = document.uri, band_of(document, offset)
        wanted = self._settings().completion_context_tokens
        warm = self._warm.get(uri)
        if warm is not None and warm[0] == band and warm[1] < wanted:
            self._grow_when_idle(document, offset, band, wanted)

    def _grow_when_idle(self, document: Document, offset: int, band: int, wanted: int) -> None:
        """Once typing has stopped for GROW_AFTER_IDLE, prefill the full context; the
        spot uses it once it is in the cache. A keystroke cancels this (note_change)."""
        uri = document.uri

        async def grow():
            await asyncio.sleep(GROW_AFTER_IDLE)
            request = await self._request(document, offset, invoked=True, full=True)
            if request is None:
                return
            self._stats.prefills += 1
            await self._models.prefill(request[1])
            if self._warm.get(uri, (None,))[0] == band:
                self._warm[uri] = (band, wanted)

        previous = self._growing.pop(uri, None)
        if previous is not None:
            previous.cancel()
        task = self._start_task(grow(), name=f"prefill the full context {uri}")
        self._growing[uri] = task
        task.add_done_callback(
            lambda done: self._growing.pop(uri, None) if self._growing.get(uri) is done else None
        )

    def tasks_held(self) -> int:
        return len(self._prefilling) + len(self._growing)

    def stop_growing(self, uri: str) -> None:
        """A keystroke: the full context's prefill stops."""
        growing = self._growing.pop(uri, None)
        if growing is not None:
            growing.cancel()

    def forget(self, uri: str) -> None:
        """The document closed."""
        for tasks in (self._prefilling, self._growing):
            task = tasks.pop(uri, None)
            if task is not None:
                task.cancel()
        self._warm.pop(uri, None)


def band_of(document: Document, offset: int) -> int:
    """Which WINDOW_STEP-line band `offset` is in: the prompt's window moves per band."""
    return document.content.line_of(offset) // WINDOW_STEP
