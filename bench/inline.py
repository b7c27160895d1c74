"""Inline completions as an editor drives them, three ways.

The server runs as `ds-lsp` over stdio; this script is the editor: it opens a
real 5,000-line Python file, then types bursts of keystrokes with human gaps
(about 110 ms apart, pauses of 0.4-1.2 s between bursts). After each keystroke
it sends didChange, a `$/cancelRequest` for the previous completion request if
that is still pending, and an automatic `textDocument/inlineCompletion`.

The three ways: the local fake model server with a fixed latency (150 ms to the
first token, then 8 ms a token); a real llama-server with gemma-3-270m; and
gemma-3-270m in process. Both gemma ways run ds-lsp's default settings: the
prompt style comes from the model (plain continuation for gemma, whose GGUF has
no chat template). Run one with `--way fake|llama-server|in-process`.

Prints one JSON line per way, the last line with all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

from bench.keystroke import generate_python  # noqa: E402

LINES = 5000
URI = "file:///bench/inline_target.py"
STATEMENTS = [
    "total = sum(item.price for item in items)",
    "if not records:",
    "return self._cache.get(key, default)",
    "logger.info('loaded %d rows', len(rows))",
    "for index, value in enumerate(values):",
    "result.append(transform(value))",
    "raise ValueError(f'bad value: {value!r}')",
    "with open(path, encoding='utf-8') as handle:",
]
GAP = 0.110  # seconds between keystrokes in a burst
# Pauses counted for "answered within the pause" with a real model: at least this
# long, and from this long after typing began at the spot (its prompt is cold before).
REAL_PAUSE_MIN = 0.5
REAL_SPOT_WARMUP = 3.0
FAKE_ANSWER = "result = compute(value)"


def summary(values: list[float]) -> dict:
    if not values:
        return {"median": None, "p95": None, "n": 0}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 1),
        "p95": round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 1),
        "n": len(ordered),
    }


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Editor:
    """A minimal LSP client that types like a person and records what comes back."""

    def __init__(self, options: dict, env: dict[str, str], log_file: str | None = None) -> None:
        self.options = options
        self.log_file = log_file
        self.env = env
        self.client = LanguageClient("ds-lsp-bench", "1")
        self.version = 1
        self.text = ""
        self.sent: dict[str, float] = {}  # request id -> time sent
        self.answered: dict[str, tuple[float, list]] = {}  # id -> (time, items)
        self.pending: str | None = None
        self.counter = 0

    async def start(self) -> None:
        log = []
        if self.log_file:
            log = ["serve", "--log-level", "debug", "--log-file", self.log_file]
        await self.client.start_io(sys.executable, "-m", "ds_lsp", *log, env=self.env)
        # Read the server's stderr as editors do: a full pipe would block the server.
        self._stderr = asyncio.ensure_future(self._drain(self.client._server.stderr))
        caps = types.ClientCapabilities(
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities()
            ),
            general=types.GeneralClientCapabilities(position_encodings=["utf-16"]),
        )
        await self.client.initialize_async(
            types.InitializeParams(
                capabilities=caps, initialization_options={"dsLsp": self.options}
            )
        )
        self.client.initialized(types.InitializedParams())

    @staticmethod
    async def _drain(stream) -> None:
        while await stream.read(65536):
            pass

    def open(self, text: str) -> None:
        self.text = text
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                types.TextDocumentItem(uri=URI, language_id="python", version=1, text=text)
            )
        )

    def insert(self, line: int, character: int, typed: str) -> None:
        self.version += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=URI, version=self.version),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            types.Position(line, character), types.Position(line, character)
                        ),
                        text=typed,
                    )
                ],
            )
        )

    def request(self, line: int, character: int) -> str:
        if self.pending is not None and self.pending not in self.answered:
            self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=self.pending))
        self.counter += 1
        msg_id = f"inline-{self.counter}"
        params = types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line, character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
        )
        self.sent[msg_id] = time.perf_counter()

        def done(future) -> None:
            items = []
            if not future.cancelled() and future.exception() is None and future.result():
                items = future.result().items
            self.answered[msg_id] = (time.perf_counter(), items)

        future = self.client.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id
        )
        future.add_done_callback(done)
        self.pending = msg_id
        return msg_id

    async def stats(self) -> dict:
        return await self.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="dsLsp.inlineStats", arguments=[])
        )

    async def stop(self) -> None:
        await self.client.shutdown_async(None)
        self.client.exit(None)
        await self.client.stop()


async def type_bursts(editor: Editor, places: int, seed: int = 7) -> tuple[list, int]:
    """Type statements at `places` spots; return the requests sent right before a
    pause, with the pause's length, and the keystroke count."""
    rng = random.Random(seed)
    lines = editor.text.split("\n")
    at_pause: list[tuple[str, float]] = []
    keystrokes = 0
    for _ in range(places):
        row = rng.randrange(100, LINES - 100)
        while not lines[row].strip() or lines[row].rstrip().endswith((",", "(")):
            row += 1
        above = lines[row]
        indent = above[: len(above) - len(above.lstrip())]
        if above.rstrip().endswith(":"):
            indent += "    "
        editor.insert(row, len(above), "\n" + indent)
        lines[row + 1 : row + 1] = [indent]
        row, column = row + 1, len(indent)
        statement = rng.choice(STATEMENTS)
        spot_started = time.perf_counter()
        burst_end = rng.randint(4, 12)
        for index, char in enumerate(statement):
            editor.insert(row, column, char)
            column += 1
            keystrokes += 1
            msg_id = editor.request(row, column)
            if index + 1 == burst_end or index + 1 == len(statement):
                pause = rng.uniform(0.4, 1.2)
                typed = statement[: index + 1]
                # Inside a string literal no completion is offered, by design.
                in_string = (typed.count("'") + typed.count('"')) % 2 == 1
                at_pause.append((msg_id, pause, in_string, time.perf_counter() - spot_started))
                burst_end += rng.randint(4, 12)
                await asyncio.sleep(pause)
            else:
                await asyncio.sleep(max(0.04, rng.gauss(GAP, 0.025)))
        lines[row] = indent + statement
    await asyncio.sleep(1.5)  # let the last answers arrive
    return at_pause, keystrokes


async def run_way(way: str, places: int, log_file: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    env["DS_LSP_CONFIG"] = os.devnull
    stack: list = []
    fake = None
    warm_call_ms = None
    if way == "fake":
        from tests.fake_openai_server import FakeOpenAIServer, Reply

        fake = FakeOpenAIServer(
            Reply(content=FAKE_ANSWER, format="none", chunk_size=4, delay=0.008, first_delay=0.15)
        ).start()
        stack.append(fake.stop)
        options = {"backend": "openai", "baseUrl": fake.base_url, "model": "fake"}
    elif way == "llama-server":
        from bench._models import gemma_gguf_path, running_llama_server

        # As a user starts it, and ds-lsp's default settings: the prompt style comes
        # from the server's /props.
        manager = running_llama_server(gemma_gguf_path(), [])
        base_url = manager.__enter__()
        stack.append(lambda: manager.__exit__(None, None, None))
        options = {"backend": "openai", "baseUrl": base_url, "model": "gemma-3-270m"}
        warm_call_ms = warm_server_call_ms(base_url)
    else:
        from bench._models import gemma_gguf_path

        # Default settings: the prompt style comes from the GGUF (no chat template:
        # plain continuation).
        options = {"backend": "llama_cpp", "modelPath": str(gemma_gguf_path()), "nCtx": 4096}

    editor = Editor(options, env, log_file)
    try:
        await editor.start()
        editor.open(generate_python(LINES))
        await editor.client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="dsLsp.inspectDocument", arguments=[{"uri": URI}])
        )
        rss = rss_mb(editor.client._server.pid)
        if way != "fake":  # load the model before the clock starts, as an editor would
            await editor.client.workspace_execute_command_async(
                types.ExecuteCommandParams(command="dsLsp.warmUp", arguments=[])
            )
        print(f"{way}: typing at {places} spots", file=sys.stderr, flush=True)
        at_pause, keystrokes = await type_bursts(editor, places)
        print(f"{way}: typed", file=sys.stderr, flush=True)
        server = await editor.stats()
    finally:
        try:
            await editor.stop()
        finally:
            for close in reversed(stack):
                close()

    timings = server["timings"]
    to_suggestion, answered_in_pause, overhead = [], 0, []
    in_code = [(msg_id, pause, at) for msg_id, pause, in_string, at in at_pause if not in_string]
    # With a real model: pauses of REAL_PAUSE_MIN s or more, REAL_SPOT_WARMUP s into a spot.
    settled = [
        (msg_id, pause)
        for msg_id, pause, at in in_code
        if pause >= REAL_PAUSE_MIN and at >= REAL_SPOT_WARMUP
    ]
    settled_answered = 0
    for msg_id, pause in settled:
        answered = editor.answered.get(msg_id)
        if answered is not None and answered[1]:
            settled_answered += answered[0] - editor.sent[msg_id] < pause
    # The pauses with no suggestion in time: (request, pause s, answer ms, items, s into
    # the spot).
    missed = []
    for msg_id, pause, at in in_code:
        answered = editor.answered.get(msg_id)
        if answered is None or not answered[1] or answered[0] - editor.sent[msg_id] >= pause:
            elapsed = None if answered is None else round((answered[0] - editor.sent[msg_id]) * 1e3)
            items = len(answered[1]) if answered else 0
            missed.append((msg_id, round(pause, 2), elapsed, items, round(at, 1)))
        if answered is None or not answered[1]:
            continue
        elapsed = answered[0] - editor.sent[msg_id]
        to_suggestion.append(elapsed * 1e3)
        answered_in_pause += elapsed < pause
        timing = timings.get(msg_id)
        if timing is not None:
            overhead.append(elapsed * 1e3 - timing["wait_ms"] - timing["model_ms"])
    reuse = [
        (editor.answered[msg_id][0] - editor.sent[msg_id]) * 1e3
        for msg_id, timing in timings.items()
        if timing["source"] in ("typed-ahead", "cache") and msg_id in editor.answered
    ]
    stats = server["stats"]
    result = {
        "way": way,
        "keystrokes": keystrokes,
        "pauses": len(at_pause),
        "pauses_inside_strings": len(at_pause) - len(in_code),
        "time_to_suggestion_at_pauses_ms": summary(to_suggestion),
        "pauses_in_code_answered_within_pause": f"{answered_in_pause}/{len(in_code)}",
        "pauses_over_500ms_from_3s_into_a_spot_answered": f"{settled_answered}/{len(settled)}",
        "warm_llama_server_16_token_call_ms": warm_call_ms,
        "model_ms": summary(stats["model_ms"]),
        "server_overhead_ms": summary(overhead),
        "typed_ahead_and_cache_hit_ms": summary(reuse),
        "model_requests_per_100_keystrokes": round(100 * stats["model_requests"] / keystrokes, 1),
        "cancel_to_stream_closed_ms": summary(stats["cancel_ms"]),
        "server_rss_without_model_mb": round(rss, 1),
        "kv_prefix_reuse": stats.get("prompt_reuse"),
        "counts": {k: v for k, v in stats.items() if isinstance(v, int)},
        "missed_pauses": missed,
    }
    print(json.dumps(result), flush=True)
    return result


def warm_server_call_ms(base_url: str) -> float:
    """A warm 16-token call to the server (its prompt cached): the floor for ghost text."""
    import urllib.request

    prompt = "def fibonacci(n):\n    " * 40
    body = json.dumps({"prompt": prompt, "max_tokens": 16, "temperature": 0}).encode()
    request = urllib.request.Request(
        f"{base_url}/completions", body, {"Content-Type": "application/json"}
    )
    times = []
    for _ in range(6):
        started = time.perf_counter()
        with urllib.request.urlopen(request) as response:
            response.read()
        times.append((time.perf_counter() - started) * 1e3)
    return round(statistics.median(times[1:]), 1)  # the first fills the cache


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--way", choices=["fake", "llama-server", "in-process", "all"], default="all"
    )
    parser.add_argument("--places", type=int, default=0, help="typing spots (0: per way)")
    parser.add_argument("--server-log", metavar="PATH", help="ds-lsp's debug log goes here")
    args = parser.parse_args()
    ways = ["fake", "llama-server", "in-process"] if args.way == "all" else [args.way]
    results = {}
    for way in ways:
        places = args.places or (24 if way == "fake" else 8)
        results[way] = await run_way(way, places, args.server_log)
    if "llama-server" in results and "in-process" in results:
        server = results["llama-server"]["time_to_suggestion_at_pauses_ms"]["median"]
        local = results["in-process"]["time_to_suggestion_at_pauses_ms"]["median"]
        if server and local:
            results["in_process_vs_llama_server"] = round(local / server, 2)
    print(json.dumps({"bench": "inline", **results}))


if __name__ == "__main__":
    asyncio.run(main())
