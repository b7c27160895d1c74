"""A raw LSP client over a server process's stdio: it sends any bytes at all
(bad framing, bad JSON), and collects every response by id.

pytest-lsp's client only sends well-formed messages, so protocol fuzzing
(tests/test_fuzz_protocol.py, bench/fuzz.py) and the secrets test use this.
Requests from the server (workspace/applyEdit, workspace/configuration...)
are answered as a plain editor would: edits applied, documents not shown,
settings as `configuration` says (none by default).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Requests the server sends, and what a plain editor answers.
_CLIENT_ANSWERS: dict[str, Any] = {
    "workspace/applyEdit": {"applied": True},
    "window/showDocument": {"success": False},  # nothing is opened: chats stay on disk
    "workspace/configuration": None,  # `configuration` for each item, below
}


def frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def encode(message: dict) -> bytes:
    return frame(json.dumps(message).encode())


class RawServer:
    """`python -m ds_lsp` (or `command`) on pipes, with a thread reading its output."""

    def __init__(self, env: dict[str, str], cwd: Path, command: list[str] | None = None):
        self.process = subprocess.Popen(
            command or [sys.executable, "-m", "ds_lsp", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cwd,
        )
        self.lock = threading.Lock()
        self.changed = threading.Condition()
        self.responses: dict[Any, list[dict]] = defaultdict(list)
        self.notifications: list[dict] = []
        self.server_requests: list[dict] = []
        self.raw_output: list[bytes] = []  # every body the server wrote, as written
        self.stderr: list[bytes] = []
        self.broken = ""  # set when the server's output could not be read
        self.configuration: Any = None  # the answer to each workspace/configuration item
        # Called with each workspace/applyEdit request before it is answered: an editor
        # that applies edits sends their didChange first (see bench/soak.py).
        self.on_apply_edit: Callable[[dict], None] | None = None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    # ------------------------------------------------------------ sending

    def send_bytes(self, data: bytes) -> None:
        with self.lock:
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def send(self, message: dict) -> None:
        self.send_bytes(encode(message))

    def request(self, msg_id: Any, method: str, params: Any = None) -> None:
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    def notify(self, method: str, params: Any = None) -> None:
        message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)

    # ------------------------------------------------------------ waiting

    def wait_for(self, msg_id: Any, count: int = 1, timeout: float = 30.0) -> list[dict]:
        """The responses to `msg_id`, once `count` have come; raises if they did not."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.responses.get(_key(msg_id), ())) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.process.poll() is not None or self.broken:
                    state = self.broken or f"exit code {self.process.poll()}"
                    tail = self.stderr_text()[-3000:]
                    raise AssertionError(f"no response to {msg_id!r} ({state}); stderr:\n{tail}")
                self.changed.wait(min(left, 0.5))
            return list(self.responses[_key(msg_id)])

    def wait_until(self, condition, timeout: float = 30.0) -> None:
        """Until `condition()` holds, checked as each message arrives."""
        with self.changed:
            if not self.changed.wait_for(condition, timeout):
                raise AssertionError(f"timed out; stderr:\n{self.stderr_text()[-3000:]}")

    def stderr_text(self) -> str:
        return b"".join(self.stderr).decode("utf-8", "replace")

    def close(self, timeout: float = 10.0) -> int:
        """shutdown and exit, as an editor does; the exit code (killed if it hangs)."""
        if self.process.poll() is None:
            try:
                self.request("raw-shutdown", "shutdown")
                self.wait_for("raw-shutdown", timeout=timeout)
                self.notify("exit")
                self.process.stdin.close()
            except (AssertionError, BrokenPipeError, OSError):
                pass
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9

    # ------------------------------------------------------------ reading

    def _read_stdout(self) -> None:
        stream = self.process.stdout
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    return
                if not line.strip():
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is None:
                self.broken = "a message from the server without Content-Length"
                return
            body = stream.read(length)
            self.raw_output.append(body)
            try:
                message = json.loads(body)
            except ValueError:
                self.broken = f"the server wrote a body that is not JSON: {body[:200]!r}"
                return
            self._take(message)

    def _take(self, message: dict) -> None:
        if "method" in message and "id" in message:
            self.server_requests.append(message)
            self._answer(message)
        elif "method" in message:
            self.notifications.append(message)
        with self.changed:
            if "method" not in message:
                self.responses[_key(message.get("id"))].append(message)
            self.changed.notify_all()

    def _answer(self, request: dict) -> None:
        method = request["method"]
        result = _CLIENT_ANSWERS.get(method)
        if method == "workspace/applyEdit" and self.on_apply_edit is not None:
            self.on_apply_edit(request.get("params") or {})
        if method == "workspace/configuration":
            result = [self.configuration] * len((request.get("params") or {}).get("items", []))
        try:
            self.send({"jsonrpc": "2.0", "id": request["id"], "result": result})
        except (BrokenPipeError, OSError):
            pass

    def _read_stderr(self) -> None:
        for line in iter(self.process.stderr.readline, b""):
            self.stderr.append(line)


def _key(msg_id: Any) -> Any:
    """A response id as a dict key: a server may echo an id of any JSON type."""
    return msg_id if isinstance(msg_id, int | str | None) else json.dumps(msg_id)


def edit_as_changes(workspace_edit: dict) -> dict[str, list[dict]]:
    """An applied WorkspaceEdit as the didChange contentChanges an editor sends for
    it, by document URI: each document's edits bottom first, so that each range
    still holds when its turn comes."""
    by_uri: dict[str, list[dict]] = {}
    for change in workspace_edit.get("documentChanges") or []:
        by_uri.setdefault(change["textDocument"]["uri"], []).extend(change["edits"])
    for uri, edits in (workspace_edit.get("changes") or {}).items():
        by_uri.setdefault(uri, []).extend(edits)

    def start(edit: dict) -> tuple[int, int]:
        return edit["range"]["start"]["line"], edit["range"]["start"]["character"]

    return {
        uri: [
            {"range": e["range"], "text": e["newText"]}
            for e in sorted(edits, key=start, reverse=True)
        ]
        for uri, edits in by_uri.items()
    }


def server_env(tmp: Path, **extra: str) -> dict[str, str]:
    """The environment for a server under test: no user config, state and home in `tmp`
    (chats it writes land there), and this checkout's ds_lsp first on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    env.update(DS_LSP_CONFIG=os.devnull, HOME=str(tmp), XDG_STATE_HOME=str(tmp / "state"))
    env.update(extra)
    return env
