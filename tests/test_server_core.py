"""The server core end to end through a real LSP client (pytest-lsp): document sync in
each position encoding, the model scheduler, cancelling background work, the log
before initialize, and secrets at debug level."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from ds_lsp.features.chat import storage
from ds_lsp.server import ServerState
from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.test_server import frame, server_env, wait_for_log

FAKE_KEY = "sk-core-SECRET-4242"


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "ds_lsp"],
        server_env=server_env(DS_LSP_LOG_LEVEL="debug", DS_LSP_N_CTX="big"),
    )
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def capabilities(encodings: list[str] | None = None) -> types.ClientCapabilities:
    caps = client_capabilities("visual-studio-code")
    caps.window.work_done_progress = True
    if encodings is not None:
        caps.general.position_encodings = encodings
    return caps


async def start(client: LanguageClient, options=None, encodings=None, workspace=None):
    if workspace is not None:
        client.set_configuration(workspace)
    return await client.initialize_session(
        types.InitializeParams(capabilities=capabilities(encodings), initialization_options=options)
    )


def openai_options(fake: FakeOpenAIServer, **more) -> dict:
    return {"dsLsp": {"backend": "openai", "baseUrl": fake.base_url, "model": "m", **more}}


async def inspect(client: LanguageClient, uri: str) -> dict:
    return await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="dsLsp.inspectDocument", arguments=[{"uri": uri}])
    )


def change(uri: str, version: int, start, end, text: str) -> types.DidChangeTextDocumentParams:
    return types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[
            types.TextDocumentContentChangePartial(
                range=types.Range(types.Position(*start), types.Position(*end)), text=text
            )
        ],
    )


# -- documents ------------------------------------------------------------------------

URI = "file:///work/example.py"
# "😀" is 2 UTF-16 code units and 4 UTF-8 bytes; "名" is 1 unit, 3 bytes.
LINE = 'label = "😀名"  # x\n'


@pytest.mark.parametrize(
    ("offered", "agreed", "column"),
    [
        (None, "utf-16", 13),  # the LSP default
        (["utf-8"], "utf-8", 17),
        (["utf-32", "utf-16"], "utf-32", 12),
    ],
)
async def test_changes_follow_the_negotiated_position_encoding(client, offered, agreed, column):
    result = await start(client, encodings=offered)
    assert result.capabilities.position_encoding == agreed

    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=URI, language_id="python", version=1, text=LINE)
        )
    )
    # Insert "!" right after the closing quote: the same spot in every encoding.
    client.text_document_did_change(change(URI, 2, (0, column), (0, column), "!"))
    held = await inspect(client, URI)

    assert held["text"] == 'label = "😀名"!  # x\n'
    assert held["version"] == 2
    assert held["positionEncoding"] == agreed
    assert held["language"] == "python"
    assert "ERROR" in held["syntaxTree"]  # `"..."!` does not parse: the tree was updated


async def test_an_edit_keeps_the_tree_in_step(client):
    await start(client)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=URI, language_id="python", version=1, text="x = (1\n")
        )
    )
    client.text_document_did_change(change(URI, 2, (0, 6), (0, 6), ")"))
    held = await inspect(client, URI)

    assert held["text"] == "x = (1)\n"
    assert "ERROR" not in held["syntaxTree"] and "MISSING" not in held["syntaxTree"]


async def test_an_unknown_language_is_plain_text(client):
    await start(client)
    uri = "file:///work/notes.weird"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=uri, language_id="weird", version=1, text="hi")
        )
    )
    held = await inspect(client, uri)

    assert (held["language"], held["syntaxTree"], held["text"]) == (None, None, "hi")


async def test_a_change_to_a_closed_document_is_reported_not_fatal(client):
    await start(client)
    client.text_document_did_change(change("file:///nowhere.py", 2, (0, 0), (0, 0), "x"))

    problem = await wait_for_log(client, "nowhere.py")
    assert problem.startswith("could not handle a message from the editor")
    assert not client.messages  # a line in the log panel, not a pop-up
    assert await inspect(client, "file:///nowhere.py") is None  # and the server still answers


# -- the model: lazy, rebuilt on backend settings only -----------------------------------


async def warm_up(client: LanguageClient, msg_id: str = "warm-1"):
    return await client.protocol.send_request_async(
        types.WORKSPACE_EXECUTE_COMMAND,
        types.ExecuteCommandParams(command="dsLsp.warmUp", arguments=[]),
        msg_id=msg_id,
    )


async def test_the_model_is_built_on_first_use_and_rebuilt_only_when_it_must(client, fake_openai):
    await start(client, options=openai_options(fake_openai), workspace={"dsLsp": {}})
    await wait_for_log(client, "settings: {")
    assert fake_openai.requests == []  # nothing loaded at start-up

    first = await warm_up(client, "w1")
    assert first["model"].startswith("openai (")
    assert fake_openai.requests[-1]["model"] == "m"

    client.set_configuration({"dsLsp": {"maxTokens": 99}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_for_log(client, "'max_tokens': 99")
    client.set_configuration({"dsLsp": {"model": "deepseek-r1:7b"}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    await wait_for_log(client, "'model': 'deepseek-r1:7b'")
    second = await warm_up(client, "w2")

    assert "deepseek-r1:7b" in second["model"]
    assert fake_openai.requests[-1]["model"] == "deepseek-r1:7b"
    ready = [m.message for m in client.log_messages if m.message.startswith("model ready")]
    assert len(ready) == 2, "max_tokens rebuilt nothing; the model change rebuilt once"


# -- cancelling background work --------------------------------------------------------------


async def test_cancel_request_stops_a_command_and_closes_the_model_stream(client, fake_openai):
    fake_openai.enqueue(Reply(hold=True))  # a server still loading: not even headers
    await start(client, options=openai_options(fake_openai))
    running = asyncio.ensure_future(warm_up(client, "to-cancel"))
    await fake_openai.wait_for_request()

    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-cancel"))

    assert await fake_openai.wait_for_disconnect(0)
    with pytest.raises(Exception, match="cancel"):
        await running


async def test_the_progress_cancel_button_stops_the_command(client, fake_openai):
    fake_openai.enqueue(Reply(hold=True))
    await start(client, options=openai_options(fake_openai))
    running = asyncio.ensure_future(warm_up(client, "via-progress"))
    await fake_openai.wait_for_request()
    token = next(iter(client.progress_reports))

    client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token)
    )

    assert await fake_openai.wait_for_disconnect(0)
    with pytest.raises(Exception, match="cancel"):
        await running
    begin = client.progress_reports[token][0]
    assert begin.cancellable and "loading the model" in begin.title


async def test_a_model_failure_is_an_error_with_the_fix_and_the_server_goes_on(client):
    dead = {"backend": "openai", "baseUrl": "http://127.0.0.1:9/v1", "model": "m"}
    await start(client, options={"dsLsp": dead})
    with pytest.raises(Exception, match="no model server at http://127.0.0.1:9/v1") as failure:
        await warm_up(client)

    assert "Traceback" not in str(failure.value)
    logged_error = await wait_for_log(client, "dsLsp.warmUp failed: no model server")
    assert "Traceback" not in logged_error
    assert await inspect(client, URI) is None  # still serving


# -- the log ---------------------------------------------------------------------------------


async def test_problems_found_before_initialize_reach_the_editor(client):
    await start(client)

    problem = await wait_for_log(client, "DS_LSP_N_CTX")
    assert "an integer of at least 256" in problem


async def test_initialization_options_problems_are_reported_once(client):
    await start(client, options={"dsLsp": {"maxTokens": "lots"}}, workspace={"dsLsp": {}})
    await wait_for_log(client, "settings: {")
    for pulls in (1, 2):
        client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
        await wait_until(lambda n=pulls: logged(client, "settings changed") == n)

    assert logged(client, "dsLsp.maxTokens") == 1


def logged(client: LanguageClient, needle: str) -> int:
    return sum(needle in m.message for m in client.log_messages)


async def wait_until(condition, timeout: float = 10.0) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(poll(), timeout)


# -- secrets at debug level ------------------------------------------------------------------


def test_debug_logging_shows_the_protocol_but_never_a_secret():
    """pygls traces whole messages at debug: InitializeParams, configuration results."""
    import json

    secret_url = "http://admin:hunter2@127.0.0.1:9/v1"
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "processId": None,
            "rootUri": None,
            "capabilities": {},
            "initializationOptions": {"dsLsp": {"apiKey": FAKE_KEY, "baseUrl": secret_url}},
        },
    }
    messages = [
        initialize,
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "id": 2, "method": "shutdown"},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    stdin = b"".join(frame(json.dumps(m).encode()) for m in messages)
    done = subprocess.run(
        [sys.executable, "-m", "ds_lsp", "--log-level", "debug"],
        input=stdin,
        capture_output=True,
        timeout=30,
        env=server_env(),
    )
    shown = done.stderr.decode() + done.stdout.decode()

    assert "initialized" in done.stderr.decode().lower()  # pygls' trace is on
    assert "hunter2" not in shown
    assert FAKE_KEY not in shown
    assert done.returncode == 0


async def test_null_in_the_editor_settings_resets_to_ds_lsp_s_own_value(client):
    await start(
        client, options={"dsLsp": {"maxTokens": 512}}, workspace={"dsLsp": {"maxTokens": None}}
    )

    logged_settings = await wait_for_log(client, "settings: {")
    assert "'max_tokens': 4096" in logged_settings


# -- per-document state ------------------------------------------------------------------


def test_forget_frees_all_a_document_had_and_tells_the_others():
    state = ServerState()
    forgotten: list[str] = []
    state.forget_hooks.append(forgotten.append)
    state.of(URI).editing = True
    state.of("file:///work/other.py")

    state.forget(URI)

    assert state.get(URI) is None and len(state) == 1
    assert forgotten == [URI]


async def test_a_chats_state_lasts_only_while_a_command_uses_it():
    server = SimpleNamespace(state=ServerState())
    target = storage.ChatFile("file:///work/chat.md", Path("/work/chat.md"), Path("/work"))

    async with storage.using(server, target) as chat:
        async with storage.using(server, target) as same:
            assert same is chat
        assert server.state.chats == {target.key: chat}

    assert server.state.chats == {}
