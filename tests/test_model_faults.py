"""Model faults, end to end (issue 16, section 3; docs/reliability.md).

Whatever the model or its server does (nothing listening, a connection dropped
mid-stream, a stream that stalls, an HTTP error, a malformed stream, reasoning
that never ends, an answer cut off, a GGUF that does not load), the user gets a
clear message, their document is left as it was, and the server goes on: the
next request, once the model is back, works without a restart.

Through the real server, an editor that applies and echoes edits and opens what
the server shows (tests/test_chat_lsp.ChatEditor) and the fake model server, for
each feature a fault concerns:
- an edit: the command's result and a `window/showMessage` say what happened;
  the document is unchanged;
- a chat: the result and the message say it; the chat keeps the question, and
  what the model said before the fault stays under its heading, marked with the
  reason; the source file is unchanged;
- ghost text: no suggestion and no message shown (a keystroke's request must
  not pop anything up), the fault logged once however often it recurs.
"""

from __future__ import annotations

import math
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import pytest
from lsprotocol import types
from pytest_lsp import client_capabilities

from ds_lsp.chat_writing import answer_heading
from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.lsp_editor import Editor
from tests.test_chat_lsp import (
    PARSE_ARGS,
    SOURCE,
    ChatEditor,
    add,
    ask,
    chat_session,
    send,
    source_uri,
    until_server_has,
)
from tests.test_completion_lsp import ghost_text
from tests.test_edit_lsp import edit, fenced
from tests.tiny_gguf import ANSWER as TINY_ANSWER

REASONING = "The user wants argv[1] guarded.\nA default name works when none is given.\n"
FIXED = 'def parse_args(argv):\n    return {"name": argv[1] if len(argv) > 1 else "world"}\n'
CHAT_ANSWER = "Guard `argv[1]` with a length check and fall back to a default name."
# Ghost text: a function to finish, and the spot after `return `.
GHOST_URI = "file:///work/calc.py"
GHOST_SOURCE = "def add(a, b):\n    return \n"
GHOST_SPOT = (1, 11)
TIMEOUT = 0.5  # request_timeout (seconds) for the faults that stall

# What each feature asks of a model that works (the chunks are counted by the faults).
EDIT_REPLY = Reply(reasoning=REASONING, content=fenced(FIXED), chunk_size=16)
CHAT_REPLY = Reply(reasoning=REASONING, content=CHAT_ANSWER, chunk_size=16)
GHOST_REPLY = Reply(content="a + b", format="none", chunk_size=2)


@dataclass(frozen=True)
class Fault:
    """A model fault: how it changes a working reply, and what the user is told."""

    breaks: Callable[[Reply], Reply]
    says: str
    settings: dict = field(default_factory=dict)
    # Whether the model said something (reasoning or answer) before the fault: a chat
    # then keeps it under an answer heading, marked as cut off.
    said_something: bool = False
    chat_status: str = "failed"


def _reasoning_chunks(reply: Reply) -> int:
    return math.ceil(len(reply.reasoning) / reply.chunk_size)


def _http(status: int, says: str) -> Fault:
    return Fault(lambda r: replace(r, status=status), says)


def _malformed(event: str | bool, says: str) -> Fault:
    return Fault(lambda r: replace(r, malformed=event), says)


# Faults of the server or the connection, met by every feature. Each entry is what one
# test meets in a row, with one server: a fault at a time, each followed by the next
# request (HTTP errors and malformed streams differ only in the message).
SERVER_FAULTS: dict[str, tuple[Fault, ...]] = {
    "dropped while reasoning": (
        Fault(
            lambda r: replace(r, drop_after=2),  # the role chunk and the first reasoning
            "broke off mid-stream",
            said_something=True,
        ),
    ),
    "dropped mid-answer": (
        Fault(
            lambda r: replace(r, drop_after=1 + _reasoning_chunks(r) + 1),  # one answer chunk
            "broke off mid-stream",
            said_something=True,
        ),
    ),
    "stalls after the headers": (
        Fault(
            lambda r: replace(r, hang_after=2),
            f"within {TIMEOUT:g} s; the model may still be loading",
            settings={"requestTimeout": TIMEOUT},
            said_something=True,
        ),
    ),
    "never sends the headers": (
        Fault(
            lambda r: replace(r, hold=True),
            f"within {TIMEOUT:g} s; the model may still be loading",
            settings={"requestTimeout": TIMEOUT},
        ),
    ),
    "no finish_reason": (
        Fault(
            lambda r: replace(r, finish_reason=None),
            "ended before the model finished",
            said_something=True,
        ),
    ),
    "HTTP 400 401 404 429 500 503": (
        _http(400, "rejected the request (HTTP 400: Bad request.)"),
        _http(401, "needs an API key (HTTP 401)"),
        _http(404, "model 'm' not found at"),
        _http(429, "rate limiting (HTTP 429: Rate limit reached for requests.)"),
        _http(500, "failed (HTTP 500: The server had an error"),
        _http(503, "failed (HTTP 503: The server is overloaded"),
    ),
    "malformed SSE": (
        _malformed(True, "malformed stream (an event that is not JSON)"),
        _malformed("<html>502 Bad Gateway</html>", "malformed stream (an event that is not JSON)"),
        _malformed("[1, 2]", "malformed stream (an event that is not an object: [1, 2])"),
        _malformed(
            '{"choices": [{"index": 0, "delta": 5}]}',
            "malformed stream (a `delta` that is not an object)",
        ),
        _malformed(
            '{"error": {"message": "CUDA out of memory"}}',
            "reported an error: CUDA out of memory",
        ),
    ),
}

# Reasoning and length: a ghost text's request does not reason, and its max_tokens
# is what bounds a suggestion, so these concern edits and chats.
LENGTH_FAULTS: dict[str, tuple[Fault, ...]] = {
    "reasoning never closes </think>": (
        Fault(
            lambda r: replace(r, format="inline", content="", closed=False, finish_reason="length"),
            "max_tokens (4096)",
            said_something=True,
            chat_status="cut_off",
        ),
    ),
    "reasoning runs over the budget": (
        Fault(
            lambda r: replace(r, reasoning=REASONING * 8, closed=False),
            "the reasoning budget of 32 tokens ran out",
            settings={"reasoningBudget": 32},
            said_something=True,
            chat_status="cut_off",
        ),
    ),
    "answer cut off": (
        Fault(
            lambda r: replace(r, content=r.content[: len(r.content) // 2], finish_reason="length"),
            "max_tokens (4096)",
            said_something=True,
            chat_status="cut_off",
        ),
    ),
}
ALL_FAULTS = {**SERVER_FAULTS, **LENGTH_FAULTS}
# A ghost text's request does not reason: a drop while reasoning is a drop mid-answer.
GHOST_FAULTS = {name: f for name, f in SERVER_FAULTS.items() if name != "dropped while reasoning"}


def settings_of(faults: tuple[Fault, ...]) -> dict:
    return {key: value for fault in faults for key, value in fault.settings.items()}


# ---------------------------------------------------------------- the editor and server


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
async def client(state):
    async for session in chat_session(state):
        yield session


@pytest.fixture
def editor(client) -> ChatEditor:
    return ChatEditor(client)


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src" / "cli.py").write_text(SOURCE)
    return root


@pytest.fixture
def late_servers():
    """Start a fake model server later, on a given port; stopped at the end."""
    started: list[FakeOpenAIServer] = []

    def start(port: int) -> FakeOpenAIServer:
        started.append(FakeOpenAIServer().start(port))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def closed_port() -> int:
    """A port nothing listens on (the kernel just handed it out and it was let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start(client, root, base_url: str | None = None, **settings):
    """Initialize as VS Code does, with inline completion; the model is `m` at
    `base_url`, or what the settings say."""
    caps = client_capabilities("visual-studio-code")
    caps.text_document.inline_completion = types.InlineCompletionClientCapabilities()
    options = settings
    if base_url is not None:
        options = {"backend": "openai", "baseUrl": base_url, "model": "m", **settings}
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=caps,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options={"dsLsp": options},
        )
    )


async def edit_parse_args(client, root) -> dict:
    return await edit(client, source_uri(root), PARSE_ARGS, "Guard argv[1]")


async def new_question(client, editor: Editor, root, question: str = "Fix it?") -> str:
    """parse_args added to the chat and a question asked under it: the chat's uri."""
    chat = (await add(client, root))["uri"]
    ask(editor, chat, question)
    await until_server_has(client, chat, editor.texts[chat])
    return chat


async def ask_again(client, editor: Editor, chat: str) -> None:
    """After an answer that ended early, a new question under the new `## You`."""
    ask(editor, chat, "Try again?")
    await until_server_has(client, chat, editor.texts[chat])


def shown(client) -> list[str]:
    return [m.message for m in client.messages]


def warnings(client, needle: str) -> list[str]:
    """The warnings logged (window/logMessage) that hold `needle`."""
    return [
        m.message
        for m in client.log_messages
        if m.type == types.MessageType.Warning and needle in m.message
    ]


# ---------------------------------------------------------------- faults, feature by feature


@pytest.mark.parametrize("faults", ALL_FAULTS.values(), ids=ALL_FAULTS)
async def test_an_edit_meeting_a_model_fault_says_so_and_changes_nothing(
    client, editor, fake_openai, root, faults
):
    await start(client, root, fake_openai.base_url, **settings_of(faults))
    editor.open(source_uri(root), SOURCE)
    messages = []

    for fault in faults:
        fake_openai.enqueue(fault.breaks(EDIT_REPLY))
        result = await edit_parse_args(client, root)
        assert result["status"] == "failed", result
        assert fault.says in result["message"]
        messages.append(f"DeepSeek: {result['message']}")

    assert shown(client) == messages
    assert editor.texts[source_uri(root)] == SOURCE and editor.applied == []
    # The next edit works, with the same server.
    fake_openai.enqueue(EDIT_REPLY)
    assert (await edit_parse_args(client, root))["status"] == "applied"
    assert editor.texts[source_uri(root)] == SOURCE.replace(
        '    return {"name": argv[1]}\n', FIXED.split("\n", 1)[1]
    )


@pytest.mark.parametrize("faults", ALL_FAULTS.values(), ids=ALL_FAULTS)
async def test_a_chat_meeting_a_model_fault_says_so_and_keeps_the_question(
    client, editor, fake_openai, root, faults
):
    await start(client, root, fake_openai.base_url, **settings_of(faults))
    editor.open(source_uri(root), SOURCE)
    chat = await new_question(client, editor, root)
    messages = []

    for fault in faults:
        before = editor.texts[chat]
        fake_openai.enqueue(fault.breaks(CHAT_REPLY))
        result = await send(client, chat)
        assert result["status"] == fault.chat_status, result
        assert fault.says in result["message"]
        messages.append(f"DeepSeek: {result['message']}")
        text = editor.texts[chat]
        if fault.said_something:  # what arrived stays, under its heading, with the reason
            assert text.startswith(before + answer_heading(before)), text
            cut_off = text[len(before) :].split("*(cut off: ")[1]
            assert fault.says in cut_off and text.endswith(")*\n\n## You\n\n")
            await ask_again(client, editor, chat)
        else:  # nothing arrived: the chat is as it was, the question ready to send again
            assert text == before
            assert "send it again" in result["message"]

    assert shown(client) == messages
    assert editor.texts[source_uri(root)] == SOURCE
    # The next answer arrives, with the same server.
    fake_openai.enqueue(CHAT_REPLY)
    assert (await send(client, chat))["status"] == "answered"
    assert editor.texts[chat].endswith(f"{CHAT_ANSWER}\n\n## You\n\n")


@pytest.mark.parametrize("faults", GHOST_FAULTS.values(), ids=GHOST_FAULTS)
async def test_ghost_text_meeting_a_model_fault_is_empty_and_pops_nothing_up(
    client, editor, fake_openai, root, faults
):
    await start(client, root, fake_openai.base_url, **settings_of(faults))
    editor.open(GHOST_URI, GHOST_SOURCE)

    for fault in faults:  # each twice in a row, as a user typing on would meet it
        fake_openai.enqueue(fault.breaks(GHOST_REPLY), fault.breaks(GHOST_REPLY))
        assert await ghost_text(client, GHOST_URI, *GHOST_SPOT) == []
        assert await ghost_text(client, GHOST_URI, *GHOST_SPOT) == []

    assert shown(client) == []
    for says in {fault.says for fault in faults}:  # logged once, however often in a row
        assert len(warnings(client, says)) == 1, says
    assert editor.texts[GHOST_URI] == GHOST_SOURCE
    # The next suggestion shows, with the same server.
    fake_openai.enqueue(GHOST_REPLY)
    items = await ghost_text(client, GHOST_URI, *GHOST_SPOT)
    assert [item.insert_text for item in items] == ["a + b"]


# ---------------------------------------------------------------- no model server yet


async def test_an_edit_with_no_model_server_says_so_and_works_once_it_is_up(
    client, editor, root, late_servers
):
    port = closed_port()
    await start(client, root, f"http://127.0.0.1:{port}/v1")
    editor.open(source_uri(root), SOURCE)

    result = await edit_parse_args(client, root)

    assert result["status"] == "failed"
    assert f"no model server at http://127.0.0.1:{port}/v1" in result["message"]
    assert "is the server running" in result["message"]
    assert shown(client) == [f"DeepSeek: {result['message']}"]
    assert editor.texts[source_uri(root)] == SOURCE and editor.applied == []
    late_servers(port).enqueue(EDIT_REPLY)
    assert (await edit_parse_args(client, root))["status"] == "applied"


async def test_a_chat_with_no_model_server_keeps_the_question_and_answers_once_it_is_up(
    client, editor, root, late_servers
):
    port = closed_port()
    await start(client, root, f"http://127.0.0.1:{port}/v1")
    editor.open(source_uri(root), SOURCE)
    chat = await new_question(client, editor, root)
    before = editor.texts[chat]

    result = await send(client, chat)

    assert result["status"] == "failed"
    assert f"no model server at http://127.0.0.1:{port}/v1" in result["message"]
    assert "send it again" in result["message"]
    assert shown(client) == [f"DeepSeek: {result['message']}"]
    assert editor.texts[chat] == before
    late_servers(port).enqueue(CHAT_REPLY)
    assert (await send(client, chat))["status"] == "answered"
    assert editor.texts[chat] == before + answer_heading(before) + CHAT_ANSWER + "\n\n## You\n\n"


async def test_ghost_text_with_no_model_server_is_empty_and_fits_the_server_once_it_is_up(
    client, editor, root, late_servers
):
    port = closed_port()
    await start(client, root, f"http://127.0.0.1:{port}/v1")
    editor.open(GHOST_URI, GHOST_SOURCE)

    assert await ghost_text(client, GHOST_URI, *GHOST_SPOT) == []
    assert await ghost_text(client, GHOST_URI, *GHOST_SPOT) == []
    server = late_servers(port)
    # A llama-server whose model does not think: it gets a plain continuation, which
    # only its /props tells (a guess made while nothing listened must not stick).
    server.props = {"chat_template": "{{ messages }}"}
    server.enqueue(GHOST_REPLY)
    items = await ghost_text(client, GHOST_URI, *GHOST_SPOT)

    assert [item.insert_text for item in items] == ["a + b"]
    assert server.endpoints == ["completions"]
    assert shown(client) == []
    assert len(warnings(client, f"no model server at http://127.0.0.1:{port}/v1")) == 1


# ---------------------------------------------------------------- a GGUF that does not load


@pytest.fixture
def broken_gguf(tmp_path):
    path = tmp_path / "models" / "r1.gguf"
    path.parent.mkdir()
    path.write_bytes(b"not a GGUF, a half-finished download\n" * 64)
    return path


def gguf_settings(path) -> dict:
    return {"backend": "llama_cpp", "modelPath": str(path), "nCtx": 2048}


GGUF_SAYS = "invalid magic characters"


@pytest.mark.llama
async def test_an_edit_with_a_gguf_that_does_not_load_names_the_file_and_changes_nothing(
    client, editor, root, broken_gguf
):
    await start(client, root, **gguf_settings(broken_gguf))
    editor.open(source_uri(root), SOURCE)

    result = await edit_parse_args(client, root)

    assert result["status"] == "failed"
    assert f"could not load the GGUF model {broken_gguf}" in result["message"]
    assert GGUF_SAYS in result["message"] and "ds-lsp models pull" in result["message"]
    assert shown(client) == [f"DeepSeek: {result['message']}"]
    assert editor.texts[source_uri(root)] == SOURCE and editor.applied == []


@pytest.mark.llama
async def test_a_chat_with_a_gguf_that_does_not_load_answers_once_the_file_is_whole(
    client, editor, root, broken_gguf, tiny_gguf_path
):
    await start(client, root, **gguf_settings(broken_gguf))
    editor.open(source_uri(root), SOURCE)
    chat = await new_question(client, editor, root)
    before = editor.texts[chat]

    result = await send(client, chat)

    assert result["status"] == "failed"
    assert f"could not load the GGUF model {broken_gguf}" in result["message"]
    assert editor.texts[chat] == before
    shutil.copyfile(tiny_gguf_path, broken_gguf)  # the download finished
    assert (await send(client, chat))["status"] == "answered"
    assert editor.texts[chat] == before + answer_heading(before) + TINY_ANSWER + "\n\n## You\n\n"


@pytest.mark.llama
async def test_ghost_text_with_a_gguf_that_does_not_load_is_empty_and_shows_once_it_is_whole(
    client, editor, root, broken_gguf, tiny_gguf_path
):
    await start(client, root, **gguf_settings(broken_gguf))
    editor.open(GHOST_URI, GHOST_SOURCE)

    assert await ghost_text(client, GHOST_URI, *GHOST_SPOT) == []
    assert await ghost_text(client, GHOST_URI, *GHOST_SPOT) == []

    assert shown(client) == []
    assert len(warnings(client, GGUF_SAYS)) == 1
    shutil.copyfile(tiny_gguf_path, broken_gguf)  # the download finished
    items = await ghost_text(client, GHOST_URI, *GHOST_SPOT)
    assert [item.insert_text for item in items] == [TINY_ANSWER]
