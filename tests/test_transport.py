"""What the server writes: error answers never carry a secret, everything else
goes out byte for byte (ds_lsp/transport.py). Reading is fuzzed in
tests/test_fuzz_protocol.py."""

from __future__ import annotations

import io
import json

from ds_lsp.transport import RedactingWriter

KEY = "sk-test-a8d7f6e5"
URL = "http://bob:pw-9x7@127.0.0.1:8080/v1"


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return (
        b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc\r\n\r\n" % len(body) + body
    )


def written(*messages: dict) -> bytes:
    out = io.BytesIO()
    writer = RedactingWriter(out, lambda: [KEY])
    for message in messages:
        writer.write(frame(message))
    return out.getvalue()


def test_an_error_answer_built_from_an_exception_is_redacted():
    # As pygls answers a handler that raised: the exception's text, and its traceback.
    error = {
        "code": -32603,
        "message": f"ConnectError: cannot reach {URL} with key {KEY}",
        "data": {"traceback": [f'  File "x.py", line 1\n    connect("{URL}", "{KEY}")\n']},
    }
    out = written({"jsonrpc": "2.0", "id": 7, "error": error})

    header, _, body = out.partition(b"\r\n\r\n")
    assert header == b"Content-Length: %d" % len(body)
    answer = json.loads(body)
    assert answer["id"] == 7 and answer["error"]["code"] == -32603
    assert "127.0.0.1:8080" in answer["error"]["message"]
    assert KEY.encode() not in out and b"pw-9x7" not in out


def test_everything_else_goes_out_unchanged():
    messages = [
        {"jsonrpc": "2.0", "id": 1, "result": {"status": "error", "text": f"{KEY} in a file"}},
        {"jsonrpc": "2.0", "method": "window/logMessage", "params": {"type": 1, "message": "x"}},
    ]
    assert written(*messages) == b"".join(frame(m) for m in messages)
