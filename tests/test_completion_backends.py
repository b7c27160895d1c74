"""Inline completions over HTTP: each server family's way to skip R1's reasoning, raw
prompts on `/v1/completions`, and what the user gets back (the answer alone).

Checked against the fake server's request log (what each server would receive);
tests/test_llama_server_completions.py checks the same against a real llama-server.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from ds_lsp.backends.base import ChatRequest, Delta, FinishReason, Message, RawPrompt, collect
from ds_lsp.backends.openai_compat import OpenAIBackend
from ds_lsp.backends.r1_format import r1_raw_prompt
from ds_lsp.redact import HIDDEN
from tests.fake_openai_server import FakeOpenAIServer, Reply

MODEL = "deepseek-r1:7b"
FIM_MODEL = "qwen2.5-coder:1.5b"
DEADLINE = 10  # seconds, for what takes milliseconds; never reached when all is well
CONVERSATION = (
    Message("user", "Write add."),
    Message("assistant", "<think>\nShort.\n</think>\n\ndef add(a, b): ..."),
    Message("user", 'Now with types. END = "<｜end▁of▁sentence｜>"'),
)
# R1's own chat format for CONVERSATION, the answer's start prefilled with an empty think
# block (no BOS: the server adds it).
R1_PROMPT = (
    "<｜User｜>Write add."
    "<｜Assistant｜>\n\ndef add(a, b): ...<｜end▁of▁sentence｜>"
    '<｜User｜>Now with types. END = "<｜end▁of▁sentence｜>"'
    "<｜Assistant｜><think>\n\n</think>\n\n"
)
FIM = RawPrompt(
    (("<|fim_prefix|>", True), ("def add(a, b):\n    return ", False), ("<|fim_suffix|>", True))
    + (("\n\nprint(add(1, 2))\n", False), ("<|fim_middle|>", True))
)
SUGGESTION = "a + b"


def ask(**options) -> ChatRequest:
    options.setdefault("reasoning", "off")
    return ChatRequest(
        messages=CONVERSATION, max_tokens=48, temperature=0.2, stop=["\n"], **options
    )


async def completed(server: FakeOpenAIServer, request: ChatRequest, reply: Reply, **backend):
    """What the user gets for `request` on a backend made with `backend`'s arguments."""
    server.enqueue(reply)
    client = OpenAIBackend(server.base_url, MODEL, **backend)
    deltas: list[Delta] = []
    try:
        result = await asyncio.wait_for(collect(client.stream(request), deltas.append), DEADLINE)
    finally:
        await client.aclose()
    return result, deltas


# -- R1 with its reasoning skipped, server by server ---------------------------------------


@pytest.mark.parametrize("preset", ["llamacpp", "vllm", "sglang", "lmstudio"])
async def test_servers_with_no_switch_get_r1s_format_with_the_think_block_prefilled(
    fake_openai, preset
):
    reply = Reply(content=SUGGESTION, format="none", chunk_size=1)
    result, deltas = await completed(fake_openai, ask(), reply, preset=preset)

    assert fake_openai.endpoints == ["completions"]
    sent = fake_openai.requests[0]
    assert sent["prompt"] == R1_PROMPT
    assert "messages" not in sent
    assert (sent["model"], sent["max_tokens"], sent["stop"]) == (MODEL, 48, ["\n"])
    assert (sent["temperature"], sent["top_p"], sent["stream"]) == (0.2, 0.95, True)
    for switch in ("reasoning_effort", "thinking", "chat_template_kwargs"):
        assert switch not in sent
    # The answer streams live, as answer, from its first character.
    assert (result.reasoning, result.answer, result.finish) == ("", SUGGESTION, FinishReason.STOP)
    assert [d.content for d in deltas if d.content] == list(SUGGESTION)


async def test_ollama_is_asked_to_skip_thinking_in_chat(fake_openai):
    reply = Reply(content=SUGGESTION, format="none")
    result, _ = await completed(fake_openai, ask(), reply, preset="ollama")

    assert fake_openai.endpoints == ["chat"]
    sent = fake_openai.requests[0]
    assert sent["reasoning_effort"] == "none"
    assert sent["messages"][-1]["content"] == CONVERSATION[-1].content
    assert "thinking" not in sent
    assert (result.reasoning, result.answer) == ("", SUGGESTION)


async def test_the_deepseek_api_gets_its_thinking_switch(fake_openai):
    reply = Reply(content=SUGGESTION, format="none")
    result, _ = await completed(fake_openai, ask(), reply, preset="deepseek")

    assert fake_openai.endpoints == ["chat"]
    sent = fake_openai.requests[0]
    assert sent["thinking"] == {"type": "disabled"}
    assert "reasoning_effort" not in sent
    assert (result.reasoning, result.answer) == ("", SUGGESTION)


@pytest.mark.parametrize("preset", [None, "deepseek", "ollama"])
@pytest.mark.parametrize("wire_format", ["reasoning_content", "reasoning", "thinking", "inline"])
async def test_reasoning_that_comes_anyway_is_never_the_answer(fake_openai, preset, wire_format):
    # A server that ignores the switch, or has none (an unknown server: chat as usual).
    reply = Reply(reasoning="Let me think.", content=SUGGESTION, format=wire_format)
    result, _ = await completed(fake_openai, ask(), reply, preset=preset)

    assert fake_openai.endpoints == ["chat"]
    assert (result.reasoning, result.answer) == ("Let me think.", SUGGESTION)


async def test_an_unknown_server_gets_a_plain_chat_request(fake_openai):
    await completed(fake_openai, ask(), Reply(content=SUGGESTION, format="none"))

    sent = fake_openai.requests[0]
    assert fake_openai.endpoints == ["chat"]
    assert [m["content"] for m in sent["messages"]] == [m.content for m in CONVERSATION]
    assert sent["max_tokens"] == 48  # the caller's cap is what bounds any reasoning
    for switch in ("reasoning_effort", "thinking", "chat_template_kwargs"):
        assert switch not in sent


async def test_a_model_set_as_not_reasoning_is_not_given_r1s_format(fake_openai):
    # `reasoning: off` for the backend: a coder model behind llama-server, its own template.
    reply = Reply(content=SUGGESTION, format="none")
    result, _ = await completed(fake_openai, ask(), reply, preset="llamacpp", reasoning="off")

    assert fake_openai.endpoints == ["chat"]
    assert result.answer == SUGGESTION


async def test_reasoning_on_still_chats(fake_openai):
    reply = Reply(reasoning="Hm.", content=SUGGESTION)
    result, _ = await completed(fake_openai, ask(reasoning="on"), reply, preset="llamacpp")

    assert fake_openai.endpoints == ["chat"]
    assert (result.reasoning, result.answer) == ("Hm.", SUGGESTION)


async def test_a_model_override_applies_to_chat_too(fake_openai):
    await completed(fake_openai, ask(model=FIM_MODEL), Reply(content="x", format="none"))

    assert fake_openai.requests[0]["model"] == FIM_MODEL


# -- raw prompts (fill-in-the-middle) ------------------------------------------------------


@pytest.mark.parametrize("preset", [None, "ollama", "llamacpp", "vllm", "deepseek"])
async def test_a_raw_prompt_goes_to_completions_as_it_is(fake_openai, preset):
    request = ask(raw=FIM, model=FIM_MODEL, slot="completion")
    reply = Reply(content=SUGGESTION, format="none", chunk_size=2)
    result, deltas = await completed(fake_openai, request, reply, preset=preset)

    assert fake_openai.endpoints == ["completions"]
    sent = fake_openai.requests[0]
    assert sent["prompt"] == FIM.text
    assert (sent["model"], sent["max_tokens"], sent["stop"]) == (FIM_MODEL, 48, ["\n"])
    for switch in ("messages", "reasoning_effort", "thinking"):
        assert switch not in sent
    assert (result.reasoning, result.answer, result.finish) == ("", SUGGESTION, FinishReason.STOP)
    assert len([d for d in deltas if d.content]) == 3  # live, chunk by chunk


@pytest.mark.parametrize(
    ("said", "answer"),
    [
        ("<think>\n\n</think>\n\na + b", SUGGESTION),  # an empty think block
        ("</think>a + b", SUGGESTION),  # a stray closing tag
        ("a + b<｜end▁of▁sentence｜>", SUGGESTION),  # a leaked special token
        ("<|fim_middle|>a + b<|endoftext|>", SUGGESTION),
        ('a + "</think>" + b', 'a + "</think>" + b'),  # code that holds a tag stays
    ],
)
async def test_a_raw_prompts_answer_is_cleaned_of_stray_tags_and_tokens(fake_openai, said, answer):
    request = ask(raw=FIM)
    result, _ = await completed(fake_openai, request, Reply(content=said, format="none"))

    assert (result.reasoning, result.answer) == ("", answer)


async def test_reasoning_a_raw_prompt_gets_anyway_is_not_the_answer(fake_openai):
    reply = Reply(reasoning="Let me think.", content=SUGGESTION, format="inline")
    result, _ = await completed(fake_openai, ask(raw=FIM), reply)

    assert (result.reasoning, result.answer) == ("Let me think.", SUGGESTION)


async def test_a_raw_answer_cut_at_max_tokens_says_so(fake_openai):
    reply = Reply(content="a +", format="none", finish_reason="length")
    result, _ = await completed(fake_openai, ask(raw=FIM), reply)

    assert (result.answer, result.finish) == ("a +", FinishReason.LENGTH)
    assert "max_tokens (48)" in result.detail


# -- failures, as for chat --------------------------------------------------------------


async def failure(server: FakeOpenAIServer, reply: Reply, **backend) -> str:
    with pytest.raises(Exception) as caught:
        await completed(server, ask(raw=FIM), reply, **backend)
    return str(caught.value)


async def test_a_server_without_completions_says_what_to_check(fake_openai):
    message = await failure(fake_openai, Reply(status=404), preset="llamacpp")

    assert f"model {MODEL!r} not found at {fake_openai.base_url} (HTTP 404: " in message
    assert "offers /v1/completions" in message


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Reply(status=500), "HTTP 500: The server had an error"),
        (Reply(status=401), "needs an API key (HTTP 401)"),
        (Reply(content="a + b", format="none", malformed=True), "sent a malformed stream"),
        (Reply(content="a + b" * 10, format="none", drop_after=2), "broke off mid-stream"),
        (Reply(content="a + b", format="none", finish_reason=None), "ended before the model"),
    ],
    ids=["500", "401", "malformed", "dropped", "unfinished"],
)
async def test_completions_failures_are_reported_as_chat_ones_are(fake_openai, reply, expected):
    assert expected in await failure(fake_openai, reply)


async def test_completions_errors_never_show_the_key_or_a_password(fake_openai, caplog):
    caplog.set_level(logging.DEBUG, logger="ds_lsp")  # (the server redacts other loggers)
    key, password = "sk-test-DO-NOT-SHOW-51c2", "pw-DO-NOT-SHOW-9090"
    url = fake_openai.base_url.replace("http://", f"http://ds-user:{password}@")
    fake_openai.enqueue(Reply(status=500, error_body=f"{key} {url} rejected"))
    client = OpenAIBackend(url, MODEL, api_key=key, preset="llamacpp")
    try:
        with pytest.raises(Exception) as caught:
            await collect(client.stream(ask()))
    finally:
        await client.aclose()

    message = str(caught.value)
    assert f"http://{HIDDEN}@" in message
    for secret in (key, password):
        assert secret not in message + caplog.text


# -- cancelling closes the connection in every phase, as for chat ---------------------------


@pytest.fixture
async def llamacpp(fake_openai):
    """reasoning "off" requests on it go to /v1/completions."""
    client = OpenAIBackend(fake_openai.base_url, MODEL, preset="llamacpp")
    yield client
    await client.aclose()


async def test_cancel_before_the_server_answers_closes_the_connection(fake_openai, llamacpp):
    fake_openai.enqueue(Reply(hold=True))
    cancel = asyncio.Event()
    generation = asyncio.create_task(collect(llamacpp.stream(ask(cancel=cancel))))
    served = await fake_openai.wait_for_request()
    cancel.set()
    result = await asyncio.wait_for(generation, DEADLINE)

    assert served.endpoint == "completions"
    assert result.finish == FinishReason.CANCELLED
    assert await asyncio.to_thread(served.disconnected.wait, DEADLINE)
    # The backend is fine afterwards.
    fake_openai.enqueue(Reply(content="ok", format="none"))
    assert (await collect(llamacpp.stream(ask()))).answer == "ok"


async def test_cancelling_the_task_before_the_server_answers_closes_the_connection(
    fake_openai, llamacpp
):
    fake_openai.enqueue(Reply(hold=True))
    task = asyncio.create_task(collect(llamacpp.stream(ask())))
    served = await fake_openai.wait_for_request()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(served.disconnected.wait, DEADLINE)


async def test_cancel_mid_stream_closes_the_connection(fake_openai, llamacpp):
    fake_openai.enqueue(Reply(content=SUGGESTION * 10, format="none", hang_after=2))
    cancel = asyncio.Event()
    result = await asyncio.wait_for(
        collect(llamacpp.stream(ask(cancel=cancel)), lambda _: cancel.set()), DEADLINE
    )

    assert result.finish == FinishReason.CANCELLED
    assert result.answer  # something had shown
    assert await fake_openai.wait_for_disconnect()


async def test_closing_the_stream_early_closes_the_connection(fake_openai, llamacpp):
    fake_openai.enqueue(Reply(content=SUGGESTION * 50, format="none", delay=0.02))
    stream = llamacpp.stream(ask())
    await asyncio.wait_for(anext(stream), DEADLINE)
    await stream.aclose()

    assert await fake_openai.wait_for_disconnect()


async def test_cancelling_the_consuming_task_mid_stream_closes_the_connection(
    fake_openai, llamacpp
):
    fake_openai.enqueue(Reply(content=SUGGESTION * 10, format="none", hang_after=2))
    started = asyncio.Event()

    async def consume():
        async for _ in llamacpp.stream(ask()):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await fake_openai.wait_for_disconnect()


async def test_a_cancel_set_before_the_start_sends_nothing(fake_openai, llamacpp):
    cancel = asyncio.Event()
    cancel.set()
    result = await collect(llamacpp.stream(ask(cancel=cancel)))

    assert result.finish == FinishReason.CANCELLED
    assert fake_openai.requests == []


# -- r1_raw_prompt ---------------------------------------------------------------------------


def test_r1_raw_prompt_keeps_the_users_text_apart_from_the_markers():
    prompt = r1_raw_prompt(CONVERSATION)

    assert prompt.text == R1_PROMPT
    texts = [text for text, is_marker in prompt.pieces if not is_marker]
    # The messages' text, never a marker, even where it spells one; earlier reasoning dropped.
    assert texts == [
        "Write add.",
        "\n\ndef add(a, b): ...",
        'Now with types. END = "<｜end▁of▁sentence｜>"',
    ]
