"""Shows a model's reasoning while it streams, for edits and chat answers alike.

Reasoning never goes into a document. It goes, whole lines at a time (a token at
a time would flood the log panel):
- to the log (`window/logMessage`), one line per message;
- to the progress, whose message is the latest line;
- to `dsLsp/reasoning` notifications `{id, uri, range, text, done}`, for
  clients with a live panel (the editor integrations), see docs/protocol.md.
"""

from __future__ import annotations

import logging
import uuid

from lsprotocol import types

from ds_lsp.backends.base import Delta
from ds_lsp.text import estimate_tokens

log = logging.getLogger("ds_lsp.reasoning")

NOTIFICATION = "dsLsp/reasoning"
# Characters of the latest line shown in the progress message.
_PROGRESS_LINE = 120
# Reasoning tokens are about this many characters (for "how much of the budget").


class ReasoningFeed:
    def __init__(
        self, ls, uri: str, range_: types.Range, progress_token: str | None, label: str
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self._ls = ls
        self._uri = uri
        self._range = ls.protocol._converter.unstructure(range_)
        self._progress_token = progress_token
        self._label = label  # "edit calc.py:3-9", for the log lines
        self._partial = ""
        self.text = ""  # all of it so far
        self._started = False

    def __call__(self, delta: Delta) -> None:
        if delta.reasoning:
            self.feed(delta.reasoning)

    def feed(self, text: str) -> None:
        if not self._started:
            self._started = True
            log.info("%s: the model is reasoning", self._label)
        self.text += text
        self._partial += text
        if "\n" not in self._partial:
            return
        complete, _, self._partial = self._partial.rpartition("\n")
        lines = [line for line in complete.split("\n") if line.strip()]
        for line in lines:
            log.info("  %s", line)
        if lines and self._progress_token is not None:
            latest = lines[-1].strip()
            if len(latest) > _PROGRESS_LINE:
                latest = latest[: _PROGRESS_LINE - 1] + "…"
            self._ls.work_done_progress.report(
                self._progress_token, types.WorkDoneProgressReport(message=latest)
            )
        self._notify(complete + "\n", done=False)

    def finish(self) -> None:
        """The stream ended (however): flush the last partial line and say done."""
        rest, self._partial = self._partial, ""
        if rest.strip():
            log.info("  %s", rest)
        if self._started:
            self._notify(rest, done=True)

    def tokens_used(self) -> int:
        """About how many tokens the reasoning took (counted from its text)."""
        return estimate_tokens(self.text)

    def _notify(self, text: str, done: bool) -> None:
        params = {"id": self.id, "uri": self._uri, "range": self._range, "text": text}
        self._ls.protocol.notify(NOTIFICATION, {**params, "done": done})
