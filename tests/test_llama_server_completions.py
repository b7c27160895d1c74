"""Inline completions against a real llama-server: R1's reasoning skipped.

The premise first, as the server really behaves for an R1 template (so the
backend must not rely on it): `reasoning_effort: "none"` and
`chat_template_kwargs: {"enable_thinking": false}` are ignored, the reasoning
still comes; a final assistant message works as a prefill, but its text is
echoed in `content`. What works is `/v1/completions` with R1's format rendered
by ds-lsp, the empty think block prefilled (`r1_raw_prompt`), which the
backend sends for the `llamacpp` preset: the answer alone comes back.

The tiny scripted models (tests/tiny_gguf.py) answer "Hello from a tiny model!"
after the "\\n\\n" that ends the prefill, and reason when the prompt ends with
`<think>\\n`. Requests use temperature 0 (see tests/llama_server.py).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request

import pytest

from ds_lsp.backends.base import ChatRequest, Delta, FinishReason, Message, RawPrompt, collect
from ds_lsp.backends.llama_cpp import LlamaCppBackend
from ds_lsp.backends.openai_compat import OpenAIBackend
from ds_lsp.backends.r1_format import r1_raw_prompt
from tests.test_llama_server import (
    DEADLINE,
    HELLO_SCRIPT,
    LOOPING_SERVER_SCRIPT,
    MODEL,
    STOPPED_SOON,
    TEMPLATES,
    decoded_until_idle,
    served,
)
from tests.tiny_gguf import ANSWER, LOOPING_REASONING_STEP, REASONING

pytestmark = pytest.mark.llama_server

SAY_HELLO = [Message("user", "Say hello.")]


@pytest.fixture(scope="module", params=TEMPLATES)
def hello_url(request, llama_server) -> str:
    return served(llama_server, "hello", HELLO_SCRIPT, request.param)


@pytest.fixture(scope="module")
def looping_url(llama_server) -> str:
    return served(llama_server, "looping", LOOPING_SERVER_SCRIPT, "original template")


def post(url: str, body: dict) -> dict:
    """One non-streamed request, as the server answers it."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"model": MODEL, "temperature": 0, **body}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        return json.loads(response.read())


def chat(base_url: str, messages: list[dict], **extra) -> dict:
    return post(f"{base_url}/chat/completions", {"messages": messages, **extra})["choices"][0][
        "message"
    ]


# -- the premise: what llama-server does with each way to skip R1's reasoning --------------

USER_TURN = [{"role": "user", "content": "Say hello."}]


@pytest.mark.parametrize(
    "switch",
    [{"reasoning_effort": "none"}, {"chat_template_kwargs": {"enable_thinking": False}}],
    ids=["reasoning_effort", "enable_thinking"],
)
def test_the_chat_switches_are_ignored_for_r1(hello_url, switch):
    message = chat(hello_url, USER_TURN, **switch)

    assert message["reasoning_content"].strip() == REASONING  # it reasoned all the same


def test_a_chat_prefill_is_echoed_in_the_content(hello_url):
    prefill = {"role": "assistant", "content": "<think>\n\n</think>\n\n"}
    message = chat(hello_url, [*USER_TURN, prefill])

    assert message["content"] == f"<think>\n\n</think>\n\n{ANSWER}"
    assert not message.get("reasoning_content")


async def test_completions_with_r1s_format_rendered_give_the_answer_alone(
    hello_url, tiny_gguf_path
):
    prompt = r1_raw_prompt(SAY_HELLO)
    said = post(f"{hello_url}/completions", {"prompt": prompt.text})

    assert said["choices"][0]["text"] == ANSWER
    # The server read the markers as special tokens and added the BOS once: the prompt
    # is the very tokens the in-process backend makes of it (same tokenizer).
    in_process = LlamaCppBackend(str(tiny_gguf_path), n_ctx=512)
    try:
        request = ChatRequest(messages=(), raw=prompt, slot="completion")
        tokens = await in_process.prompt_tokens(request)
    finally:
        await in_process.aclose()
    assert said["usage"]["prompt_tokens"] == len(tokens)


# -- the backend, preset llamacpp -------------------------------------------------------


@pytest.fixture
async def llamacpp(hello_url):
    backend = OpenAIBackend(hello_url, MODEL, preset="llamacpp")
    yield backend
    await backend.aclose()


async def test_reasoning_off_gives_the_answer_with_no_reasoning(llamacpp):
    deltas: list[Delta] = []
    request = ChatRequest(messages=SAY_HELLO, reasoning="off", temperature=0, max_tokens=32)
    result = await asyncio.wait_for(collect(llamacpp.stream(request), deltas.append), DEADLINE)

    assert (result.reasoning, result.answer, result.finish) == ("", ANSWER, FinishReason.STOP)
    assert len([d for d in deltas if d.content]) > 3  # token by token
    for delta in deltas:
        assert "think>" not in delta.content


async def test_a_raw_prompt_is_answered_as_it_is(llamacpp):
    raw = RawPrompt((("<｜User｜>", True), ("def f():", False), ("<｜Assistant｜>\n\n", True)))
    request = ChatRequest(messages=(), raw=raw, temperature=0, max_tokens=32, stop=[" tiny"])
    result = await asyncio.wait_for(collect(llamacpp.stream(request)), DEADLINE)

    assert (result.reasoning, result.answer, result.finish) == (
        "",
        "Hello from a",
        FinishReason.STOP,
    )


# -- stopping a /v1/completions stream stops the server ---------------------------------
# A raw prompt that opens the reasoning: the looping model then says its reasoning step
# forever, all of it answer (a raw prompt's text is never split).
FOREVER = RawPrompt((("<｜User｜>", True), ("Hi.", False), ("<｜Assistant｜><think>\n", True)))


def forever(**options) -> ChatRequest:
    return ChatRequest(messages=(), raw=FOREVER, temperature=0, max_tokens=100_000, **options)


@pytest.fixture
async def looping(looping_url):
    backend = OpenAIBackend(looping_url, MODEL, preset="llamacpp")
    yield backend
    await backend.aclose()


async def test_a_cancel_mid_stream_stops_the_server(looping, looping_url):
    before = await decoded_until_idle(looping_url)
    cancel = asyncio.Event()
    deltas: list[Delta] = []

    def on_delta(delta: Delta) -> None:
        deltas.append(delta)
        if len(deltas) == 3:
            cancel.set()

    result = await asyncio.wait_for(
        collect(looping.stream(forever(cancel=cancel)), on_delta), DEADLINE
    )

    assert result.finish == FinishReason.CANCELLED
    assert result.answer.startswith(LOOPING_REASONING_STEP[:3])
    generated = await asyncio.wait_for(decoded_until_idle(looping_url), DEADLINE) - before
    assert generated < STOPPED_SOON


async def test_closing_the_stream_stops_the_server(looping, looping_url):
    before = await decoded_until_idle(looping_url)
    stream = looping.stream(forever())
    first = await asyncio.wait_for(anext(stream), DEADLINE)
    await stream.aclose()

    assert first.content.startswith("Hmm")
    generated = await asyncio.wait_for(decoded_until_idle(looping_url), DEADLINE) - before
    assert generated < STOPPED_SOON
