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
  requests side by side itself. A separate completion model (a FIM-trained
  coder GGUF, `completion_model_path`) is a backend of its own, built and
  rebuilt the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from ds_lsp.backends import make_backend
from ds_lsp.backends.base import Backend, ChatRequest, Delta, Speed
from ds_lsp.completion_prompts import PromptStyle
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
    "chat_template",
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
        # By role: "chat", and "completion" when a separate in-process model
        # (completion_model_path, a FIM-trained coder GGUF) serves completions.
        self._backends: dict[str, Backend] = {}
        self._keys: dict[str, tuple] = {}
        self._lock = asyncio.Lock()  # one build at a time
        # Rebuilds under way, referenced so that none vanishes mid-run (asyncio keeps
        # weak references only), and cancelled on close.
        self._rebuilding: set[asyncio.Task] = set()
        self._closed = False

    @property
    def current(self) -> Backend | None:
        """The chat backend built so far (None before the first request)."""
        return self._backends.get("chat")

    async def backend(self, role: str = "chat") -> Backend:
        """The backend for the current settings, built now if it has not been."""
        async with self._lock:
            if self._closed:
                raise RuntimeError("the model scheduler is closed")
            await self._swap(role, self._settings)
            return self._backends[role]

    async def stream(self, request: ChatRequest) -> AsyncIterator[Delta]:
        """The model's deltas for `request` (see Backend.stream); raises ModelError."""
        backend = await self.backend(self._role(request))
        async for delta in backend.stream(request):
            yield delta

    async def prefill(self, request: ChatRequest) -> None:
        """Evaluate `request`'s prompt into the model's cache, generating nothing, where
        the backend can (in process; llama-server). Elsewhere nothing happens."""
        backend = await self.backend(self._role(request))
        prefill = getattr(backend, "prefill", None)
        if prefill is not None:
            await prefill(request)

    async def completion_style(self) -> PromptStyle:
        """The inline-completion prompt style that fits the completion model, loading
        it (and its completion slot) now: before the first pause, not at it."""
        backend = await self.backend(self._role(_COMPLETION))
        load = getattr(backend, "load", None)
        if load is not None:
            await load("completion")
        return await backend.prompt_style()

    def completion_speed(self) -> Speed | None:
        """The completion model's measured speed; None before it is built."""
        backend = self._backends.get(self._role(_COMPLETION))
        return getattr(backend, "speed", None)

    def update(self, settings: Settings) -> None:
        """New settings. Rebuilds backends, in the background, only where needed."""
        previous, self._settings = self._settings, settings
        stale = [
            role
            for role in self._backends
            if _settings_for(role, previous) is None
            or _settings_for(role, settings) is None
            or backend_key(_settings_for(role, settings)) != self._keys.get(role)
        ]
        if not stale or self._closed:
            return  # nothing built, or nothing it depends on changed
        log.info("model settings changed: loading the new model in the background")
        task = asyncio.ensure_future(self._rebuild(stale))
        self._rebuilding.add(task)
        task.add_done_callback(self._rebuilding.discard)

    async def rebuilt(self) -> None:
        """Once the rebuilds under way have finished (for tests and warm-up)."""
        if self._rebuilding:
            await asyncio.gather(*self._rebuilding, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop everything: rebuilds, running generations (their backends close), models."""
        for task in list(self._rebuilding):
            task.cancel()
        async with self._lock:
            self._closed = True
            backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            await backend.aclose()

    def _role(self, request: ChatRequest) -> str:
        if request.slot == "completion" and _settings_for("completion", self._settings):
            return "completion"
        return "chat"

    async def _rebuild(self, roles: list[str]) -> None:
        for role in roles:
            try:
                async with self._lock:
                    if _settings_for(role, self._settings) is None:
                        backend = self._backends.pop(role, None)  # no longer configured
                        self._keys.pop(role, None)
                        if backend is not None:
                            await backend.aclose()
                        continue
                    await self._swap(role, self._settings)
            except Exception as exc:  # the next request meets it again, with the fix
                log.warning("%s", exc)

    async def _swap(self, role: str, settings: Settings) -> None:
        """Make the role's backend match `settings`: build and load a new one, close the
        old one."""
        role_settings = _settings_for(role, settings) or settings
        key = backend_key(role_settings)
        if role in self._backends and self._keys.get(role) == key:
            return
        new = await asyncio.to_thread(self._build, role_settings)
        load = getattr(new, "load", None)  # in process: map the weights now, off the loop
        if load is not None:
            try:
                await load()
            except BaseException:
                await new.aclose()
                raise
        old = self._backends.get(role)
        self._backends[role], self._keys[role] = new, key
        log.info("model ready: %s", new.name)
        if old is not None:
            await old.aclose()


_COMPLETION = ChatRequest(messages=(), slot="completion")


def _settings_for(role: str, settings: Settings) -> Settings | None:
    """The settings a role's backend is built from; None when the role has none of its own."""
    if role == "chat":
        return settings
    if settings.backend == "llama_cpp" and settings.completion_model_path:
        # A coder model for fill-in-the-middle: it does not reason.
        return replace(settings, model_path=settings.completion_model_path, reasoning="off")
    return None
