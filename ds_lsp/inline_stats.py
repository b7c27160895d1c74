"""What the inline engine did, counted: read by benchmarks (`dsLsp.inlineStats`)
and shown in debug logs."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

# Per-request figures kept for benchmarks: a bounded window.
STATS_KEPT = 2000


@dataclass
class Stats:
    """What the engine did; read by benchmarks and shown in debug logs."""

    requests: int = 0
    model_requests: int = 0
    prefills: int = 0
    cache_hits: int = 0
    typed_ahead_hits: int = 0
    stream_reuses: int = 0
    stale_aborted: int = 0
    speculative: int = 0
    model_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=STATS_KEPT)
    )
    # From cancelling a generation until its model stream is closed.
    cancel_ms: collections.deque = field(
        default_factory=lambda: collections.deque(maxlen=STATS_KEPT)
    )

    def as_dict(self) -> dict:
        return {
            name: list(value) if isinstance(value, collections.deque) else value
            for name, value in vars(self).items()
        }
