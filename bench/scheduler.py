"""Inline completions while a long answer runs, in process, with gemma-3-270m.

Two ways to keep completions from waiting behind an edit or a chat answer:
- two contexts (what ds-lsp does): the "completion" slot is a second llama.cpp
  context over the same memory-mapped weights, with its own KV cache and thread;
- preemption: one context; the running answer is paused at a token, its state
  saved, the completion run, the state restored and the answer resumed.

Measured here, each for a completion of 16 tokens after a ~400-token prompt
that grows by one character per run (as typing does):
- `alone`: the completion slot with nothing else running;
- `two_contexts`: the same while the chat slot streams a long answer;
- `preemption`: save state + the completion on the answer's context (whose KV
  cache holds the answer, so the completion's prompt is evaluated cold) +
  restore; and `preemption_resume`: the restore alone, what the answer pays.
Also the memory the second context adds: private (its KV cache and buffers) and
file-backed (the weights mapped again: the same page-cache pages, counted twice
by RSS but held in memory once).

Prints a JSON line last: median and p95 in ms for each.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import llama_cpp  # noqa: E402

from bench._models import gemma_gguf_path  # noqa: E402
from ds_lsp.backends.base import ChatRequest, Message  # noqa: E402
from ds_lsp.backends.llama_cpp import LlamaCppBackend  # noqa: E402

RUNS = 12
COMPLETION_TOKENS = 16
CODE = Path(__file__).resolve().parent.parent.joinpath("ds_lsp", "editing.py").read_text()[:1500]


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
    }


def memory_mb() -> dict[str, float]:
    """Private memory (RssAnon: KV cache, buffers) and mapped file pages (RssFile: the
    weights, which a second mapping of the same file shares through the page cache)."""
    found = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("RssAnon", "RssFile"):
                found[name] = int(value.split()[0]) / 1024
    return found


def completion_request(run: int) -> ChatRequest:
    code = CODE + "x" * run  # the user typed one more character
    return ChatRequest(
        messages=[Message("user", f"Continue this code:\n{code}")],
        max_tokens=COMPLETION_TOKENS,
        reasoning="off",
        temperature=0.0,
        slot="completion",
    )


async def timed_completion(backend: LlamaCppBackend, run: int) -> float:
    started = time.perf_counter()
    async for _ in backend.stream(completion_request(run)):
        pass
    return (time.perf_counter() - started) * 1e3


async def with_two_contexts(model: Path) -> dict:
    backend = LlamaCppBackend(str(model), n_ctx=4096)
    await backend.load("chat")
    before = memory_mb()
    await backend.load("completion")
    after = memory_mb()
    second_context_mb = {
        f"{name.lower()}_added_mb": round(after[name] - before[name], 1) for name in after
    }
    try:
        await timed_completion(backend, 0)  # warm the completion slot's prefix
        alone = [await timed_completion(backend, run) for run in range(1, RUNS + 1)]

        answer = ChatRequest(
            messages=[Message("user", "Write a long story about a lighthouse.")],
            max_tokens=100_000,
            temperature=0.0,
        )
        streaming = asyncio.Event()

        async def long_answer():
            async for _ in backend.stream(answer):
                streaming.set()

        chat = asyncio.create_task(long_answer())
        await streaming.wait()
        busy = [await timed_completion(backend, run) for run in range(RUNS + 1, 2 * RUNS + 1)]
        assert not chat.done(), "the long answer must run throughout"
        chat.cancel()
        await asyncio.gather(chat, return_exceptions=True)
        # The prompt tokens of each completion, for the preemption run to use the same.
        prompts = [
            await backend.prompt_tokens(completion_request(run))
            for run in range(2 * RUNS + 1, 3 * RUNS + 1)
        ]
    finally:
        await backend.aclose()
    return {
        "alone_ms": summary(alone),
        "two_contexts_ms": summary(busy),
        "second_context": second_context_mb,
        "prompts": prompts,
    }


def with_preemption(model: Path, prompts: list[list[int]]) -> dict:
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=4096, verbose=False)
    answer = llm.tokenize(b"Write a long story about a lighthouse.", add_bos=True)
    for count, token in enumerate(llm.generate(answer, temp=0.0)):
        answer.append(token)
        if count == 30:
            break
    switch, resume, state_mb = [], [], 0.0
    for prompt in prompts:
        started = time.perf_counter()
        state = llm.save_state()  # pause the answer
        for count, _ in enumerate(llm.generate(prompt, temp=0.0)):
            if count + 1 == COMPLETION_TOKENS:
                break
        done = time.perf_counter()
        llm.load_state(state)  # the answer goes on where it stopped
        resumed = time.perf_counter()
        for count, token in enumerate(llm.generate(answer, temp=0.0)):
            answer.append(token)
            if count == 2:
                break
        switch.append((done - started) * 1e3)
        resume.append((resumed - done) * 1e3)
        state_mb = state.llama_state_size / 2**20
    llm.close()
    return {
        "preemption_ms": summary(switch),
        "preemption_resume_ms": summary(resume),
        "saved_state_mb": round(state_mb, 1),
    }


async def main() -> None:
    model = gemma_gguf_path()
    two = await with_two_contexts(model)
    prompts = two.pop("prompts")
    preempt = with_preemption(model, prompts)
    print(
        json.dumps(
            {
                "bench": "scheduler",
                "model": model.name,
                "cpus": os.cpu_count(),
                "completion_tokens": COMPLETION_TOKENS,
                **two,
                **preempt,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
