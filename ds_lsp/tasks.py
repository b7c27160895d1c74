"""The registry of running work: every background task the server starts.

pygls 2 cancels an async request handler on `$/cancelRequest`, but not the
coroutine behind `workspace/executeCommand` (its built-in handler is a
generator), and it never links `window/workDoneProgress/cancel` to any task.
So the features start their work here, tagged with the request id and the
progress token it answers to, and the server routes both cancellations here.

The registry also keeps a reference to each task (asyncio keeps only weak
ones, so an unreferenced task can vanish mid-run) and logs any task that fails,
instead of leaving "Task exception was never retrieved" on stderr.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Hashable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Tags:
    name: str
    request_id: Hashable | None
    progress_token: Hashable | None


class TaskRegistry:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task, _Tags] = {}

    def start(
        self,
        coroutine: Coroutine[Any, Any, Any],
        *,
        name: str,
        request_id: Hashable | None = None,
        progress_token: Hashable | None = None,
    ) -> asyncio.Task:
        """Run `coroutine` as a task the registry keeps, logs and can cancel."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks[task] = _Tags(name, request_id, progress_token)
        task.add_done_callback(self._finished)
        return task

    def cancel_request(self, request_id: Hashable) -> bool:
        """Cancel the work started for request `request_id`; False when there is none."""
        return self._cancel(lambda tags: tags.request_id == request_id)

    def cancel_progress(self, token: Hashable) -> bool:
        """Cancel the work that reports progress under `token`; False when there is none."""
        return self._cancel(lambda tags: tags.progress_token == token)

    def _cancel(self, matches) -> bool:
        found = False
        for task, tags in list(self._tasks.items()):
            if matches(tags) and not task.done():
                task.cancel()
                found = True
                log.debug("cancelled %s", tags.name)
        return found

    def _finished(self, task: asyncio.Task) -> None:
        tags = self._tasks.pop(task, None)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            name = tags.name if tags else task.get_name()
            log.error("%s failed: %s", name, error)
            log.debug("%s failed here:", name, exc_info=error)
