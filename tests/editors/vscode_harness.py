"""What the VS Code test runs on: code-server (VS Code in a browser) with the
extension's VSIX installed, headless Chromium driven by vscode_driver.cjs, and
a fake model server that answers each kind of request with its own reply.

Paths come from the environment `make test-editors` sets up (see
.ci/setup-code-server): DS_LSP_NODE_DIR, DS_LSP_CODE_SERVER_DIR, DS_LSP_VSIX.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

from aiohttp import web

from tests.fake_openai_server import FakeOpenAIServer, Reply, Served

HERE = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"


class RoutedModelServer(FakeOpenAIServer):
    """The fake model server, answering by what is asked rather than in order.

    Ghost text may ask any number of times while the test types (and ds-lsp
    prepares the next suggestion in the background), so order cannot tell the
    requests apart. Here text completions (`/v1/completions`, where ds-lsp sends
    ghost-text prompts for the `llamacpp` preset) always get `completion`; a chat
    request gets the reply of the first route whose needle its JSON contains,
    else `unexpected`.
    """

    def __init__(self, completion: Reply, routes: list[tuple[str, Reply]]) -> None:
        super().__init__(default_reply=completion)
        self.routes = routes
        self.held: list[Served] = []  # requests of Reply(hold=True) routes, until release_held()
        self.unexpected = Reply(content="(no scripted reply for this request)", format="none")

    def reply_for(self, endpoint: str, body: dict) -> Reply:
        if endpoint == "completions":
            return self.default_reply
        text = json.dumps(body, ensure_ascii=False)
        return next((reply for needle, reply in self.routes if needle in text), self.unexpected)

    def release_held(self) -> None:
        """Lets every held reply go on."""
        with self._lock:
            held, self.held = self.held, []
        for served in held:
            self._loop.call_soon_threadsafe(served.released.set)

    def requests_to(self, endpoint: str) -> list[dict]:
        """The requests to "chat" (/v1/chat/completions) or "completions" (/v1/completions)."""
        with self._lock:
            pairs = zip(self.requests, self.endpoints, strict=True)
            return [body for body, to in pairs if to == endpoint]

    async def _answer(self, request: web.Request, endpoint: str) -> web.StreamResponse:
        # FakeOpenAIServer._answer, with the reply chosen by reply_for instead of a queue.
        body = await request.json()
        reply = self.reply_for(endpoint, body)
        with self._arrived:
            self.requests.append(body)
            self.endpoints.append(endpoint)
            self.auth_headers.append(request.headers.get("Authorization"))
            served = Served(endpoint=endpoint)
            self._served.append(served)
            self._arrived.notify_all()
        try:
            if reply.hold:
                with self._lock:
                    self.held.append(served)
                await served.released.wait()
            if not body.get("stream"):
                raise web.HTTPBadRequest(text="this test server only streams")
            return await self._stream(reply, request, body.get("model", ""), served)
        except asyncio.CancelledError:
            served.note_disconnect()
            raise


def clean_env(root: Path) -> dict[str, str]:
    """An environment with nothing of the user's: XDG folders under `root`, no
    DS_LSP_* variables, no ds-lsp config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DS_LSP_", "XDG_"))}
    for name in ("CONFIG", "DATA", "CACHE", "STATE"):
        folder = root / "xdg" / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[f"XDG_{name}_HOME"] = str(folder)
    env["DS_LSP_CONFIG"] = os.devnull
    return env


class CodeServer:
    """code-server on a free port, with a fresh user-data-dir and extensions dir under `root`."""

    def __init__(self, root: Path, node_dir: Path, code_server_dir: Path) -> None:
        self.root = root
        self.node = node_dir / "bin" / "node"
        self.entry = code_server_dir / "node_modules" / "code-server" / "out" / "node" / "entry.js"
        self.user_data = root / "user-data"
        self.extensions = root / "extensions"
        self.log_path = root / "code-server.log"
        self.env = clean_env(root)
        self.env["PATH"] = f"{node_dir / 'bin'}{os.pathsep}{self.env.get('PATH', '')}"
        self.process: subprocess.Popen | None = None
        self.url = ""

    def _command(self, *args: str) -> list[str]:
        return [
            str(self.node),
            str(self.entry),
            "--user-data-dir",
            str(self.user_data),
            "--extensions-dir",
            str(self.extensions),
            *args,
        ]

    def install_extension(self, vsix: Path) -> None:
        subprocess.run(
            self._command("--install-extension", str(vsix), "--force"),
            env=self.env,
            check=True,
            capture_output=True,
            timeout=180,
        )

    def write_user_settings(self, settings: dict) -> None:
        """The user's settings. code-server is a remote window: settings of machine
        scope (which program runs) count only from its Machine settings, as VS Code's
        Remote settings do, so they go there too."""
        for folder in ("User", "Machine"):
            path = self.user_data / folder / "settings.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(settings, indent=2))

    def start(self, workspace: Path, timeout: float = 60.0) -> str:
        """Starts code-server on `workspace`; returns its URL once it listens."""
        log = self.log_path.open("w")
        # A session of its own, so that stop() ends code-server with the extension
        # host and ds-lsp it started, by this process group's id.
        self.process = subprocess.Popen(
            self._command(
                "--bind-addr",
                "127.0.0.1:0",
                "--auth",
                "none",
                "--disable-telemetry",
                "--disable-update-check",
                "--disable-workspace-trust",
                "--disable-getting-started-override",
                str(workspace),
            ),
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(r"HTTP server listening on (http://\S+)", self.log_path.read_text())
            if found:
                self.url = found.group(1).rstrip("/") + "/"
                return self.url
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"code-server did not start:\n{self.log_path.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def log_files(self) -> list[Path]:
        """Every log under `root`: code-server's, VS Code's (output channels included),
        and whatever else the test put there."""
        return [path for path in self.root.rglob("*.log") if path.is_file()]

    def output_channel(self, extension_id: str, channel: str) -> str:
        """The text of an extension's output channel, as the extension host writes it:
        a log channel to `logs/<ts>/exthost*/<extension id>/<channel>.log`, a plain
        one to `logs/<ts>/exthost*/output_logging_<ts>/<n>-<channel>.log`."""
        logs = self.user_data / "logs"
        found = [
            *logs.glob(f"*/exthost*/{extension_id}/{channel}.log"),
            *logs.glob(f"*/exthost*/output_logging_*/*-{channel}.log"),
        ]
        return "\n".join(p.read_text(errors="replace") for p in sorted(found))


class Browser:
    """vscode_driver.cjs in a child process: `browser("op", **args)` runs one command."""

    def __init__(self, node: Path, node_modules: Path, log_path: Path) -> None:
        env = {**os.environ, "NODE_PATH": str(node_modules)}
        self.log = log_path.open("w")
        self.process = subprocess.Popen(
            [str(node), str(HERE / "vscode_driver.cjs")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lock = threading.Lock()

    def __call__(self, op: str, **args):
        with self.lock:
            self.process.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the browser driver exited (see {self.log.name})")
        answer = json.loads(line)
        if not answer["ok"]:
            raise AssertionError(f"browser: {op} {args}: {answer['error']}")
        return answer["value"]

    def close(self) -> None:
        try:
            self("close")
            self.process.stdin.close()
            self.process.wait(20)
        except Exception:
            self.process.kill()
            self.process.wait(10)
        finally:
            self.log.close()


def wait_until(what: str, get, ok, timeout: float = 20.0):
    """Polls `get()` until `ok(value)`; returns the value."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if ok(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}: {value!r}")
        time.sleep(0.1)
