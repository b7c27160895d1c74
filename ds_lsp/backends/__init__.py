"""Model backends. `make_backend(settings)` picks and builds one.

Backends are imported lazily: llama-cpp-python is heavy to import, and a user
of a model server should not pay for it (nor be broken by a bad build of it).
"""

from __future__ import annotations

from ds_lsp.backends.base import Backend, ModelError
from ds_lsp.backends.presets import PRESETS, preset_for_url
from ds_lsp.config import Settings
from ds_lsp.redact import redact_url


def make_backend(settings: Settings) -> Backend:
    """Build the configured backend. Raises ModelError with the fix when it can't."""
    if settings.backend == "openai":
        from ds_lsp.backends.openai_compat import OpenAIBackend

        # No URL and no preset: Ollama, the most common local server.
        preset_name = settings.preset or (
            preset_for_url(settings.base_url) if settings.base_url else "ollama"
        )
        preset = PRESETS.get(preset_name) if preset_name else None
        base_url = settings.base_url or preset.base_url
        model = settings.model or (preset.model if preset else None)
        if not model:
            raise ModelError(
                f"no model name for {redact_url(base_url)}: set DS_LSP_MODEL or --model to one "
                "the server lists at /v1/models"
            )
        return OpenAIBackend(
            base_url=base_url,
            model=model,
            api_key=settings.api_key,
            timeout=settings.request_timeout,
            preset=preset_name,
            reasoning=settings.reasoning,
        )
    from ds_lsp import models

    model_path = settings.model_path or str(models.default_model_path())
    try:
        from ds_lsp.backends.llama_cpp import LlamaCppBackend
    except ImportError as exc:
        raise ModelError(
            f"llama-cpp-python is not importable ({exc}); reinstall ds-lsp, or use a model "
            "server with --backend openai"
        ) from exc
    return LlamaCppBackend(
        model_path=model_path,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_gpu_layers=settings.n_gpu_layers,
        chat_template=settings.chat_template,
        reasoning=settings.reasoning,
    )


__all__ = ["Backend", "ModelError", "make_backend"]
