"""`dsLsp.warmUp`: load the model now, so the first real request is fast.

Editors can call it at start-up (llama.vim warms its server the same way). It
builds the backend (in process: maps the GGUF and creates the context), then
asks for one token with reasoning skipped, which also makes a model server
load its weights. It shows a cancellable progress, and `$/cancelRequest` or
the progress' cancel button stops it at once, model stream included.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcRequestCancelled

from ds_lsp.backends.base import ChatRequest, Message, ModelError, collect
from ds_lsp.features.progress import begin_progress

log = logging.getLogger(__name__)

COMMAND = "dsLsp.warmUp"


def setup(server) -> None:
    @server.command(COMMAND)
    async def warm_up(ls, *args) -> dict:
        token = f"ds-lsp/warm-up/{uuid.uuid4()}"
        task = ls.tasks.start(
            _warm_up(ls, token),
            name=COMMAND,
            request_id=ls.protocol.msg_id,
            progress_token=token,
        )
        try:
            return await task
        except asyncio.CancelledError:
            raise JsonRpcRequestCancelled(f"{COMMAND} was cancelled") from None
        except ModelError as exc:  # the message says what to try; no traceback
            raise JsonRpcInternalError(str(exc)) from None


async def _warm_up(ls, token: str) -> dict:
    progress = await begin_progress(ls, token, "DeepSeek: loading the model")
    started = time.perf_counter()
    outcome = "cancelled"
    try:
        request = ChatRequest(messages=[Message("user", "Say OK.")], max_tokens=1, reasoning="off")
        try:
            backend = await ls.models.backend()
            await collect(ls.models.stream(request))
        except ModelError:
            outcome = "failed"
            raise
        outcome = "ready"
        seconds = round(time.perf_counter() - started, 3)
        log.info("warm-up: %s ready in %.1f s", backend.name, seconds)
        return {"model": backend.name, "seconds": seconds}
    finally:
        if progress:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=outcome))
