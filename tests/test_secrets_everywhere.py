"""The API key and URL credentials appear in nothing the server writes, at debug
level, through everything it does: a completion, an edit, a chat, a model
server answering 401 (with the key echoed in its error, as careless servers
do), and a model server that cannot be reached.

"Everything it writes": every message on stdout (responses, errors,
logMessage, showMessage, applyEdit...), all of stderr, its log file, and
every file under its home, working directory, state directory and workspace
(chats included); and it writes no other file there.
"""

from __future__ import annotations

import base64
import socket
import sys
from pathlib import Path

from tests.fake_openai_server import Reply
from tests.raw_lsp import RawServer, server_env

KEY = "sk-live-7Q2xv9Rk3Lm8Np4T"
PASSWORD = "pw-Zx81-credential"
BASIC = base64.b64encode(f"bob:{PASSWORD}".encode()).decode()  # as the Authorization header
SOURCE = "def add(a, b):\n    return a + b\n\n\ndef greet(name):\n    return \n"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def with_credentials(base_url: str) -> str:
    return base_url.replace("http://", f"http://bob:{PASSWORD}@", 1)


def change_settings(server: RawServer, base_url: str) -> None:
    """The user changes the URL in the editor; the server asks for the new settings."""
    server.configuration = {**server.configuration, "baseUrl": base_url}
    asked = sum(r["method"] == "workspace/configuration" for r in server.server_requests)
    server.notify("workspace/didChangeConfiguration", {"settings": None})
    server.wait_until(
        lambda: (
            sum(r["method"] == "workspace/configuration" for r in server.server_requests) > asked
        )
    )


def complete(server: RawServer, workspace: Path, name: str) -> dict:
    """An inline completion in a new document (a repeated one would come from the cache)."""
    uri = (workspace / f"{name}.py").as_uri()
    item = {"uri": uri, "languageId": "python", "version": 1, "text": f"# {name}\n{SOURCE}"}
    server.notify("textDocument/didOpen", {"textDocument": item})
    at_return = {"line": 6, "character": 11}
    params = {"textDocument": {"uri": uri}, "position": at_return, "context": {"triggerKind": 1}}
    server.request(name, "textDocument/inlineCompletion", params)
    [response] = server.wait_for(name)
    return response


def execute(server: RawServer, msg_id: str, command: str, argument: dict) -> dict:
    params = {"command": command, "arguments": [argument]}
    server.request(msg_id, "workspace/executeCommand", params)
    [response] = server.wait_for(msg_id, timeout=30)
    return response


def test_no_secret_in_any_output(fake_openai, tmp_path: Path):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    source = workspace / "calc.py"
    source.write_text(SOURCE)
    uri = source.as_uri()
    log_file = tmp_path / "logs" / "ds-lsp.log"
    log_file.parent.mkdir()
    settings = {"backend": "openai", "baseUrl": fake_openai.base_url, "model": "m"}
    server = RawServer(
        server_env(tmp_path, DS_LSP_LOG_LEVEL="debug"),
        tmp_path,
        [sys.executable, "-m", "ds_lsp", "serve", "--log-file", str(log_file)],
    )
    server.configuration = settings  # the editor's settings, when the server asks
    server.request(
        "init",
        "initialize",
        {
            "processId": None,
            "rootUri": workspace.as_uri(),
            "capabilities": {
                "textDocument": {"inlineCompletion": {}},
                "workspace": {"applyEdit": True, "configuration": True},
                "window": {"showDocument": {"support": True}},
            },
            "initializationOptions": {"dsLsp": {**settings, "apiKey": KEY}},
        },
    )
    server.wait_for("init")
    server.notify("initialized", {})
    item = {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}
    server.notify("textDocument/didOpen", {"textDocument": item})

    # A completion.
    fake_openai.enqueue(Reply(content='f"Hello, {name}"', format="none"))
    answer = complete(server, workspace, "complete")
    assert answer["result"]["items"][0]["insertText"] == 'f"Hello, {name}"'
    assert fake_openai.auth_headers[-1] == f"Bearer {KEY}"  # the key was in use

    # An edit.
    fake_openai.enqueue(
        Reply(content="```python\ndef add(a: int, b: int) -> int:\n    return a + b\n```")
    )
    lines_1_2 = {"start": {"line": 0, "character": 0}, "end": {"line": 1, "character": 16}}
    edit = execute(
        server,
        "edit",
        "dsLsp.editSelection",
        {"uri": uri, "range": lines_1_2, "instruction": "add type hints"},
    )
    # This raw client answers applyEdit but echoes no change, so the server truthfully
    # reports the edit as not seen in the editor; what matters here is that it ran.
    assert edit["result"]["status"] in ("applied", "failed"), edit
    assert any("add type hints" in str(request) for request in fake_openai.requests)

    # A chat, written on disk (the editor shows no documents).
    added = execute(server, "add", "dsLsp.addToChat", {"uri": uri, "range": lines_1_2})
    chat = Path(added["result"]["uri"].removeprefix("file://"))
    chat.write_text(chat.read_text() + "What does it do?\n")
    fake_openai.enqueue(Reply(reasoning="It adds.", content="It adds two numbers."))
    sent = execute(server, "send", "dsLsp.sendChat", {"uri": added["result"]["uri"]})
    assert sent["result"]["status"] == "answered", sent

    # The model server refuses the key, and says it back in its error.
    fake_openai.enqueue(Reply(status=401))
    complete(server, workspace, "refused")
    fake_openai.enqueue(Reply(status=401))
    execute(server, "edit-401", "dsLsp.editSelection", {"uri": uri, "range": lines_1_2})

    # The model server, at a URL with credentials, answers, then cannot be reached.
    change_settings(server, with_credentials(fake_openai.base_url))
    fake_openai.enqueue(Reply(content="x"))
    complete(server, workspace, "with_credentials")
    assert fake_openai.auth_headers[-1] == f"Basic {BASIC}"  # httpx sends them as Basic auth
    change_settings(server, f"http://bob:{PASSWORD}@127.0.0.1:{closed_port()}/v1")
    complete(server, workspace, "unreachable")
    execute(server, "edit-down", "dsLsp.editSelection", {"uri": uri, "range": lines_1_2})

    assert server.close() == 0

    stdout = b"".join(server.raw_output).decode("utf-8", "replace")
    stderr = server.stderr_text()
    files = {path: path.read_bytes() for path in tmp_path.rglob("*") if path.is_file()}
    # It wrote only where it says: the log file asked for and the chat in the state
    # directory (docs/chat.md); the source changed through the editor, not on disk.
    assert sorted(str(path.relative_to(tmp_path)) for path in files) == [
        "logs/ds-lsp.log",
        str(chat.relative_to(tmp_path)),
        "workspace/calc.py",
    ]
    assert chat.is_relative_to(tmp_path / "state" / "ds-lsp" / "chats")
    assert source.read_text() == SOURCE
    assert "401" in stdout or "API key" in stdout  # the failures were reported...
    assert "<hidden>" in stdout + stderr  # ...and something was hidden on the way
    for secret in (KEY, PASSWORD, BASIC):
        assert secret not in stdout
        assert secret not in stderr
        leaked = [str(path) for path, data in files.items() if secret.encode() in data]
        assert leaked == []
