"""Edit highlighted code: how soon the user sees the server at work.

From the `dsLsp.editSelection` request to the first progress ("DeepSeek is
thinking…") and to the first reasoning line (log message, `dsLsp/reasoning`),
over the local test model server answering with a set time to first token.
Target: the first reasoning line <= 100 ms plus the model's time to first token.

Prints a JSON line last: median and p95 in ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

from tests.fake_openai_server import FakeOpenAIServer, Reply  # noqa: E402

RUNS = 30
FIRST_TOKEN_S = 0.15  # the model's time to first token, as the fake server plays it
SOURCE = "import math\n\n\ndef area(r):\n    return math.pi * r * r\n"
ANSWER = "```python\ndef area(r: float) -> float:\n    return math.pi * r * r\n```\n"
REASONING = "Okay, type hints.\nThe radius is a float, and so is the area.\n"


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
        "runs": len(ordered),
    }


class Client:
    """An editor, as far as an edit needs one: it records when things arrive."""

    def __init__(self) -> None:
        self.client = LanguageClient("ds-lsp-bench", "1")
        self.first: dict[str, float] = {}

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def create(params):
            return None

        @self.client.feature(types.PROGRESS)
        def progress(params):
            self.first.setdefault("progress", time.perf_counter())

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def log_message(params):
            if params.message.startswith("  "):  # a reasoning line
                self.first.setdefault("log", time.perf_counter())

        @self.client.feature("dsLsp/reasoning")
        def reasoning(params):
            self.first.setdefault("notification", time.perf_counter())

        @self.client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params):
            self.first.setdefault("applied", time.perf_counter())
            return types.ApplyWorkspaceEditResult(applied=True)

    async def start(self, base_url: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
        env["DS_LSP_CONFIG"] = os.devnull
        await self.client.start_io(sys.executable, "-m", "ds_lsp", env=env)
        caps = types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True),
            workspace=types.WorkspaceClientCapabilities(
                apply_edit=True,
                workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
            ),
        )
        options = {"backend": "openai", "baseUrl": base_url, "model": "m"}
        await self.client.initialize_async(
            types.InitializeParams(capabilities=caps, initialization_options={"dsLsp": options})
        )
        self.client.initialized(types.InitializedParams())

    async def edit(self, uri: str) -> dict[str, float]:
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=uri, language_id="python", version=1, text=SOURCE)
            )
        )
        self.first = {}
        selection = {"start": {"line": 3, "character": 0}, "end": {"line": 5, "character": 0}}
        argument = {"uri": uri, "range": selection, "instruction": "Add type hints"}
        sent = time.perf_counter()
        result = await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="dsLsp.editSelection", arguments=[argument])
        )
        assert result["status"] == "applied", result
        return {name: (at - sent) * 1000 for name, at in self.first.items()}

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


async def main() -> None:
    fake = FakeOpenAIServer().start()
    client = Client()
    await client.start(fake.base_url)
    timings: dict[str, list[float]] = {}
    try:
        for run in range(RUNS + 2):
            fake.enqueue(
                Reply(reasoning=REASONING, content=ANSWER, first_delay=FIRST_TOKEN_S, chunk_size=8)
            )
            times = await client.edit(f"file:///bench/edit{run}.py")
            if run < 2:
                continue  # the first builds the backend and warms the HTTP connection
            for name, ms in times.items():
                timings.setdefault(name, []).append(ms)
    finally:
        await client.stop()
        fake.stop()
    first_token_ms = FIRST_TOKEN_S * 1000
    result = {
        "model_first_token_ms": first_token_ms,
        "to_progress_ms": summary(timings["progress"]),
        "to_first_reasoning_line_ms": summary(timings["log"]),
        "to_first_reasoning_notification_ms": summary(timings["notification"]),
        "first_reasoning_line_minus_model_ms": summary(
            [ms - first_token_ms for ms in timings["log"]]
        ),
        "to_applied_ms": summary(timings["applied"]),
    }
    for name, value in result.items():
        print(f"{name}: {value}", file=sys.stderr)
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
