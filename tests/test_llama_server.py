"""The OpenAI backend and `ds-lsp edit` against a real llama.cpp `llama-server`.

The server is run as users run it for R1 (`llama-server -m model.gguf --jinja`),
built from the same llama.cpp as the in-process backend (`make llama-server`).
It serves tiny GGUFs with the real R1 tokenizer and chat template whose
weights say a fixed script (tests/tiny_gguf.py), so the wire format is the
real one: the reasoning arrives in `reasoning_content`, the answer in
`content`. Both R1 chat templates are served: the original one, after which
the model opens `<think>` itself, and the later one, which opens it in the
prompt. Requests use temperature 0, where the scripted models are
deterministic under llama-server.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import pytest
from lsprotocol import types

from ds_lsp.backends.base import ChatRequest, Delta, FinishReason, Message, ModelError, collect
from ds_lsp.backends.openai_compat import OpenAIBackend
from tests.test_cli_edit import ds_lsp, env_for, one_line
from tests.test_edit_lsp import client, edit, editor  # noqa: F401 (client, editor: fixtures)
from tests.test_edit_lsp import start as start_edit_session
from tests.tiny_gguf import (
    ANSWER,
    EOS,
    FINISHING_SCRIPT,
    LOOPING_REASONING_STEP,
    LOOPING_SCRIPT,
    REASONING,
    cached_tiny_gguf,
    later_chat_template,
    load_tokenizer,
)

pytestmark = pytest.mark.llama_server

MODEL = "deepseek-r1-distill-qwen-1.5b"  # llama-server answers to any model name
EDIT_URI = "file:///work/double.py"
DEADLINE = 30  # seconds, for what takes well under one; never reached when all is well

# After the original template's prompt the model opens the reasoning itself.
OPENING = ["<｜Assistant｜>", "<think>", "\n"]
HELLO_SCRIPT = (*FINISHING_SCRIPT, OPENING)
LOOPING_SERVER_SCRIPT = (*LOOPING_SCRIPT, OPENING)
# Reasons briefly, then writes one line of code.
DOUBLING_SCRIPT = (
    OPENING,
    ["\n", "Okay", ",", " double", " it", ".", "</think>"],
    ["</think>", "\n\n", "return", " value", " *", " ", "2", EOS],
)
TEMPLATES = ["original template", "later template"]


def served(llama_server, name: str, script: Sequence[Sequence[str]], template: str) -> str:
    """The base URL of a llama-server serving the tiny model with that script."""
    if template == "later template":
        chat_template = later_chat_template(load_tokenizer()["tokenizer.chat_template"])
        name += "-later"
    else:
        chat_template = None
    return llama_server(cached_tiny_gguf(f"server-{name}", chat_template, script))


@pytest.fixture(scope="module", params=TEMPLATES)
def hello_url(request, llama_server) -> str:
    """Reasons "Okay, I should say hello.", answers "Hello from a tiny model!"."""
    return served(llama_server, "hello", HELLO_SCRIPT, request.param)


@pytest.fixture(scope="module", params=TEMPLATES)
def doubling_url(request, llama_server) -> str:
    return served(llama_server, "doubling", DOUBLING_SCRIPT, request.param)


@pytest.fixture(scope="module")
def looping_url(llama_server) -> str:
    """Reasons "Hmm, let me think again." until the context is full (4096 tokens)."""
    return served(llama_server, "looping", LOOPING_SERVER_SCRIPT, "original template")


@pytest.fixture
async def hello(hello_url):
    backend = OpenAIBackend(hello_url, MODEL)
    yield backend
    await backend.aclose()


@pytest.fixture
async def looping(looping_url):
    backend = OpenAIBackend(looping_url, MODEL)
    yield backend
    await backend.aclose()


def ask(text: str = "Say hello.", **options) -> ChatRequest:
    return ChatRequest(messages=[Message("user", text)], temperature=0, **options)


def metrics(base_url: str) -> dict[str, float]:
    """The server's Prometheus counters (`--metrics`), without the `llamacpp:` prefix."""
    with urllib.request.urlopen(f"{base_url.removesuffix('/v1')}/metrics", timeout=5) as page:
        lines = page.read().decode().splitlines()
    pairs = (line.split() for line in lines if line and not line.startswith("#"))
    return {name.removeprefix("llamacpp:"): float(value) for name, value in pairs}


async def decoded_until_idle(base_url: str) -> float:
    """Waits until the server generates nothing; returns its llama_decode calls so far."""
    while (now := metrics(base_url))["requests_processing"]:
        await asyncio.sleep(0.02)
    return now["n_decode_total"]


# -- what the real server sends, and what the backend makes of it --------------------------


def test_the_server_sends_the_reasoning_in_reasoning_content(hello_url):
    """The premise of these tests: llama-server --jinja splits R1's reasoning itself."""
    body = {"messages": [{"role": "user", "content": "Say hello."}], "temperature": 0}
    request = urllib.request.Request(
        f"{hello_url}/chat/completions",
        data=json.dumps({**body, "model": MODEL, "stream": True}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=DEADLINE) as response:
        lines = response.read().decode().splitlines()
    events = [line.removeprefix("data: ") for line in lines if line.startswith("data: ")]
    deltas = [json.loads(event)["choices"][0]["delta"] for event in events[:-1]]
    reasoning = "".join(delta.get("reasoning_content") or "" for delta in deltas)
    content = "".join(delta.get("content") or "" for delta in deltas)

    assert events[-1] == "[DONE]"
    assert reasoning.strip() == REASONING
    assert content.strip() == ANSWER


async def test_reasoning_and_answer_arrive_apart(hello):
    result = await asyncio.wait_for(collect(hello.stream(ask())), DEADLINE)

    assert (result.reasoning, result.answer, result.finish) == (
        REASONING,
        ANSWER,
        FinishReason.STOP,
    )


async def test_the_reasoning_streams_token_by_token_before_the_answer(hello):
    deltas: list[Delta] = []
    await asyncio.wait_for(collect(hello.stream(ask()), deltas.append), DEADLINE)

    kinds = ["reasoning" if d.reasoning else "answer" for d in deltas if d.reasoning or d.content]
    first_answer = kinds.index("answer")
    assert first_answer > 1  # live, not all at once at the end
    assert set(kinds[:first_answer]) == {"reasoning"}
    assert set(kinds[first_answer:]) == {"answer"}


async def test_max_tokens_cuts_the_reasoning_and_says_so(looping):
    result = await asyncio.wait_for(collect(looping.stream(ask(max_tokens=12))), DEADLINE)

    assert result.finish == FinishReason.LENGTH
    assert "max_tokens (12)" in result.detail
    assert result.reasoning.startswith(LOOPING_REASONING_STEP)
    assert result.answer == ""


# -- stopping early: the server stops generating ------------------------------------------
# Unstopped, the looping model generates about 4,000 tokens; a stop that reaches
# the server ends it after a few (it notices the closed connection at the next token).
STOPPED_SOON = 1000


async def test_a_cancel_mid_stream_stops_the_server(looping, looping_url):
    before = await decoded_until_idle(looping_url)
    cancel = asyncio.Event()
    deltas: list[Delta] = []

    def on_delta(delta: Delta) -> None:
        deltas.append(delta)
        if len(deltas) == 3:
            cancel.set()  # the user gives up while the model reasons

    request = ask(max_tokens=100_000, cancel=cancel)
    result = await asyncio.wait_for(collect(looping.stream(request), on_delta), DEADLINE)

    assert result.finish == FinishReason.CANCELLED
    assert result.reasoning.startswith("Hmm")
    generated = await asyncio.wait_for(decoded_until_idle(looping_url), DEADLINE) - before
    assert generated < STOPPED_SOON


async def test_closing_the_stream_stops_the_server(looping, looping_url):
    before = await decoded_until_idle(looping_url)
    stream = looping.stream(ask(max_tokens=100_000))
    first = await asyncio.wait_for(anext(stream), DEADLINE)
    await stream.aclose()

    assert first.reasoning.startswith("Hmm")
    generated = await asyncio.wait_for(decoded_until_idle(looping_url), DEADLINE) - before
    assert generated < STOPPED_SOON


async def test_cancelling_the_consuming_task_stops_the_server(looping, looping_url):
    before = await decoded_until_idle(looping_url)
    started = asyncio.Event()

    async def consume():
        async for _ in looping.stream(ask(max_tokens=100_000)):
            started.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(started.wait(), DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    generated = await asyncio.wait_for(decoded_until_idle(looping_url), DEADLINE) - before
    assert generated < STOPPED_SOON


# -- failures the user can act on ----------------------------------------------------------


async def test_a_prompt_larger_than_the_context_is_a_clear_error(hello, hello_url):
    too_long = "word " * 5000  # the tiny model's context is 4096 tokens
    with pytest.raises(ModelError) as caught:
        await asyncio.wait_for(collect(hello.stream(ask(too_long))), DEADLINE)

    message = str(caught.value)
    assert message.startswith(f"the server at {hello_url} rejected the request (HTTP 400: ")
    assert "exceeds the available context size (4096 tokens)" in message


async def test_doctor_says_when_the_model_asked_for_is_not_the_one_served(hello_url):
    backend = OpenAIBackend(hello_url, "deepseek-r1:70b")
    try:
        said = await asyncio.wait_for(backend.check(), DEADLINE)
    finally:
        await backend.aclose()

    assert said.startswith(f"{hello_url} answers, but deepseek-r1:70b is not among the models")
    assert "server-hello" in said  # what it does serve


# -- `ds-lsp edit` end to end -------------------------------------------------------------


def test_cli_edit_applies_the_models_answer(tmp_path: Path, doubling_url):
    path = tmp_path / "calc.py"
    path.write_bytes(b"def double(value):\n    return value\n")
    env = env_for(doubling_url, DS_LSP_MODEL=MODEL, DS_LSP_TEMPERATURE="0")

    done = ds_lsp("edit", str(path), "--lines", "2", "-i", "return it doubled", "--write", env=env)

    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == b"def double(value):\n    return value * 2\n"
    assert "+    return value * 2" in done.stdout
    assert "Okay, double it." in done.stderr  # the reasoning, streamed
    assert "think>" not in done.stdout + done.stderr


def test_cli_edit_refuses_a_prose_answer_and_keeps_the_file(tmp_path: Path, hello_url):
    path = tmp_path / "calc.py"
    original = b"def double(value):\n    return value\n"
    path.write_bytes(original)
    env = env_for(hello_url, DS_LSP_MODEL=MODEL, DS_LSP_TEMPERATURE="0")

    done = ds_lsp("edit", str(path), "--lines", "2", "-i", "double it", "--write", env=env)

    assert done.returncode == 1
    assert "prose" in one_line(done.stderr)
    assert done.stdout == ""
    assert path.read_bytes() == original


# -- "edit highlighted code" through the language server --------------------------------


async def test_lsp_edit_lands_and_its_reasoning_shows_on_hover(
    client,  # noqa: F811 (the fixture imported above)
    editor,  # noqa: F811
    doubling_url,
):
    from types import SimpleNamespace

    # Temperature 0: the tiny scripted model is deterministic only then.
    await start_edit_session(client, SimpleNamespace(base_url=doubling_url), temperature=0)
    editor.open(EDIT_URI, "def double(value):\n    return value\n")
    line = types.Range(types.Position(1, 0), types.Position(2, 0))

    result = await edit(client, EDIT_URI, line, "return it doubled")

    assert result["status"] == "applied", result
    assert editor.texts[EDIT_URI] == "def double(value):\n    return value * 2\n"
    assert "Okay, double it." in editor.reasoning_text()
    shown = await client.text_document_hover_async(
        types.HoverParams(types.TextDocumentIdentifier(EDIT_URI), types.Position(1, 4))
    )
    assert "Okay, double it." in shown.contents.value
