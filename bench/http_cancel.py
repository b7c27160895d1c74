"""How soon a cancel reaches a model server over HTTP.

The OpenAI-compatible backend against the fake server of the tests, in this
process (its own thread and event loop). Each run sets `request.cancel` and
times how long until the server sees the connection closed (the moment aiohttp
cancels its handler), in two phases:
- before the first byte: the server took the request and sends nothing, not
  even headers (a model still loading, a long prompt being evaluated);
- mid-stream: the reasoning is streaming, the next chunk has not come.
A server that sees the connection closed can stop generating: this is the
time a superseded request keeps a server's model busy, beyond the server's own
reaction. Target: 50 ms.

Prints a JSON line last: milliseconds from cancel to disconnect, median and p95.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ds_lsp.backends.base import ChatRequest, FinishReason, Message, collect  # noqa: E402
from ds_lsp.backends.openai_compat import OpenAIBackend  # noqa: E402
from tests.fake_openai_server import FakeOpenAIServer, Reply  # noqa: E402

RUNS = 50
WARMUP = 3
DEADLINE = 10.0  # seconds; only reached if a cancel is lost


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(0.95 * len(values)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 2), "p95": round(p95(values), 2)}


async def cancel_once(server: FakeOpenAIServer, backend: OpenAIBackend, mid_stream: bool) -> float:
    """Milliseconds from setting the cancel to the server seeing the connection closed."""
    server.reset()
    if mid_stream:
        server.enqueue(Reply(reasoning="Thinking it through. " * 50, hang_after=4))
    else:
        server.enqueue(Reply(hold=True))
    cancel = asyncio.Event()
    streaming = asyncio.Event()
    request = ChatRequest(messages=[Message("user", "Add type hints.")], cancel=cancel)
    generation = asyncio.create_task(
        collect(backend.stream(request), on_delta=lambda delta: streaming.set())
    )
    served = await server.wait_for_request(0, DEADLINE)
    if mid_stream:
        await asyncio.wait_for(streaming.wait(), DEADLINE)
    cancelled_at = time.perf_counter()
    cancel.set()
    result = await asyncio.wait_for(generation, DEADLINE)
    if result.finish != FinishReason.CANCELLED:
        raise RuntimeError(f"the stream ended with {result.finish}, not cancelled")
    if not await asyncio.to_thread(served.disconnected.wait, DEADLINE):
        raise RuntimeError("the server never saw the connection closed")
    return (served.disconnected_at - cancelled_at) * 1e3


async def main() -> None:
    server = FakeOpenAIServer().start()
    backend = OpenAIBackend(server.base_url, "deepseek-r1:7b")
    try:
        figures = {}
        for phase, mid_stream in (("before_first_byte_ms", False), ("mid_stream_ms", True)):
            for _ in range(WARMUP):
                await cancel_once(server, backend, mid_stream)
            figures[phase] = summary(
                [await cancel_once(server, backend, mid_stream) for _ in range(RUNS)]
            )
    finally:
        await backend.aclose()
        server.stop()
    print(json.dumps({"bench": "http_cancel", "runs": RUNS, **figures}))


if __name__ == "__main__":
    asyncio.run(main())
