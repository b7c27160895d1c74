"""Racing network waits against a cancel, so that a cancel closes the connection
at once in every phase (see openai_compat)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

CANCELLED = object()


async def race(
    start: Callable[[], Awaitable[Any]],
    cancelled: asyncio.Future | None,
    discard: Callable[[Any], Awaitable[None]] | None = None,
) -> Any:
    """`await start()`, unless `cancelled` completes first: then CANCELLED.

    The losing work is cancelled and awaited until it has unwound; for an httpx
    request or read that closes the connection. Cancelling the calling task does
    the same before the CancelledError goes on. A result that came too late is
    handed to `discard` (a response stream to close).
    """
    if cancelled is not None and cancelled.done():
        return CANCELLED
    work = asyncio.ensure_future(start())
    waiting = {work} if cancelled is None else {work, cancelled}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        await stop_work(work, discard)
        raise
    if cancelled is not None and cancelled.done():
        await stop_work(work, discard)
        return CANCELLED  # a read broken off by the cancel is no error
    return work.result()


async def stop_work(work: asyncio.Future, discard: Callable[[Any], Awaitable[None]] | None) -> None:
    work.cancel()
    await asyncio.wait({work})
    if work.cancelled() or work.exception() is not None:
        return
    if discard is not None:
        await discard(work.result())
