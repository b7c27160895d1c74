"""One owner for the configured model: builds it, rebuilds it, routes requests to it.

Features never build backends themselves; they ask the scheduler to stream.
- The backend is built lazily, on the first request, off the event loop.
- When a setting the backend depends on changes (model, URL, context size,
  ...), a new backend is built and loaded off the loop, in the background;
  new requests wait for it, then the old backend is closed (which stops what
  still runs on it). Other settings (max tokens, temperature, log level)
  rebuild nothing.
- Priorities: each request names its slot (`ChatRequest.slot`). In process,
  the "completion" slot is a second llama.cpp context over the same
  memory-mapped weights, so inline completions never wait behind an edit or a
  chat answer (why not preemption: docs/architecture.md). A model server runs
  requests side by side itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

from ds_lsp.backends import make_backend
from ds_lsp.backends.base import Backend, ChatRequest, Delta
from ds_lsp.config import Settings

log = logging.getLogger(__name__)

# The settings a backend is built from; a change to any of them means a new backend.
BACKEND_SETTINGS = (
    "backend",
    "model_path",
    "preset",
    "base_url",
    "model",
    "api_key",
    "n_ctx",
    "n_threads",
    "n_gpu_layers",
    "request_timeout",
    "reasoning",
)


def backend_key(settings: Settings) -> tuple:
    return tuple(getattr(settings, name) for name in BACKEND_SETTINGS)


class ModelScheduler:
    def __init__(
        self, settings: Settings, build: Callable[[Settings], Backend] = make_backend
    ) -> None:
        self._settings = settings
        self._build = build
        self._backend: Backend | None = None
        self._backend_key: tuple | None = None
        self._lock = asyncio.Lock()  # one build at a time
        self._rebuilding: asyncio.Task | None = None
        self._closed = False

    @property
    def current(self) -> Backend | None:
        """The backend built so far (None before the first request)."""
        return self._backend

    async def backend(self) -> Backend:
        """The backend for the current settings, built now if it has not been."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the model scheduler is closed")
            await self._swap(self._settings)
            assert self._backend is not None
            return self._backend

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """The model's deltas for `request` (see Backend.stream); raises ModelError."""
        backend = await self.backend()
        async for delta in backend.stream(request):
            yield delta

    def update(self, settings: Settings) -> None:
        """New settings. Rebuilds the backend, in the background, only where needed."""
        changed = backend_key(settings) != backend_key(self._settings)
        self._settings = settings
        if not changed or self._backend is None or self._closed:
            return  # not built yet: the next request builds it with these settings
        log.info("model settings changed: loading the new model in the background")
        self._rebuilding = asyncio.ensure_future(self._rebuild())

    async def aclose(self) -> None:
        async with self._lock:
            self._closed = True
            backend, self._backend = self._backend, None
        if backend is not None:
            await backend.aclose()

    async def _rebuild(self) -> None:
        try:
            await self.backend()
        except Exception as exc:  # the next request meets it again, with the fix
            log.warning("%s", exc)

    async def _swap(self, settings: Settings) -> None:
        """Make the backend match `settings`: build and load a new one, close the old."""
        key = backend_key(settings)
        if self._backend is not None and self._backend_key == key:
            return
        new = await asyncio.to_thread(self._build, settings)
        load = getattr(new, "load", None)  # in process: map the weights now, off the loop
        if load is not None:
            try:
                await load()
            except BaseException:
                await new.aclose()
                raise
        old, self._backend, self._backend_key = self._backend, new, key
        log.info("model ready: %s", new.name)
        if old is not None:
            await old.aclose()
