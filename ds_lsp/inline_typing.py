"""The user's typing rhythm, per document, for the inline engine: when the last
keystroke came, how long a pause to wait for (fixed, or adaptive to the typing
speed), and whether the editor waits for quiet itself. No LSP here.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Callable

from ds_lsp.config import Settings

# Typing gaps longer than this are pauses, not typing speed.
TYPING_GAP_LIMIT = 0.6
# The adaptive wait is this share of the user's median typing gap: a little under
# the gap, so a pause is answered soon after the gap it exceeds.
ADAPTIVE_FACTOR = 0.9
# The adaptive wait is never longer than this.
ADAPTIVE_DEBOUNCE_CEILING = 0.3
# An editor whose requests come this long after their keystrokes waits for quiet
# itself; work begun at the keystroke then waits only this share of the usual wait.
WAITING_CLIENT_LAG = 0.15
WAITING_CLIENT_FACTOR = 0.5


class Typing:
    """When keystrokes (didChange) and requests came, per document."""

    def __init__(self, settings: Callable[[], Settings]) -> None:
        self._settings = settings
        self._changed_at: dict[str, float] = {}  # the last didChange per document
        self._arrivals: dict[str, collections.deque[float]] = {}
        # Per document, how long after its keystroke each request came.
        self._request_lags: dict[str, collections.deque[float]] = {}

    def note_change(self, uri: str, now: float) -> None:
        """A keystroke (didChange) at `now`."""
        self._changed_at[uri] = now
        self._arrivals.setdefault(uri, collections.deque(maxlen=9)).append(now)

    def note_request(self, uri: str, asked: float) -> None:
        """A request for a suggestion at `asked`."""
        if uri in self._changed_at:
            lags = self._request_lags.setdefault(uri, collections.deque(maxlen=5))
            lags.append(asked - self._changed_at[uri])

    def changed_at(self, uri: str, default: float) -> float:
        """When the last keystroke came; `default` when none did."""
        return self._changed_at.get(uri, default)

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

    def client_waits(self, uri: str) -> bool:
        """Whether the editor waits for quiet itself before it asks (Neovim: 200 ms):
        told by its requests coming well after their keystrokes."""
        lags = self._request_lags.get(uri)
        return bool(lags) and len(lags) >= 3 and statistics.median(lags) >= WAITING_CLIENT_LAG

    def forget(self, uri: str) -> None:
        """The document closed."""
        for table in (self._arrivals, self._changed_at, self._request_lags):
            table.pop(uri, None)
