"""The model scheduler over real backends: the OpenAI one against the fake server, the
in-process one on the tiny GGUF."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from ds_lsp.backends.base import ChatRequest, FinishReason, Message, ModelError, collect
from ds_lsp.backends.scheduler import ModelScheduler
from ds_lsp.config import Settings
from tests.tiny_gguf import ANSWER


def ask(**options) -> ChatRequest:
    return ChatRequest(messages=[Message("user", "Say hello.")], **options)


def openai_settings(fake_openai, **more) -> Settings:
    return Settings(backend="openai", base_url=fake_openai.base_url, model="m", **more)


async def test_nothing_is_built_until_the_first_request(fake_openai):
    scheduler = ModelScheduler(openai_settings(fake_openai))
    try:
        assert scheduler.current is None
        result = await collect(scheduler.stream(ask()))
        assert result.finish is FinishReason.STOP
        assert scheduler.current is not None
    finally:
        await scheduler.aclose()


async def test_only_backend_settings_rebuild_the_backend(fake_openai):
    settings = openai_settings(fake_openai)
    scheduler = ModelScheduler(settings)
    try:
        first = await scheduler.backend()
        scheduler.update(dataclasses.replace(settings, max_tokens=10, temperature=0.1))
        assert await scheduler.backend() is first

        scheduler.update(dataclasses.replace(settings, model="deepseek-r1:7b"))
        second = await scheduler.backend()
        await collect(scheduler.stream(ask()))
    finally:
        await scheduler.aclose()

    assert second is not first
    assert first._client.is_closed(), "the old backend was closed"
    assert fake_openai.requests[-1]["model"] == "deepseek-r1:7b"


async def test_a_failed_build_is_reported_and_the_next_request_tries_again(fake_openai):
    scheduler = ModelScheduler(Settings(backend="llama_cpp", model_path="/nowhere/model.gguf"))
    try:
        with pytest.raises(ModelError, match="no GGUF model at /nowhere/model.gguf"):
            await scheduler.backend()
        scheduler.update(openai_settings(fake_openai))
        result = await collect(scheduler.stream(ask()))
    finally:
        await scheduler.aclose()

    assert result.finish is FinishReason.STOP


@pytest.mark.llama
async def test_a_new_model_loads_off_the_event_loop(tiny_gguf_path, looping_gguf_path):
    settings = Settings(model_path=str(tiny_gguf_path), n_ctx=1024)
    scheduler = ModelScheduler(settings)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.005)

    try:
        first = await scheduler.backend()
        ticking = asyncio.create_task(ticker())
        scheduler.update(dataclasses.replace(settings, model_path=str(looping_gguf_path)))
        second = await scheduler.backend()  # waits for the background load
        ticking.cancel()
        result = await collect(scheduler.stream(ask(reasoning="off")))
    finally:
        await scheduler.aclose()

    assert second is not first and first._closed
    assert second.model_path == looping_gguf_path
    assert ticks > 1, "the event loop kept running while the model loaded"
    assert (result.answer, result.finish) == (ANSWER, FinishReason.STOP)


@pytest.mark.llama
async def test_a_separate_completion_model_serves_the_completion_slot(
    tiny_gguf_path, looping_gguf_path
):
    settings = Settings(
        model_path=str(tiny_gguf_path), completion_model_path=str(looping_gguf_path), n_ctx=1024
    )
    scheduler = ModelScheduler(settings)
    try:
        completion = await collect(
            scheduler.stream(ask(reasoning="off", slot="completion", max_tokens=8))
        )
        chat = await collect(scheduler.stream(ask()))
        chat_model = (await scheduler.backend("chat")).model_path
        completion_model = await scheduler.backend("completion")
        scheduler.update(dataclasses.replace(settings, completion_model_path=None))
        await scheduler.rebuilt()
        after = await collect(scheduler.stream(ask(reasoning="off", slot="completion")))
    finally:
        await scheduler.aclose()

    assert chat_model == tiny_gguf_path
    assert completion_model.model_path == looping_gguf_path
    assert completion_model.reasons is False, "a completion model is not forced to reason"
    assert completion_model._closed, "unset, its model was closed"
    # A model set not to reason gets no think block: the tiny one then says its noise.
    assert completion.reasoning == "" and completion.answer
    assert (chat.answer, after.answer) == (ANSWER, ANSWER)


async def test_closing_stops_what_the_model_is_generating(fake_openai):
    """What the server does at `shutdown`: the model's stream closes, nothing waits on."""
    from tests.fake_openai_server import Reply

    scheduler = ModelScheduler(openai_settings(fake_openai))
    fake_openai.enqueue(Reply(content="a long answer", format="none", hold=True))
    generating = asyncio.ensure_future(collect(scheduler.stream(ask())))
    await fake_openai.wait_for_request(0)

    await asyncio.wait_for(scheduler.aclose(), 5)

    assert await fake_openai.wait_for_disconnect(0), "the model's stream is closed"
    with pytest.raises(ModelError):  # the request ends, not hangs
        await asyncio.wait_for(generating, 5)
