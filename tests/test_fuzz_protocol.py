"""Protocol fuzzing: the server, a real process on stdio, takes bad framing, bad
JSON, wrong types, unknown methods, missing fields, out-of-range positions,
unknown URIs, duplicate ids and stray cancels, stays up, and answers every
request with a result or a JSON-RPC error (tests/protocol_fuzz.py says how).
bench/fuzz.py runs the same over 100,000+ messages."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.protocol_fuzz import FuzzSession, messages
from tests.raw_lsp import RawServer, encode, frame, server_env


@pytest.fixture(scope="module")
def model():
    fake = FakeOpenAIServer(Reply(content="x = 1")).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def session(model, tmp_path_factory):
    fuzz = FuzzSession(tmp_path_factory.mktemp("fuzz"), model.base_url)
    yield fuzz
    assert fuzz.close() == 0  # and it still shuts down cleanly


@settings(
    max_examples=500,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # the server's state carries over: shrinking would not replay
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(messages(), min_size=5, max_size=30))
def test_every_request_is_answered_and_the_server_stays_up(session, batch):
    session.run_batch(batch)
    assert session.server.process.poll() is None


def test_the_fuzz_run_was_big_enough(session):
    # Runs after the fuzzing above (same module, in order). `pytest -s` shows the count.
    print(f"\nfuzzed: {session.tally}")
    assert session.tally.messages >= 2000
    assert session.tally.crashes == 0


def _start(tmp_path) -> RawServer:
    return RawServer(server_env(tmp_path), tmp_path)


def test_requests_before_initialize_are_refused_then_initialize_works(tmp_path):
    server = _start(tmp_path)
    server.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///x.py"}})
    server.request(1, "textDocument/hover", {"textDocument": {"uri": "file:///x.py"}})
    server.request(2, "shutdown")
    [early] = server.wait_for(1)
    assert early["error"]["code"] == -32002  # ServerNotInitialized
    assert server.wait_for(2)[0]["error"]["code"] == -32002

    server.request(3, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert "capabilities" in server.wait_for(3)[0]["result"]
    assert server.close() == 0


def test_requests_after_shutdown_are_refused_and_exit_ends_the_server(tmp_path):
    server = _start(tmp_path)
    server.request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    server.wait_for(1)
    server.notify("initialized", {})
    server.request(2, "shutdown")
    assert server.wait_for(2)[0]["result"] is None
    server.request(3, "textDocument/hover", {"textDocument": {"uri": "file:///x.py"}})
    server.request(4, "shutdown")
    assert server.wait_for(3)[0]["error"]["code"] == -32600  # InvalidRequest
    assert server.wait_for(4)[0]["error"]["code"] == -32600
    server.notify("exit")
    assert server.process.wait(10) == 0


def test_a_2gb_content_length_is_refused_and_the_next_message_is_served(tmp_path):
    server = _start(tmp_path)
    server.send_bytes(b'Content-Length: 2147483648\r\n\r\n{"jsonrpc": "2.0"}')
    server.request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    assert "capabilities" in server.wait_for(1)[0]["result"]
    assert server.close() == 0
    assert "refusing to read a message of 2147483648 bytes" in server.stderr_text()


def test_a_document_with_bytes_that_are_not_utf8_is_opened_with_them_replaced(tmp_path):
    server = _start(tmp_path)
    server.request(1, "initialize", {"processId": None, "rootUri": None, "capabilities": {}})
    server.wait_for(1)
    server.notify("initialized", {})
    # "caf\xe9" is Latin-1: the file was read in the wrong encoding.
    body = (
        b'{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": '
        b'{"uri": "file:///latin1.py", "languageId": "python", "version": 1, '
        b'"text": "name = \\"caf\xe9\\"\\n"}}}'
    )
    server.send_bytes(frame(body))
    server.send_bytes(frame(body))  # said once, not each time
    inspect = {"command": "dsLsp.inspectDocument", "arguments": [{"uri": "file:///latin1.py"}]}
    server.request(2, "workspace/executeCommand", inspect)

    assert server.wait_for(2)[0]["result"]["text"] == 'name = "caf\ufffd"\n'
    assert server.close() == 0
    assert server.stderr_text().count("not UTF-8") + _logged(server).count("not UTF-8") == 1


def _logged(server: RawServer) -> str:
    return "\n".join(
        n["params"]["message"] for n in server.notifications if n["method"] == "window/logMessage"
    )


def test_over_tcp_too_a_2gb_content_length_is_refused_and_the_server_goes_on(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "ds_lsp", "serve", "--tcp", f"127.0.0.1:{port}"]
    server = subprocess.Popen(command, env=server_env(tmp_path), stderr=subprocess.PIPE)
    try:
        connection = _connect(port)
        connection.sendall(b'Content-Length: 2147483648\r\n\r\n{"jsonrpc": "2.0"}')
        connection.sendall(b"x" * 100_000 + b"\r\n")  # a line past the reader's limit
        for msg_id, method in ((1, "initialize"), (2, "shutdown")):
            params = {"processId": None, "rootUri": None, "capabilities": {}}
            message = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
            connection.sendall(encode(message))
            assert _receive(connection, msg_id)["id"] == msg_id
        connection.sendall(encode({"jsonrpc": "2.0", "method": "exit"}))
        assert server.wait(10) == 0
        assert b"refusing to read a message of 2147483648 bytes" in server.stderr.read()
    finally:
        server.kill()
        server.wait()


def _connect(port: int) -> socket.socket:
    for _ in range(200):  # it needs a moment to import and listen
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except ConnectionRefusedError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on port {port}")


def _receive(connection: socket.socket, msg_id: int) -> dict:
    """The response to `msg_id`, skipping the server's notifications."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            buffer += connection.recv(65536)
        header, _, buffer = buffer.partition(b"\r\n\r\n")
        length = int(header.split(b":")[1].split(b"\r\n")[0])
        while len(buffer) < length:
            buffer += connection.recv(65536)
        message, buffer = json.loads(buffer[:length]), buffer[length:]
        if message.get("id") == msg_id and "method" not in message:
            return message
