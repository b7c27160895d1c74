"""Inline completions end to end: a real LSP client (pytest-lsp) declaring inline
completion, the server, and the fake model server standing in for the model."""

from __future__ import annotations

import asyncio
import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.test_server import server_env, wait_for_log


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "ds_lsp"],
        server_env=server_env(DS_LSP_LOG_LEVEL="debug"),
    )
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def capabilities(inline: bool = True, encodings=None) -> types.ClientCapabilities:
    caps = client_capabilities("visual-studio-code")
    caps.text_document.inline_completion = (
        types.InlineCompletionClientCapabilities() if inline else None
    )
    if encodings is not None:
        caps.general.position_encodings = encodings
    return caps


async def start(client, fake: FakeOpenAIServer, inline=True, encodings=None, **settings):
    options = {"backend": "openai", "baseUrl": fake.base_url, "model": "m", **settings}
    return await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(inline, encodings),
            initialization_options={"dsLsp": options},
        )
    )


def open_doc(client, uri: str, text: str, language: str = "python", version: int = 1):
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id=language, version=version, text=text)
        )
    )


def type_text(client, uri: str, version: int, line: int, character: int, text: str):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        types.Position(line, character), types.Position(line, character)
                    ),
                    text=text,
                )
            ],
        )
    )


def params(uri: str, line: int, character: int, invoked: bool = True):
    kind = (
        types.InlineCompletionTriggerKind.Invoked
        if invoked
        else types.InlineCompletionTriggerKind.Automatic
    )
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line, character),
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


async def ghost_text(client, uri, line, character, invoked=True, msg_id=None):
    result = await client.protocol.send_request_async(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params(uri, line, character, invoked), msg_id=msg_id
    )
    return result.items if result is not None else []


def answer(text: str) -> Reply:
    return Reply(content=text, format="none", chunk_size=4)


PY = "file:///work/calc.py"


async def test_ghost_text_for_python(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))

    items = await ghost_text(client, PY, 1, 11, invoked=False)

    assert [item.insert_text for item in items] == ["a + b"]
    assert items[0].range == types.Range(types.Position(1, 11), types.Position(1, 11))
    sent = fake_openai.requests[-1]
    assert "def add(a, b):" in str(sent)
    assert sent["max_tokens"] <= 64


async def test_ghost_text_for_typescript(client, fake_openai):
    await start(client, fake_openai)
    uri = "file:///work/calc.ts"
    open_doc(
        client, uri, "function add(a: number, b: number): number {\n  return \n}\n", "typescript"
    )
    fake_openai.enqueue(answer("a + b;"))

    items = await ghost_text(client, uri, 1, 9)

    assert [item.insert_text for item in items] == ["a + b;"]


async def test_no_completion_inside_a_comment(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "x = 1  # the answer is \n")

    items = await ghost_text(client, PY, 0, 23, invoked=False)

    assert items == []
    assert fake_openai.requests == [], "the model was not asked"


async def test_reasoning_never_becomes_ghost_text(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(Reply(reasoning="Let me think about sums.", content="a + b"))

    items = await ghost_text(client, PY, 1, 11)

    assert [item.insert_text for item in items] == ["a + b"]


async def test_a_cancelled_request_is_cancelled_and_its_stream_closed(client, fake_openai):
    await start(client, fake_openai, completionTimeBudgetMs=30000)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(Reply(content="a + b", format="none", hold=True))
    pending = asyncio.ensure_future(ghost_text(client, PY, 1, 11, msg_id="inline-1"))
    await fake_openai.wait_for_request()

    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="inline-1"))

    with pytest.raises(Exception, match="cancel"):
        await pending
    assert await fake_openai.wait_for_disconnect(0)


async def test_a_stale_result_never_arrives_after_a_newer_one(client, fake_openai):
    await start(client, fake_openai, completionTimeBudgetMs=30000)  # the test holds the model
    open_doc(client, PY, "def add(a, b):\n    return \n")
    # The first answer is held; any later request (the newer one, or a speculative
    # one) gets " * 2".
    fake_openai.enqueue(Reply(content="a + b", format="none", hold=True), *[answer(" * 2")] * 3)
    older = asyncio.ensure_future(ghost_text(client, PY, 1, 11, msg_id="older"))
    await fake_openai.wait_for_request(0)

    type_text(client, PY, 2, 1, 11, "x")  # the user typed on: the older answer is stale
    newer = asyncio.ensure_future(ghost_text(client, PY, 1, 12, msg_id="newer"))
    await asyncio.sleep(0)  # the newer request goes out
    # A round trip: the server has seen the change before the model answers.
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="dsLsp.inspectDocument", arguments=[{"uri": PY}])
    )
    fake_openai.release(0)
    try:
        older_items = await older
    except Exception:  # cancelled: also fine, as long as nothing stale arrives
        older_items = []

    assert older_items == []
    assert [item.insert_text for item in await newer] == [" * 2"]


async def test_typed_ahead_is_served_without_the_model(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))
    first = await ghost_text(client, PY, 1, 11)
    assert [item.insert_text for item in first] == ["a + b"]

    type_text(client, PY, 2, 1, 11, "a ")
    rest = await ghost_text(client, PY, 1, 13, invoked=False)

    assert [item.insert_text for item in rest] == ["+ b"]
    # The only other request is the speculative one, for after the suggestion's acceptance.
    later = [str(request["messages"]) for request in fake_openai.requests[1:]]
    assert all("return a + b<CURSOR>" in prompt for prompt in later)


async def test_the_same_spot_again_is_served_from_the_cache(client, fake_openai):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))
    first = await ghost_text(client, PY, 1, 11)

    again = await ghost_text(client, PY, 1, 11)

    assert [item.insert_text for item in again] == [item.insert_text for item in first]
    assert len(fake_openai.requests) == 1, "no model request for the second"


@pytest.mark.parametrize(
    ("encodings", "character"),
    [(None, 12), (["utf-8"], 16)],  # after `s = "😀名" + ` : 12 UTF-16 units, 16 bytes
)
async def test_positions_are_exact_after_emoji_and_cjk(client, fake_openai, encodings, character):
    await start(client, fake_openai, encodings=encodings)
    open_doc(client, PY, 's = "😀名" + \n')
    fake_openai.enqueue(answer('"!"'))

    items = await ghost_text(client, PY, 0, character)

    assert [item.insert_text for item in items] == ['"!"']
    position = types.Position(0, character)
    assert items[0].range == types.Range(position, position)


async def test_the_completion_fallback_for_clients_without_inline_completion(client, fake_openai):
    result = await start(client, fake_openai, inline=False)
    assert result.capabilities.completion_provider is not None
    open_doc(client, PY, "def add(a, b):\n    return a\n")
    fake_openai.enqueue(answer(" + b"))

    completion = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=PY),
            position=types.Position(1, 12),
            context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
        )
    )

    (item,) = completion.items
    assert item.text_edit.new_text == "a + b"
    assert item.text_edit.range == types.Range(types.Position(1, 11), types.Position(1, 12))


async def test_no_completion_fallback_when_the_client_has_inline_completion(client, fake_openai):
    result = await start(client, fake_openai)

    assert result.capabilities.completion_provider is None
    assert result.capabilities.inline_completion_provider is not None


async def test_bad_requests_get_empty_answers_and_the_next_one_works(client, fake_openai):
    await start(client, fake_openai)
    assert await ghost_text(client, "file:///not/open.py", 0, 0) == []
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(answer("a + b"))

    past_the_end = await ghost_text(client, PY, 1, 400)  # clamped to the end of the line

    assert [item.insert_text for item in past_the_end] == ["a + b"]
    fake_openai.enqueue(answer("a - b"))
    type_text(client, PY, 2, 1, 11, "\n    ")
    assert await ghost_text(client, PY, 2, 4)


async def test_a_model_that_is_down_is_logged_once(client):
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            initialization_options={
                "dsLsp": {"backend": "openai", "baseUrl": "http://127.0.0.1:9/v1", "model": "m"}
            },
        )
    )
    open_doc(client, PY, "def add(a, b):\n    return \n")

    assert await ghost_text(client, PY, 1, 11) == []
    assert await ghost_text(client, PY, 1, 11) == []

    await wait_for_log(client, "no model server at")
    failures = [m for m in client.log_messages if "no model server at" in m.message]
    assert len(failures) == 1


def test_malformed_params_get_an_error_and_the_server_goes_on():
    """Raw JSON-RPC, as no typed client would send it."""
    import json
    import subprocess

    from tests.test_server import _frame

    def message(**fields):
        return _frame(json.dumps({"jsonrpc": "2.0", **fields}).encode())

    inline = {"textDocument": {"inlineCompletion": {}}}
    stdin = b"".join(
        [
            message(
                id=1,
                method="initialize",
                params={"processId": None, "rootUri": None, "capabilities": inline},
            ),
            message(method="initialized", params={}),
            message(id=2, method="textDocument/inlineCompletion", params={"textDocument": 3}),
            message(
                id=3,
                method="textDocument/inlineCompletion",
                params={
                    "textDocument": {"uri": "file:///not/open.py"},
                    "position": {"line": 0, "character": 0},
                    "context": {"triggerKind": 1},
                },
            ),
            message(id=4, method="shutdown"),
            message(method="exit"),
        ]
    )
    done = subprocess.run(
        [sys.executable, "-m", "ds_lsp"],
        input=stdin,
        capture_output=True,
        timeout=30,
        env=server_env(),
    )
    replies = [
        json.loads(body)
        for body in done.stdout.split(b"\r\n\r\n")[1:]
        for body in [body.split(b"Content-Length")[0]]
    ]
    by_id = {reply.get("id"): reply for reply in replies if "id" in reply}

    assert "error" in by_id[2]  # a JSON-RPC error for the malformed one
    assert by_id[3]["result"] is None  # the next request is answered normally
    assert "result" in by_id[4] and done.returncode == 0


async def test_a_model_that_answers_garbage_gives_no_item_and_the_next_request_works(
    client, fake_openai
):
    await start(client, fake_openai)
    open_doc(client, PY, "def add(a, b):\n    return \n")
    fake_openai.enqueue(Reply(content="a + b", format="none", malformed=True), answer("a * b"))

    assert await ghost_text(client, PY, 1, 11) == []
    again = await ghost_text(client, PY, 1, 11)

    assert [item.insert_text for item in again] == ["a * b"]
    await wait_for_log(client, "malformed stream")
