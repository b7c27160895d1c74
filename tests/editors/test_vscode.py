"""The VS Code extension in a real VS Code: code-server in headless Chromium,
the VSIX installed, ds-lsp started by the extension from this checkout, and a
fake model server standing in for the model. Typed at like a person, through
the keyboard only; checked on the screen (DOM), on disk (files are autosaved)
and in the output channels' logs. Screenshots go to tests/editors/artifacts/
(with the logs of the run); DS_LSP_DOCS_IMAGES=1 also copies them to docs/images/.

Run by `make test-editors`, which builds the VSIX and sets up code-server,
Node 24 and Chromium (.ci/setup-code-server); skipped elsewhere.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.editors.vscode_harness import (
    CHROMIUM,
    Browser,
    CodeServer,
    RoutedModelServer,
    wait_until,
)
from tests.fake_openai_server import Reply

NEEDED = ("DS_LSP_NODE_DIR", "DS_LSP_CODE_SERVER_DIR", "DS_LSP_VSIX")
if not all(os.environ.get(name) for name in NEEDED):
    pytest.skip("the VS Code test runs under `make test-editors`", allow_module_level=True)

pytestmark = pytest.mark.timeout(300)

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
EXTENSION_ID = "ds-lsp.ds-lsp"
MODEL = "deepseek-r1-test"
API_KEY = "sk-test-4f9c2e7a1b"  # set through "DeepSeek: Set API key"; must never reach a log

# Ends on add's body line, indented and empty, where the test types.
SOURCE = 'def greet(name):\n    return "Hello " + name\n\n\ndef add(a, b):\n    '

# Ghost text: the rest of "ret" in add's body.
COMPLETION = Reply(content="urn a + b", format="none")

INSTRUCTION = "Add a docstring"
EDIT_REASONING = "The user wants a docstring for greet.\nOne line saying what it returns will do.\n"
EDITED = 'def greet(name):\n    """Return a greeting for name."""\n    return "Hello " + name'
EDIT = Reply(reasoning=EDIT_REASONING, content=f"```python\n{EDITED}\n```", hold=True)

# An edit the test cancels: its answer never comes.
CANCELLED_INSTRUCTION = "Rename it to welcome"
NEVER = Reply(
    reasoning="Renaming greet.\n", content="```python\ndef welcome(name): ...\n```", hold=True
)

QUESTION = "What does add return?"
CHAT_REASONING = "The user asks about add.\nIt returns the sum of its arguments.\n"
CHAT_ANSWER = "It returns the sum of a and b."
CHAT = Reply(reasoning=CHAT_REASONING, content=CHAT_ANSWER)

# The editor, quiet: no word suggestions competing with the ghost text for Tab,
# no welcome pages, files saved soon after each change so the test reads them.
USER_SETTINGS = {
    "files.autoSave": "afterDelay",
    "files.autoSaveDelay": 100,
    "editor.quickSuggestions": {"other": "off", "comments": "off", "strings": "off"},
    "editor.suggestOnTriggerCharacters": False,
    "editor.wordBasedSuggestions": "off",
    "workbench.startupEditor": "none",
    "workbench.secondarySideBar.defaultVisibility": "hidden",
    "workbench.tips.enabled": False,
    "workbench.enableExperiments": False,
    "chat.disableAIFeatures": True,
    "extensions.ignoreRecommendations": True,
    "telemetry.telemetryLevel": "off",
    "window.restoreWindows": "none",
    # The fake model would suggest the same ghost text in the chat document too.
    "[markdown]": {"editor.inlineSuggest.enabled": False},
}


@functools.cache
def server_commands() -> set[str]:
    """The commands this checkout's ds-lsp offers."""
    code = (
        "from ds_lsp import config; from ds_lsp.server import build_server; "
        "print('\\n'.join(build_server(config.Settings(), []).protocol.fm.commands))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def needs(*commands: str) -> None:
    """Fail (a dropped registration is a bug, never a reason to skip) unless this
    ds-lsp offers the commands."""
    missing = sorted(set(commands) - server_commands())
    assert not missing, f"this ds-lsp does not offer {', '.join(missing)}"


class VSCode:
    """One editor session for the whole module: code-server, browser, workspace, model."""

    def __init__(self, root: Path) -> None:
        self.root = root
        node_dir = Path(os.environ["DS_LSP_NODE_DIR"])
        self.node = node_dir / "bin" / "node"
        self.code_server_dir = Path(os.environ["DS_LSP_CODE_SERVER_DIR"])
        self.model = RoutedModelServer(
            COMPLETION, [(INSTRUCTION, EDIT), (CANCELLED_INSTRUCTION, NEVER), (QUESTION, CHAT)]
        )
        self.code = CodeServer(root / "code-server", node_dir, self.code_server_dir)
        self.browser: Browser | None = None
        self.workspace = root / "workspace"
        self.source = self.workspace / "calc.py"

    def start(self) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.model.start()
        (self.workspace / ".vscode").mkdir(parents=True)
        self.source.write_text(SOURCE)
        # The extension's settings, as a user would put them in the workspace...
        settings = {
            "dsLsp.backend": "openai",
            "dsLsp.preset": "llamacpp",
            "dsLsp.model": MODEL,
            "dsLsp.trace.server": "verbose",
        }
        (self.workspace / ".vscode" / "settings.json").write_text(json.dumps(settings, indent=2))

        self.code.install_extension(Path(os.environ["DS_LSP_VSIX"]))
        # ...but what runs (machine scope) and the URL the API key goes to only count
        # from user settings.
        self.code.write_user_settings(self.user_settings())
        url = self.code.start(self.workspace)
        modules = self.code_server_dir / "node_modules"
        self.browser = Browser(self.node, modules, self.code.root / "driver.log")
        self.browser("open", url=url, executablePath=CHROMIUM)
        # The extension is active once its status bar item shows the model's name.
        self.browser("waitText", selector=".statusbar", text=MODEL, timeout=60000)

    def screenshot(self, name: str) -> None:
        path = ARTIFACTS / f"vscode-{name}.png"
        self.browser("screenshot", path=str(path))
        if os.environ.get("DS_LSP_DOCS_IMAGES") == "1":
            DOCS_IMAGES.mkdir(exist_ok=True)
            shutil.copy(path, DOCS_IMAGES / path.name)

    def user_settings(self, **changes) -> dict:
        return {
            **USER_SETTINGS,
            "dsLsp.serverCommand": [sys.executable, "-m", "ds_lsp"],
            "dsLsp.baseUrl": self.model.base_url,
            **changes,
        }

    def channel(self, name: str) -> str:
        return self.code.output_channel(EXTENSION_ID, name)

    def wait_for_reasoning(self, text: str) -> str:
        """The "DeepSeek Reasoning" output channel, once it holds `text`."""
        return wait_until(
            "the reasoning in its channel",
            lambda: self.channel("DeepSeek Reasoning"),
            lambda log: text in log,
        )

    def close(self) -> None:
        try:
            if self.browser is not None:
                self.browser.close()
        finally:
            self.code.stop()
            self.model.stop()
            # Keep the logs next to the screenshots, for a failed run.
            logs = ARTIFACTS / "logs"
            shutil.rmtree(logs, ignore_errors=True)
            for path in self.code.log_files():
                target = logs / path.relative_to(self.code.root)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)


@pytest.fixture(scope="module")
def vscode(tmp_path_factory):
    session = VSCode(tmp_path_factory.mktemp("vscode"))
    try:
        session.start()
        yield session
    finally:
        session.close()


def test_api_key_is_stored_and_the_server_restarts(vscode):
    b = vscode.browser
    # The extension's log at Trace, as a user reporting a bug would set it: the
    # language client then logs every LSP message, initialize (with the key) included.
    b("command", title="Developer: Set Log Level")
    b("pick", label="DeepSeek (ds-lsp)")
    b("pick", label="Trace")
    b("command", title="DeepSeek: Set API key")
    b("answerInput", title="DeepSeek: API key", text=API_KEY)
    b("waitText", selector=".notifications-toasts", text="DeepSeek: API key saved.")
    b("command", title="Notifications: Clear All Notifications")
    # The status bar names the model once the restarted server runs.
    b("waitText", selector=".statusbar", text=MODEL)


def test_ghost_text_shows_while_typing_and_tab_accepts_it(vscode):
    b = vscode.browser
    b("openFile", name="calc.py")
    b("press", keys=["Control+End"])
    b("type", text="ret", delay=110)  # at a person's typing speed
    b("waitText", selector=".ghost-text-decoration", text="urn a + b")
    vscode.screenshot("ghost-text")
    b("press", keys=["Tab"])

    saved = wait_until(
        "the accepted suggestion on disk",
        vscode.source.read_text,
        lambda text: "return a + b" in text,
    )
    assert saved.splitlines()[-1] == "    return a + b"
    completions = vscode.model.requests_to("completions")
    assert completions and "def add(a, b):" in completions[-1]["prompt"]
    # The key from SecretStorage reached the model server.
    assert vscode.model.auth_headers[-1] == f"Bearer {API_KEY}"


def test_edit_selection_applies_the_rewrite(vscode):
    needs("dsLsp.editSelection")
    b = vscode.browser
    b("openFile", name="calc.py")
    b("press", keys=["Control+Home", "Shift+ArrowDown", "Shift+End"])  # greet's two lines
    b("press", keys=["Control+i"])
    b("answerInput", title="Edit with DeepSeek", text=INSTRUCTION)

    # The model holds its answer: meanwhile the status bar spins, with the server's
    # progress beside it, and a notification offers to cancel.
    wait_until("the edit request", lambda: vscode.model.held, bool)
    b("waitVisible", selector=".statusbar-item .codicon-sync.codicon-modifier-spin")
    b("waitText", selector=".statusbar", text="DeepSeek is thinking")
    b("waitText", selector=".notifications-toasts", text="DeepSeek is editing calc.py")
    vscode.screenshot("thinking")
    vscode.model.release_held()

    wait_until("the edit on disk", vscode.source.read_text, lambda text: EDITED in text)
    b("waitText", selector=".editor-group-container.active .view-lines", text="Return a greeting")
    b("waitNoText", selector=".notifications-toasts", text="DeepSeek is editing")
    vscode.screenshot("edit")
    assert INSTRUCTION in json.dumps(vscode.model.requests_to("chat")[-1])
    # The reasoning streamed into its output channel, and the spinner stopped.
    vscode.wait_for_reasoning(EDIT_REASONING)
    b("waitVisible", selector=".statusbar-item .codicon-sparkle")


def test_cancel_stops_the_model_and_changes_nothing(vscode):
    needs("dsLsp.editSelection")
    b = vscode.browser
    before = vscode.source.read_text()
    b("openFile", name="calc.py")
    b("press", keys=["Control+Home", "Shift+ArrowDown", "Shift+End"])
    b("press", keys=["Control+i"])
    b("answerInput", title="Edit with DeepSeek", text=CANCELLED_INSTRUCTION)
    [request] = wait_until("the edit request", lambda: vscode.model.held, bool)
    b("click", selector='.notifications-toasts .monaco-button:has-text("Cancel")')

    assert request.disconnected.wait(20), "the model's stream was not closed"
    b("waitVisible", selector=".statusbar-item .codicon-sparkle")  # the spinner stopped
    assert vscode.source.read_text() == before
    b("command", title="Notifications: Clear All Notifications")


def test_chat_answer_lands_in_the_chat_document(vscode):
    needs("dsLsp.addToChat", "dsLsp.sendChat")
    b = vscode.browser
    b("openFile", name="calc.py")
    b("press", keys=["Control+End", "Shift+ArrowUp", "Shift+Home"])  # add's two lines
    b("press", keys=["Control+l"])
    # The server opens the chat document (window/showDocument) with the selection in it.
    b("waitEditor", name="chat.md")
    b("waitText", selector=".editor-group-container.active .view-lines", text="## You")
    b("waitText", selector=".editor-group-container.active .view-lines", text="def add(a, b):")
    # As a user would: the chat is ready once its "Send to DeepSeek" lens shows (the
    # extension has then also marked the editor as a chat, which Ctrl+Enter needs).
    b("waitText", selector=".editor-group-container.active .codelens-decoration", text="Send to")
    b("press", keys=["Control+End", "Enter"])  # a line of its own, under the added code
    b("type", text=QUESTION)
    b("press", keys=["Control+Enter"])

    b("waitText", selector=".editor-group-container.active .view-lines", text=CHAT_ANSWER)
    b("waitVisible", selector=".statusbar-item .codicon-sparkle")  # the request is over
    b("waitNoText", selector=".notifications-toasts", text="DeepSeek is answering")
    vscode.screenshot("chat")
    vscode.wait_for_reasoning(CHAT_REASONING)
    # The model got the question with the added code.
    assert "return a + b" in json.dumps(vscode.model.requests_to("chat")[-1])
    # The answer's reasoning stays out of the chat document.
    assert "It returns the sum of its arguments" not in " ".join(
        b("texts", selector=".editor-group-container.active .view-lines")
    )


def test_reasoning_channel_shows_the_reasoning(vscode):
    needs("dsLsp.editSelection")
    b = vscode.browser
    b("command", title="DeepSeek: Show reasoning")
    b("waitText", selector=".panel", text="The user wants a docstring for greet.")
    vscode.screenshot("reasoning")
    log = vscode.channel("DeepSeek Reasoning")
    assert "calc.py:1-2" in log  # each stream's heading names the file and lines


def test_a_missing_server_says_how_to_install_it(vscode):
    b = vscode.browser
    missing = str(vscode.root / "no-such-venv" / "bin" / "ds-lsp")
    vscode.code.write_user_settings(vscode.user_settings(**{"dsLsp.serverCommand": missing}))
    try:
        # Changing the command restarts the server, which is not there.
        b("waitText", selector=".notifications-toasts", text="pip install ds-lsp")
        b("waitVisible", selector=".notifications-toasts .notification-fade-in-done")
        vscode.screenshot("missing-server")
        b("waitVisible", selector=".statusbar-item .codicon-warning")
    finally:
        vscode.code.write_user_settings(vscode.user_settings())
    b("command", title="Notifications: Clear All Notifications")
    b("waitVisible", selector=".statusbar-item .codicon-sparkle")  # running again


def test_the_api_key_is_in_no_log_and_no_file(vscode):
    log = vscode.channel("DeepSeek (ds-lsp)")
    assert "Sending request 'initialize" in log  # traced, and with the key hidden
    assert '"apiKey": "<api key hidden>"' in log
    files = [path for path in vscode.root.rglob("*") if path.is_file()]
    assert [str(path) for path in files if API_KEY.encode() in path.read_bytes()] == []


def test_a_workspace_that_sets_the_model_url_does_not_get_the_key(vscode):
    """A folder's .vscode/settings.json may choose the model server's URL (a shared
    project's llama-server), but the key from secret storage then stays home."""
    b = vscode.browser
    settings_file = vscode.workspace / ".vscode" / "settings.json"
    before = settings_file.read_text()
    starts = vscode.channel("DeepSeek (ds-lsp)").count("Sending request 'initialize")
    chosen = {**json.loads(before), "dsLsp.baseUrl": "http://127.0.0.1:9/v1"}
    settings_file.write_text(json.dumps(chosen, indent=2))
    try:
        b("waitText", selector=".notifications-toasts", text="the API key was not sent")
        log = wait_until(
            "the server restarted without the key",
            lambda: vscode.channel("DeepSeek (ds-lsp)"),
            lambda log: (
                log.count("Sending request 'initialize") > starts
                and "Received response 'initialize"
                in log[log.rindex("Sending request 'initialize") :]
            ),
        )
        restarted = log[log.rindex("Sending request 'initialize") :]
        restarted = restarted[: restarted.index("Received response 'initialize")]
        assert '"baseUrl": "http://127.0.0.1:9/v1"' in restarted
        assert "apiKey" not in restarted
    finally:
        settings_file.write_text(before)
    b("command", title="Notifications: Clear All Notifications")
    b("waitText", selector=".statusbar", text=MODEL)  # back on the user's URL, with the key
