"""The language server end to end, through a real LSP client (pytest-lsp)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.fake_openai_server import Reply

FAKE_KEY = "sk-test-SECRET-0123456789"


def server_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    env["DS_LSP_CONFIG"] = os.devnull  # no user config file leaks into tests
    env.update(extra)
    return env


@pytest_lsp.fixture(
    config=ClientServerConfig(
        server_command=[sys.executable, "-m", "ds_lsp"],
        server_env=server_env(DS_LSP_API_KEY=FAKE_KEY, DS_LSP_LOG_LEVEL="debug"),
    )
)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def start(client: LanguageClient, options=None, workspace=None) -> types.InitializeResult:
    caps = client_capabilities("visual-studio-code")
    if workspace is not None:
        client.set_configuration(workspace)
    return await client.initialize_session(
        types.InitializeParams(capabilities=caps, initialization_options=options)
    )


async def wait_for_log(client: LanguageClient, needle: str, timeout: float = 10.0) -> str:
    """The first log message containing `needle`, waiting for it to arrive."""

    async def poll() -> str:
        while True:
            for message in client.log_messages:
                if needle in message.message:
                    return message.message
            await asyncio.sleep(0.05)

    return await asyncio.wait_for(poll(), timeout)


def all_logs(client: LanguageClient) -> str:
    return "\n".join(m.message for m in client.log_messages)


async def test_initialize_names_the_server_and_logs_reach_the_editor(client: LanguageClient):
    result = await start(client)

    assert result.server_info.name == "ds-lsp"
    started = await wait_for_log(client, "started")
    assert started.startswith("ds-lsp ")


async def test_initialization_options_set_the_settings(client: LanguageClient):
    await start(client, options={"dsLsp": {"backend": "openai", "maxTokens": 512}})

    logged = await wait_for_log(client, "settings: {")
    assert "'backend': 'openai'" in logged
    assert "'max_tokens': 512" in logged


async def test_workspace_configuration_overrides_initialization_options(client: LanguageClient):
    await start(
        client,
        options={"maxTokens": 512},
        workspace={"dsLsp": {"maxTokens": 1024, "temperature": 0.5}},
    )

    logged = await wait_for_log(client, "settings: {")
    assert "'max_tokens': 1024" in logged
    assert "'temperature': 0.5" in logged


async def test_a_bad_setting_is_named_and_the_default_kept(client: LanguageClient):
    await start(client, options={"dsLsp": {"backend": "ollama", "nCtx": "big"}})

    backend_problem = await wait_for_log(client, "dsLsp.backend")
    assert "accepts one of llama_cpp, openai" in backend_problem
    ctx_problem = await wait_for_log(client, "dsLsp.nCtx")
    assert "an integer of at least 256" in ctx_problem
    await wait_for_log(client, "running with the previous or default value")
    logged = await wait_for_log(client, "settings: {")
    assert "'backend': 'llama_cpp'" in logged
    assert "'n_ctx': 8192" in logged
    warnings = [m for m in client.log_messages if m.type == types.MessageType.Warning]
    assert warnings, "problems are logged as warnings"


async def test_the_editor_can_turn_the_log_down(client: LanguageClient):
    await start(client, options={"dsLsp": {"logLevel": "warning", "nCtx": "x"}})

    await wait_for_log(client, "running with the previous or default value")
    assert all(m.type != types.MessageType.Info for m in client.log_messages)


async def test_changed_settings_are_pulled_again(client: LanguageClient):
    await start(client, workspace={"dsLsp": {"maxTokens": 1000}})
    await wait_for_log(client, "'max_tokens': 1000")

    client.set_configuration({"dsLsp": {"maxTokens": 2000}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))

    changed = await wait_for_log(client, "settings changed")
    assert "'max_tokens': 2000" in changed


async def test_the_api_key_never_reaches_the_log(client: LanguageClient, fake_openai):
    """A careless model server quotes the key it was sent in its error, which ds-lsp
    passes on (to the log, the error reply and a message): never with the key."""
    key = FAKE_KEY + "-editor"
    said = f"Invalid request for key {key}: the project is over its quota"
    fake_openai.enqueue(
        Reply(status=400, error_body={"error": {"message": said, "type": "invalid_request"}})
    )
    options = {"apiKey": key, "backend": "openai", "baseUrl": fake_openai.base_url, "model": "m"}
    await start(client, options={"dsLsp": options})
    logged = await wait_for_log(client, "settings: {")
    assert "'api_key': '<set>'" in logged

    with pytest.raises(Exception, match="over its quota") as failure:
        await client.protocol.send_request_async(
            types.WORKSPACE_EXECUTE_COMMAND,
            types.ExecuteCommandParams(command="dsLsp.warmUp", arguments=[]),
        )

    # The server's words went everywhere they go, the key with none of them.
    assert fake_openai.requests, "the model server was asked"
    failed = await wait_for_log(client, "over its quota")
    assert "Invalid request for key" in failed
    shown = [m.message for m in client.messages]
    assert FAKE_KEY not in all_logs(client) + str(failure.value) + json.dumps(shown)


def frame(payload: bytes) -> bytes:
    """One LSP message on the wire."""
    return b"Content-Length: %d\r\n\r\n" % len(payload) + payload


_frame = frame  # the name tests/test_completion_lsp.py still imports


def _replies(stdout: bytes) -> dict:
    """The server's answers on stdout, by request id."""
    replies, rest = {}, stdout
    while rest:
        header, _, rest = rest.partition(b"\r\n\r\n")
        length = int(header.split(b"Content-Length:")[1].split(b"\r\n")[0])
        message, rest = json.loads(rest[:length]), rest[length:]
        if "id" in message and "method" not in message:
            replies[message["id"]] = message
    return replies


def test_a_malformed_message_does_not_take_the_server_down():
    """Garbage JSON, a request that is not one, a request with bad params, then a real
    initialize: the bad requests are answered with errors, and the server still works."""
    initialize = json.dumps(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "rootUri": None, "capabilities": {}},
        }
    ).encode()
    bad_params = {"jsonrpc": "2.0", "id": 8, "method": "initialize", "params": {"processId": "x"}}
    shutdown = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}).encode()
    exit_ = json.dumps({"jsonrpc": "2.0", "method": "exit"}).encode()
    stdin = (
        frame(b"{this is not json")
        + frame(b'{"jsonrpc": "2.0", "id": 7, "method": 12}')
        + frame(json.dumps(bad_params).encode())
        + frame(initialize)
        + frame(shutdown)
        + frame(exit_)
    )
    done = subprocess.run(
        [sys.executable, "-m", "ds_lsp"],
        input=stdin,
        capture_output=True,
        timeout=30,
        env=server_env(),
    )
    replies = _replies(done.stdout)
    assert replies[7]["error"]["code"] == -32600  # Invalid Request: the method is no string
    assert replies[8]["error"]["code"] == -32602  # Invalid Params
    assert replies[1]["result"]["serverInfo"]["name"] == "ds-lsp"
    assert replies[2] == {"jsonrpc": "2.0", "id": 2, "result": None}
    assert done.returncode == 0


def test_serve_over_tcp_rejects_a_bad_address():
    done = subprocess.run(
        [sys.executable, "-m", "ds_lsp", "serve", "--tcp", "localhost"],
        capture_output=True,
        text=True,
        timeout=30,
        env=server_env(),
    )
    assert done.returncode == 2
    assert "expected HOST:PORT" in done.stderr


@pytest.mark.parametrize("argv", [["--help"], ["edit", "--help"], ["models", "pull", "--help"]])
def test_help_works(argv):
    done = subprocess.run(
        [sys.executable, "-m", "ds_lsp", *argv], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    assert "usage: ds-lsp" in done.stdout


def test_serve_over_tcp_answers_initialize():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "ds_lsp", "serve", "--tcp", f"127.0.0.1:{port}"],
        env=server_env(),
        stderr=subprocess.DEVNULL,
    )
    try:
        connection = _connect(port)
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "rootUri": None, "capabilities": {}},
        }
        connection.sendall(frame(json.dumps(initialize).encode()))
        reply = b""
        while b'"serverInfo"' not in reply:
            chunk = connection.recv(65536)
            assert chunk, f"connection closed; got {reply!r}"
            reply += chunk
        assert b'"name": "ds-lsp"' in reply or b'"name":"ds-lsp"' in reply
        connection.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


def _connect(port: int, attempts: int = 200) -> socket.socket:
    """Connect once the server listens (it needs a moment to import and bind)."""
    for _ in range(attempts):
        try:
            connection = socket.create_connection(("127.0.0.1", port), timeout=10)
            return connection
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")
