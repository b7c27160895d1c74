"""Cancel until the worker is free, in process: the tiny GGUF and gemma-3-270m.

A superseded request must let go of the model at once, whether it is sampling
tokens or still evaluating a long prompt (llama.cpp's abort callback). Measured
from `cancel.set()` to the moment the slot's worker thread runs the next job.

Prints a JSON line last: median and p95 in ms for each model and phase.
(Over HTTP, cancel until the connection closes: bench/http_cancel.py.)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._models import gemma_gguf_path  # noqa: E402
from ds_lsp.backends.base import ChatRequest, Message  # noqa: E402
from ds_lsp.backends.llama_cpp import LlamaCppBackend  # noqa: E402
from tests.tiny_gguf import LOOPING_SCRIPT, cached_tiny_gguf  # noqa: E402

RUNS = 15


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 2),
        "runs": len(ordered),
    }


async def cancel_to_free(backend: LlamaCppBackend, prompt: str, wait_for: str) -> float:
    """Start a request, cancel it once `wait_for` ("token" or "prompt") is under way,
    and return the ms until the worker takes the next job."""
    cancel = asyncio.Event()
    first_delta = asyncio.Event()

    async def consume():
        request = ChatRequest(messages=[Message("user", prompt)], max_tokens=4000, cancel=cancel)
        async for _ in backend.stream(request):
            first_delta.set()

    task = asyncio.create_task(consume())
    if wait_for == "token":
        await first_delta.wait()
    else:
        await asyncio.sleep(0.25)  # well inside an evaluation of seconds
        assert not first_delta.is_set(), "the prompt was evaluated already: make it longer"
    cancelled_at = time.perf_counter()
    cancel.set()
    free_at = await backend._in_worker("chat", time.perf_counter)
    await task
    return (free_at - cancelled_at) * 1e3


async def measure(model: Path, long_prompt: str, n_ctx: int) -> dict:
    backend = LlamaCppBackend(str(model), n_ctx=n_ctx)
    await backend.load()
    try:
        results = {}
        for phase, prompt in (("mid_generation", "Count to a thousand."), ("mid_prompt", None)):
            times = []
            for run in range(RUNS if phase == "mid_generation" else RUNS // 3):
                # A new prompt each run: the KV cache must not answer it.
                text = prompt or f"{run} {long_prompt}"
                times.append(await cancel_to_free(backend, text, "token" if prompt else "prompt"))
            results[phase] = summary(times)
        return results
    finally:
        await backend.aclose()


async def main() -> None:
    results = {"bench": "cancel_in_process"}
    tiny = cached_tiny_gguf("tiny-r1-looping", script=LOOPING_SCRIPT)
    results["tiny_gguf_ms"] = await measure(tiny, "hello world " * 3500, n_ctx=8192)
    code = Path(__file__).resolve().parent.parent.joinpath("ds_lsp", "editing.py").read_text()
    results["gemma_270m_ms"] = await measure(gemma_gguf_path(), code[:6000], n_ctx=4096)
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main())
