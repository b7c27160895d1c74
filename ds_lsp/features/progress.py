"""Work-done progress, where the client shows it (`window.workDoneProgress`)."""

from __future__ import annotations

import logging

from lsprotocol import types

log = logging.getLogger(__name__)


async def begin_progress(ls, token: str, title: str, message: str | None = None) -> bool:
    """Start a cancellable progress where the client shows them; False where it doesn't."""
    caps = ls.client_capabilities
    if not (caps and caps.window and caps.window.work_done_progress):
        return False
    try:
        await ls.work_done_progress.create_async(token)
    except Exception as exc:  # the client refused: go on without a progress
        log.debug("no progress bar: %s", exc)
        return False
    ls.work_done_progress.begin(
        token, types.WorkDoneProgressBegin(title=title, cancellable=True, message=message)
    )
    return True
