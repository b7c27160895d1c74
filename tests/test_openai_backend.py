"""The OpenAI-compatible backend against the fake server, in every wire format.

What a user sees: the reasoning and the answer, never a tag or a special token;
why a stream ended; a cancel that closes the connection at once; and, when
something fails, a message that says what to try and never shows the API key
or a password in the URL.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import traceback

import pytest

from ds_lsp.backends.base import ChatRequest, Delta, FinishReason, Message, ModelError, collect
from ds_lsp.backends.openai_compat import OpenAIBackend
from ds_lsp.backends.presets import PRESETS, preset_for_url
from ds_lsp.redact import HIDDEN
from tests.fake_openai_server import FakeOpenAIServer, Reply

MODEL = "deepseek-r1:7b"
FAKE_KEY = "sk-test-DO-NOT-SHOW-7f3a9c1e5b"
REASONING = "The user wants a sum.\nI will add a and b."
ANSWER = "def add(a, b):\n    return a + b\n"
ALL_FORMATS = [  # "none" last: the formats before it all carry reasoning
    "reasoning_content",
    "reasoning",
    "thinking",
    "inline",
    "inline_prefilled",
    "legacy_both",
    "router_stray",
    "none",
]
# Deadline for things that should take milliseconds; never reached when all is well.
DEADLINE = 10


def ask(text: str = "Add a and b.", **options) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], **options)


@pytest.fixture
async def backend(fake_openai: FakeOpenAIServer):
    backend = OpenAIBackend(fake_openai.base_url, MODEL)
    yield backend
    await backend.aclose()


async def generate(server: FakeOpenAIServer, backend: OpenAIBackend, reply: Reply, **options):
    server.enqueue(reply)
    return await collect(backend.stream(ask(**options)))


async def failure(server: FakeOpenAIServer, backend: OpenAIBackend, reply: Reply) -> str:
    server.enqueue(reply)
    with pytest.raises(ModelError) as caught:
        await collect(backend.stream(ask()))
    return str(caught.value)


def assert_clean(text: str) -> None:
    for tag in ("<think>", "</think>", "<｜", "<|"):
        assert tag not in text


# -- reasoning and answer, every way they arrive ------------------------------------------


@pytest.mark.parametrize("chunk_size", range(1, 8))
@pytest.mark.parametrize("wire_format", ALL_FORMATS)
async def test_every_wire_format_gives_reasoning_and_answer_apart(
    fake_openai, backend, wire_format, chunk_size
):
    reply = Reply(reasoning=REASONING, content=ANSWER, format=wire_format, chunk_size=chunk_size)
    result = await generate(fake_openai, backend, reply)

    assert result.finish == FinishReason.STOP
    assert result.answer == ANSWER
    # A tagless answer was shown live as (provisional) reasoning before it proved an answer.
    assert result.reasoning == (ANSWER.strip() if wire_format == "none" else REASONING)
    assert_clean(result.reasoning)
    assert_clean(result.answer)


@pytest.mark.parametrize("wire_format", ALL_FORMATS)
async def test_leaked_special_tokens_are_removed(fake_openai, backend, wire_format):
    reply = Reply(
        reasoning="Think.<｜Assistant｜>",
        content="x = 1<｜end▁of▁sentence｜>",
        format=wire_format,
    )
    result = await generate(fake_openai, backend, reply)

    assert result.reasoning == ("x = 1" if wire_format == "none" else "Think.")
    assert result.answer == "x = 1"


@pytest.mark.parametrize("wire_format", ["reasoning_content", "reasoning"])
async def test_a_short_tagless_answer_beside_a_reasoning_field_is_the_answer(
    fake_openai, backend, wire_format
):
    reply = Reply(reasoning="They want the sum.", content="a + b", format=wire_format)
    result = await generate(fake_openai, backend, reply)

    assert (result.reasoning, result.answer) == ("They want the sum.", "a + b")


async def test_blank_lines_between_reasoning_field_and_answer_are_dropped(fake_openai, backend):
    # vLLM's R1 parser leaves the "\n\n" that followed </think> in the content.
    reply = Reply(reasoning="\nAlright.\n", content="\n\n    return x")
    result = await generate(fake_openai, backend, reply)

    assert (result.reasoning, result.answer) == ("Alright.", "    return x")


async def test_inline_prefilled_reasoning_with_r1_whitespace(fake_openai, backend):
    reply = Reply(
        reasoning="\nOkay, swap them.\n", content="\n\nb, a = a, b", format="inline_prefilled"
    )
    result = await generate(fake_openai, backend, reply)

    assert (result.reasoning, result.answer) == ("Okay, swap them.", "b, a = a, b")


@pytest.mark.parametrize("stray", ["<think>\n", "</think>", "<think>\n\n</think>\n\n"])
async def test_stray_router_tags_beside_a_reasoning_field(fake_openai, backend, stray):
    reply = Reply(reasoning=REASONING, content=ANSWER, format="router_stray", stray=stray)
    result = await generate(fake_openai, backend, reply)

    assert (result.reasoning, result.answer) == (REASONING, ANSWER)


# Format "none" only with reasoning off: with reasoning on, a tagless answer holding
# "</think>" reads exactly like reasoning after a prefilled "<think>".
@pytest.mark.parametrize(
    ("wire_format", "reasoning"), [(f, "on") for f in ALL_FORMATS[:-1]] + [("none", "off")]
)
async def test_tag_like_text_in_the_answers_code_is_kept(
    fake_openai, backend, wire_format, reasoning
):
    code = 'OPEN, CLOSE = "<think>", "</think>"\nif a < b: pass\n'
    reply = Reply(reasoning="Name the tags.", content=code, format=wire_format, chunk_size=2)
    result = await generate(fake_openai, backend, reply, reasoning=reasoning)

    assert result.answer == code


@pytest.mark.parametrize("wire_format", ALL_FORMATS[:-1])
async def test_reasoning_cut_off_at_max_tokens_is_reported_with_no_answer(
    fake_openai, backend, wire_format
):
    reply = Reply(
        reasoning="Still thinking about", format=wire_format, closed=False, finish_reason="length"
    )
    result = await generate(fake_openai, backend, reply, max_tokens=64)

    assert result.finish == FinishReason.LENGTH
    assert "max_tokens (64)" in result.detail
    assert (result.reasoning, result.answer) == ("Still thinking about", "")


async def test_a_plain_answer_with_no_reasoning_at_all_is_the_answer(fake_openai, backend):
    # A server that skipped the reasoning: no tags, no field, finished normally.
    fake_openai.enqueue(Reply(content="return 42", format="none"))
    deltas = [delta async for delta in backend.stream(ask())]

    # Shown live as reasoning while it could still be a prefilled template's reasoning,
    # then, once the stream ended with no tag, sent whole as the answer.
    assert "".join(d.reasoning for d in deltas) == "return 42"
    assert [d.content for d in deltas if d.content] == ["return 42"]
    assert deltas[-1].finish == FinishReason.STOP


async def test_a_model_set_as_not_reasoning_streams_its_answer_as_answer(fake_openai):
    # `reasoning: off` (a coder model behind the server): nothing is shown as reasoning.
    backend = OpenAIBackend(base_url=fake_openai.base_url, model="m", reasoning="off")
    fake_openai.enqueue(Reply(content="return 42", format="none"))
    try:
        deltas = [delta async for delta in backend.stream(ask())]
    finally:
        await backend.aclose()

    assert "".join(d.reasoning for d in deltas) == ""
    assert "".join(d.content for d in deltas) == "return 42"


@pytest.mark.parametrize("reason", ["abort", "content_filter", "error"])
async def test_an_abnormal_finish_reason_is_an_error_naming_it(fake_openai, backend, reason):
    reply = Reply(reasoning="Hm.", content="partial", finish_reason=reason)
    result = await generate(fake_openai, backend, reply)

    assert result.finish == FinishReason.ERROR
    assert reason in result.detail


@pytest.mark.parametrize("wire_format", ["reasoning_content", "inline", "inline_prefilled"])
async def test_reasoning_streams_live(fake_openai, backend, wire_format):
    # The server stops sending after 4 chunks and never finishes: a reasoning
    # delta can only come from pieces passed on as they arrive. For a prefilled
    # "<think>" that is long before any "</think>" could tell it is reasoning.
    fake_openai.enqueue(
        Reply(reasoning=REASONING, content=ANSWER, format=wire_format, hang_after=4)
    )
    stream = backend.stream(ask())
    try:
        first = await asyncio.wait_for(anext(stream), DEADLINE)
    finally:
        await stream.aclose()

    assert first.reasoning and REASONING.startswith(first.reasoning)


# -- reasoning off and the reasoning budget ---------------------------------------------


async def test_reasoning_off_reads_content_as_answer_from_the_start(fake_openai, backend):
    reply = Reply(content="x = 1", format="none", finish_reason="length")
    result = await generate(fake_openai, backend, reply, reasoning="off")

    assert (result.reasoning, result.answer) == ("", "x = 1")
    assert "reasoning_effort" not in fake_openai.requests[0]  # unknown server: nothing extra


async def test_reasoning_off_drops_an_empty_think_block(fake_openai, backend):
    reply = Reply(content="<think>\n\n</think>\n\nx = 1", format="none")
    result = await generate(fake_openai, backend, reply, reasoning="off")

    assert (result.reasoning, result.answer) == ("", "x = 1")


async def test_reasoning_off_asks_ollama_to_skip_thinking(fake_openai):
    backend = OpenAIBackend(fake_openai.base_url, MODEL, preset="ollama")
    try:
        await generate(fake_openai, backend, Reply(content="x = 1", format="none"), reasoning="off")
    finally:
        await backend.aclose()

    assert fake_openai.requests[0]["reasoning_effort"] == "none"


@pytest.mark.parametrize("wire_format", ["reasoning_content", "reasoning", "thinking", "inline"])
async def test_reasoning_budget_ends_the_stream_when_exceeded(fake_openai, backend, wire_format):
    reply = Reply(reasoning="step " * 200, content=ANSWER, format=wire_format, chunk_size=5)
    result = await generate(fake_openai, backend, reply, reasoning_budget=20)

    assert result.finish == FinishReason.LENGTH
    assert result.detail == "the reasoning budget of 20 tokens ran out before the answer"
    assert result.answer == ""
    assert result.reasoning.startswith("step step")
    assert len(result.reasoning) < len("step " * 200) / 2


@pytest.mark.parametrize(
    ("preset", "field"), [("vllm", "thinking_token_budget"), ("sglang", "thinking_budget")]
)
async def test_servers_that_keep_a_reasoning_budget_get_it_in_their_own_field(
    fake_openai, preset, field
):
    backend = OpenAIBackend(fake_openai.base_url, MODEL, preset=preset)
    # The server ends the reasoning itself: ds-lsp's own estimate must not cut it first.
    reply = Reply(reasoning="step " * 200, content=ANSWER, chunk_size=5)
    try:
        result = await generate(fake_openai, backend, reply, reasoning_budget=20)
    finally:
        await backend.aclose()

    assert fake_openai.requests[0][field] == 20
    assert (result.finish, result.answer) == (FinishReason.STOP, ANSWER)


@pytest.mark.parametrize("preset", [None, "ollama", "llamacpp", "lmstudio", "deepseek"])
async def test_other_servers_get_no_budget_field(fake_openai, preset):
    backend = OpenAIBackend(fake_openai.base_url, MODEL, preset=preset)
    try:
        await generate(fake_openai, backend, Reply(content="x = 1"), reasoning_budget=20)
    finally:
        await backend.aclose()

    sent = fake_openai.requests[0]
    assert "thinking_token_budget" not in sent and "thinking_budget" not in sent


LONG_ANSWER = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(60))


@pytest.mark.parametrize("wire_format", ["none", "reasoning_content", "reasoning"])
@pytest.mark.parametrize("chunk_size", [1, 5, 64])
async def test_a_plain_answer_longer_than_the_budget_arrives_whole(
    fake_openai, backend, wire_format, chunk_size
):
    # No reasoning at all, in any form: the content alone, far over the budget (20 tokens,
    # about 80 characters). It may look like a prefilled template's reasoning until the
    # stream ends, but the reasoning budget must never cut an answer.
    reply = Reply(content=LONG_ANSWER, format=wire_format, chunk_size=chunk_size)
    result = await generate(fake_openai, backend, reply, reasoning_budget=20)

    assert (result.answer, result.finish, result.detail) == (LONG_ANSWER, FinishReason.STOP, "")


@pytest.mark.parametrize("wire_format", ["reasoning_content", "reasoning", "inline"])
async def test_an_answer_longer_than_the_budget_after_short_reasoning_arrives_whole(
    fake_openai, backend, wire_format
):
    reply = Reply(reasoning="Short.", content=LONG_ANSWER, format=wire_format, chunk_size=7)
    result = await generate(fake_openai, backend, reply, reasoning_budget=20)

    assert (result.reasoning, result.answer) == ("Short.", LONG_ANSWER)
    assert result.finish == FinishReason.STOP


async def test_prefilled_reasoning_over_the_budget_is_not_cut(fake_openai, backend):
    # "R</think>A" with no tag before "</think>" reads exactly like a plain answer until
    # the "</think>" comes, so the budget cannot tell it from one: max_tokens bounds it.
    reply = Reply(reasoning="step " * 200, content=ANSWER, format="inline_prefilled")
    result = await generate(fake_openai, backend, reply, reasoning_budget=20)

    assert (result.reasoning, result.answer) == (("step " * 200).strip(), ANSWER)
    assert result.finish == FinishReason.STOP


async def test_reasoning_within_budget_is_untouched(fake_openai, backend):
    reply = Reply(reasoning=REASONING, content=ANSWER)
    result = await generate(fake_openai, backend, reply, reasoning_budget=1000)

    assert (result.reasoning, result.answer, result.finish) == (
        REASONING,
        ANSWER,
        FinishReason.STOP,
    )


# -- stopping early ----------------------------------------------------------------------------


async def test_cancel_event_stops_a_stream_that_would_never_end(fake_openai, backend):
    fake_openai.enqueue(Reply(reasoning=REASONING, content=ANSWER, hang_after=4))
    cancel = asyncio.Event()
    deltas: list[Delta] = []

    def on_delta(delta: Delta) -> None:
        deltas.append(delta)
        cancel.set()  # the user gives up as soon as something shows

    result = await asyncio.wait_for(collect(backend.stream(ask(cancel=cancel)), on_delta), DEADLINE)

    assert result.finish == FinishReason.CANCELLED
    assert deltas[-1].finish == FinishReason.CANCELLED
    assert await fake_openai.wait_for_disconnect()


async def test_cancel_before_the_server_answers_closes_the_connection(fake_openai, backend):
    # The server took the request but sends nothing, not even headers (a model still
    # loading, a long prompt being evaluated): only the cancel can end this wait.
    fake_openai.enqueue(Reply(hold=True))
    cancel = asyncio.Event()
    generation = asyncio.create_task(collect(backend.stream(ask(cancel=cancel))))
    served = await fake_openai.wait_for_request()
    cancel.set()
    result = await asyncio.wait_for(generation, DEADLINE)

    assert result.finish == FinishReason.CANCELLED
    assert await asyncio.to_thread(served.disconnected.wait, DEADLINE)
    # The backend is fine afterwards.
    assert (await generate(fake_openai, backend, Reply(content="ok"))).answer == "ok"


async def test_cancelling_the_consuming_task_before_the_server_answers_closes_the_connection(
    fake_openai, backend
):
    fake_openai.enqueue(Reply(hold=True))
    task = asyncio.create_task(collect(backend.stream(ask())))
    served = await fake_openai.wait_for_request()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(served.disconnected.wait, DEADLINE)


async def test_cancel_set_before_the_start_sends_nothing(fake_openai, backend):
    cancel = asyncio.Event()
    cancel.set()
    result = await collect(backend.stream(ask(cancel=cancel)))

    assert result.finish == FinishReason.CANCELLED
    assert fake_openai.requests == []


async def test_closing_the_stream_early_closes_the_connection(fake_openai, backend):
    fake_openai.enqueue(Reply(reasoning=REASONING * 20, content=ANSWER, delay=0.02))
    stream = backend.stream(ask())
    await anext(stream)
    await stream.aclose()

    assert await fake_openai.wait_for_disconnect()


async def test_cancelling_the_consuming_task_closes_the_connection(fake_openai, backend):
    fake_openai.enqueue(Reply(reasoning=REASONING, content=ANSWER, hang_after=3))
    started = asyncio.Event()

    async def consume():
        async for _ in backend.stream(ask()):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await fake_openai.wait_for_disconnect()


# -- failures the user can act on ------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_no_server_names_the_url_and_how_to_start_it():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAIBackend(url, MODEL, preset="ollama")
    try:
        with pytest.raises(ModelError) as caught:
            await collect(backend.stream(ask()))
    finally:
        await backend.aclose()

    assert str(caught.value) == f"no model server at {url} — is `ollama serve` running?"


async def test_a_server_that_stops_answering_times_out_with_the_setting_to_raise(fake_openai):
    backend = OpenAIBackend(fake_openai.base_url, MODEL, timeout=0.3)
    try:
        message = await failure(fake_openai, backend, Reply(reasoning=REASONING, hang_after=2))
    finally:
        await backend.aclose()

    assert "no answer from" in message and "within 0.3 s" in message
    assert "request_timeout" in message


async def test_a_refused_key_is_reported_and_never_shown(fake_openai, caplog):
    caplog.set_level(logging.DEBUG)
    backend = OpenAIBackend(fake_openai.base_url, MODEL, api_key=FAKE_KEY)
    try:
        # The fake server echoes the key it got in its error message, as careless ones do.
        message = await failure(fake_openai, backend, Reply(status=401))
        server_echo = await failure(
            fake_openai, backend, Reply(status=500, error_body=f"bad key {FAKE_KEY}")
        )
        with pytest.raises(ModelError) as caught:
            fake_openai.enqueue(Reply(status=403))
            await collect(backend.stream(ask()))
    finally:
        await backend.aclose()

    assert fake_openai.auth_headers[0] == f"Bearer {FAKE_KEY}"  # it was sent, just not shown
    assert message == (
        f"the server at {fake_openai.base_url} refused the API key (HTTP 401); check DS_LSP_API_KEY"
    )
    assert f"bad key {HIDDEN}" in server_echo
    error = caught.value
    for shown in (message, server_echo, str(error), repr(error), repr(backend), backend.name):
        assert FAKE_KEY not in shown
    assert FAKE_KEY not in "".join(traceback.format_exception(error))
    assert caplog.records, "the openai client logs at debug level; the check must see them"
    assert FAKE_KEY not in caplog.text


async def test_no_key_where_one_is_needed_says_to_set_it(fake_openai, backend):
    message = await failure(fake_openai, backend, Reply(status=401))

    assert "needs an API key (HTTP 401); set DS_LSP_API_KEY" in message


async def test_the_environments_openai_key_is_not_sent_to_the_server(fake_openai, monkeypatch):
    # Set before the backend (and its client) exists: the openai client reads it then.
    monkeypatch.setenv("OPENAI_API_KEY", "sk-users-real-openai-key")
    backend = OpenAIBackend(fake_openai.base_url, MODEL)
    try:
        await generate(fake_openai, backend, Reply(content="ok"))
    finally:
        await backend.aclose()

    assert fake_openai.auth_headers == ["Bearer no-key"]


URL_PASSWORD = "pw-DO-NOT-SHOW-2718"


def with_credentials(url: str) -> str:
    return url.replace("http://", f"http://ds-user:{URL_PASSWORD}@")


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert FAKE_KEY not in text
        assert URL_PASSWORD not in text


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=401),
        Reply(status=404),
        Reply(status=500),
        # A server (or proxy) that echoes what it was sent, secrets and all.
        Reply(status=500, error_body=f"http://ds-user:{URL_PASSWORD}@proxy rejected {FAKE_KEY}"),
        Reply(status=400, error_body={"message": f"bad password {URL_PASSWORD}"}),
        Reply(reasoning=REASONING, malformed=True),
        Reply(reasoning=REASONING * 10, drop_after=3),
        Reply(content="def f(", finish_reason=None),
    ],
    ids=["401", "404", "500", "500-echo", "400-echo", "malformed", "dropped", "unfinished"],
)
async def test_errors_never_show_the_key_or_a_password_in_the_url(fake_openai, reply, caplog):
    caplog.set_level(logging.DEBUG, logger="ds_lsp")
    url = with_credentials(fake_openai.base_url)
    backend = OpenAIBackend(url, MODEL, api_key=FAKE_KEY)
    try:
        message = await failure(fake_openai, backend, reply)
    finally:
        await backend.aclose()

    shown_url = fake_openai.base_url.replace("http://", f"http://{HIDDEN}@")
    assert shown_url in message  # the user still sees where it went
    assert_no_secret(message, backend.name, repr(backend), caplog.text)


async def test_no_server_at_a_url_with_a_password_never_shows_it(caplog):
    caplog.set_level(logging.DEBUG, logger="ds_lsp")
    port = closed_port()
    backend = OpenAIBackend(
        with_credentials(f"http://127.0.0.1:{port}/v1"), MODEL, api_key=FAKE_KEY, preset="vllm"
    )
    try:
        with pytest.raises(ModelError) as caught:
            await collect(backend.stream(ask()))
        with pytest.raises(ModelError) as checked:
            await backend.check()
    finally:
        await backend.aclose()

    expected = f"no model server at http://{HIDDEN}@127.0.0.1:{port}/v1 — is `vllm serve` running?"
    assert str(caught.value) == str(checked.value) == expected
    errors = (caught.value, checked.value)
    assert_no_secret(*(str(e) for e in errors), *(repr(e) for e in errors), caplog.text)
    assert_no_secret(*("".join(traceback.format_exception(e)) for e in errors))


async def test_doctor_lines_never_show_a_password_in_the_url(fake_openai):
    url = with_credentials(fake_openai.base_url)
    for model in (MODEL, "deepseek-r1:70b"):  # listed, and not listed
        backend = OpenAIBackend(url, model, api_key=FAKE_KEY)
        try:
            status = await backend.check()
        finally:
            await backend.aclose()
        assert f"http://{HIDDEN}@" in status
        assert_no_secret(status)


async def test_unknown_model_suggests_ollama_pull(fake_openai):
    backend = OpenAIBackend(fake_openai.base_url, "deepseek-r1:671b", preset="ollama")
    try:
        message = await failure(fake_openai, backend, Reply(status=404))
    finally:
        await backend.aclose()

    assert "model 'deepseek-r1:671b' not found" in message
    assert "HTTP 404" in message
    assert "`ollama pull deepseek-r1:671b`" in message


async def test_unknown_model_elsewhere_points_at_the_model_list(fake_openai, backend):
    message = await failure(fake_openai, backend, Reply(status=404))

    assert f"model '{MODEL}' not found" in message
    assert f"{fake_openai.base_url}/models" in message


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (500, "The server had an error while processing your request."),
        (503, "The server is overloaded, please try again later."),
        (429, "Rate limit reached for requests."),
        (400, "Bad request."),
    ],
)
async def test_http_errors_give_the_status_and_the_servers_words(
    fake_openai, backend, status, said
):
    message = await failure(fake_openai, backend, Reply(status=status))

    assert f"HTTP {status}: {said}" in message
    assert fake_openai.base_url in message


async def test_a_long_non_json_error_body_is_shortened(fake_openai, backend):
    message = await failure(fake_openai, backend, Reply(status=502, error_body="oops " * 500))

    assert "HTTP 502: oops oops" in message
    assert len(message) < 600


async def test_malformed_sse_is_reported(fake_openai, backend):
    message = await failure(fake_openai, backend, Reply(reasoning=REASONING, malformed=True))

    assert "sent a malformed stream" in message


async def test_a_stream_that_ends_without_a_finish_reason_is_an_error(fake_openai, backend):
    message = await failure(fake_openai, backend, Reply(content="def f(", finish_reason=None))

    assert "ended before the model finished" in message


async def test_a_connection_dropped_mid_stream_is_an_error(fake_openai, backend):
    message = await failure(fake_openai, backend, Reply(reasoning=REASONING * 10, drop_after=3))

    assert "broke off mid-stream" in message


# -- what is sent --------------------------------------------------------------------------------


async def test_the_request_follows_r1_advice_and_the_callers_settings(fake_openai, backend):
    messages = [
        Message("user", "Write add."),
        Message("assistant", "def add(a, b): ..."),
        Message("user", "Now with types."),
    ]
    fake_openai.enqueue(Reply(content="ok", usage=True))
    await collect(backend.stream(ChatRequest(messages=messages, max_tokens=512, stop=["\n\n\n"])))

    sent = fake_openai.requests[0]
    assert sent["model"] == MODEL
    assert (sent["temperature"], sent["top_p"]) == (0.6, 0.95)
    assert sent["max_tokens"] == 512
    assert sent["stop"] == ["\n\n\n"]
    assert sent["stream"] is True
    assert sent["messages"] == [{"role": m.role, "content": m.content} for m in messages]
    assert all(m["role"] != "system" for m in sent["messages"])


# -- doctor, presets, names ---------------------------------------------------------------------


async def test_check_finds_the_model_among_the_listed_ones(fake_openai, backend):
    assert await backend.check() == f"{fake_openai.base_url} serves {MODEL}"


async def test_check_says_when_the_model_is_not_listed(fake_openai):
    backend = OpenAIBackend(fake_openai.base_url, "deepseek-r1:14b", preset="ollama")
    try:
        status = await backend.check()
    finally:
        await backend.aclose()

    assert "deepseek-r1:14b is not among the models it lists" in status
    assert "deepseek-r1:1.5b, deepseek-r1:7b" in status
    assert "ollama pull deepseek-r1:14b" in status


async def test_check_reports_a_missing_server():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    backend = OpenAIBackend(url, MODEL, preset="llamacpp")
    try:
        with pytest.raises(ModelError, match="is `llama-server` running"):
            await backend.check()
    finally:
        await backend.aclose()


async def test_check_with_a_url_missing_v1_says_so(fake_openai):
    backend = OpenAIBackend(fake_openai.base_url.removesuffix("/v1"), MODEL)
    try:
        with pytest.raises(ModelError, match="usually ends in /v1"):
            await backend.check()
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("url", "preset"),
    [
        ("http://localhost:11434/v1", "ollama"),
        ("http://127.0.0.1:1234/v1", "lmstudio"),
        ("http://localhost:8080/v1", "llamacpp"),
        ("http://gpu-box:8000/v1", "vllm"),
        ("http://localhost:30000/v1", "sglang"),
        ("https://api.deepseek.com/v1", "deepseek"),
        ("https://api.deepseek.com", "deepseek"),
        ("http://localhost:9999/v1", None),
        ("not a url", None),
    ],
)
def test_preset_for_url(url, preset):
    assert preset_for_url(url) == preset


def test_every_preset_url_maps_back_to_its_preset():
    for name, preset in PRESETS.items():
        assert preset_for_url(preset.base_url) == name
        assert preset.start_hint


async def test_name_shows_url_and_model():
    backend = OpenAIBackend("http://127.0.0.1:11434/v1/", "deepseek-r1:7b")
    try:
        assert backend.name == "openai (http://127.0.0.1:11434/v1, deepseek-r1:7b)"
    finally:
        await backend.aclose()


async def test_name_hides_credentials_in_the_url():
    backend = OpenAIBackend(with_credentials("http://gpu-box:8000/v1"), "r1", api_key=FAKE_KEY)
    try:
        assert backend.name == f"openai (http://{HIDDEN}@gpu-box:8000/v1, r1)"
        assert repr(backend) == f"OpenAIBackend({backend.name})"
    finally:
        await backend.aclose()
