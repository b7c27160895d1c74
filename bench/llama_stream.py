"""The floor of the in-process path, on the tiny GGUF from the tests.

The tiny model (64-wide, 2 blocks) has almost no layers to run but the real
152k-token R1 vocabulary, so these numbers are what every token costs before
a real model's compute: the output projection and sampling over 152k logits,
detokenising, the worker-thread hand-off and the reasoning split, plus prompt
rendering and tokenisation for the first delta. Measured over a looping model
cut at max_tokens, with a prompt that changes each run so the KV cache cannot
answer it.

Prints a JSON line last: time to first delta and time per token (ms), median and p95.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ds_lsp.backends.base import ChatRequest, Message  # noqa: E402
from ds_lsp.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from tests.tiny_gguf import LOOPING_SCRIPT, cached_tiny_gguf  # noqa: E402

RUNS = 40
TOKENS = 64


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(0.95 * len(values)) - 1)]


async def main() -> None:
    backend = LlamaCppBackend(str(cached_tiny_gguf("tiny-r1-looping", script=LOOPING_SCRIPT)))
    await backend.load()
    first_delta_ms: list[float] = []
    per_token_ms: list[float] = []
    for run in range(RUNS):
        request = ChatRequest(
            messages=[Message("user", f"Request {run}: add type hints to area().")],
            max_tokens=TOKENS,
            reasoning_budget=None,
        )
        start = time.perf_counter()
        first = None
        async for delta in backend.stream(request):
            if first is None and (delta.reasoning or delta.content):
                first = time.perf_counter()
        end = time.perf_counter()
        first_delta_ms.append((first - start) * 1e3)
        per_token_ms.append((end - first) * 1e3 / max(1, backend.last_usage.generated_tokens - 1))
    await backend.aclose()
    print(
        json.dumps(
            {
                "bench": "llama_stream_overhead",
                "runs": RUNS,
                "tokens_per_run": TOKENS,
                "first_delta_ms": {
                    "median": round(statistics.median(first_delta_ms), 2),
                    "p95": round(p95(first_delta_ms), 2),
                },
                "per_token_ms": {
                    "median": round(statistics.median(per_token_ms), 3),
                    "p95": round(p95(per_token_ms), 3),
                },
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
