"""The soak: one server process, simulated typing with inline completions, plus
edits and chats, for 30 minutes (`--minutes`), against the fake model server on
127.0.0.1. Not run in CI: `make bench-soak`.

The user types a line character by character (a didChange each), asking for
ghost text every few keystrokes, then takes the line out again (as an undo
would), so the document stays the same size. Every EDIT_EVERY keystrokes an
edit of two lines; every CHAT_EVERY a selection added to the chat and a
question sent (chats are written on disk; a new chat every few questions).

Prints progress to stderr, and a JSON line last: requests served and errors,
inline completion p95 over the first and the last tenth of the run, and the
server's RSS after warm-up and at the end (target: growth <= 20%).

    python bench/soak.py [--minutes 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fake_openai_server import FakeOpenAIServer, Reply  # noqa: E402
from tests.raw_lsp import RawServer, edit_as_changes, server_env  # noqa: E402

COMPLETE_EVERY = 4  # keystrokes
EDIT_EVERY = 200
CHAT_EVERY = 300
NEW_CHAT_EVERY = 10  # questions
TYPED = "    total = total + compute_value(item, index)  # running sum"
FUNCTIONS = 60
SOURCE = "".join(
    f"def step_{n}(items, total=0):\n"
    f"    for index, item in enumerate(items):\n"
    f"        total += item * {n}\n"
    f"    return total\n\n\n"
    for n in range(FUNCTIONS)
)
TYPING_LINE = 3  # typed lines go in after "total += item * 0"
EDITED = {"start": {"line": 0, "character": 0}, "end": {"line": 3, "character": 16}}
EDIT_ANSWER = (
    "```python\ndef step_0(items: list[int], total: int = 0) -> int:\n"
    "    for index, item in enumerate(items):\n        total += item * 0\n"
    "    return total\n```"
)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[max(0, round(0.95 * len(ordered)) - 1)], 2) if ordered else 0.0


class Soak:
    def __init__(self, server: RawServer, fake: FakeOpenAIServer, uri: str) -> None:
        self.server = server
        self.fake = fake
        self.uri = uri
        self.version = 1
        self.next_id = 0
        self.served = 0
        self.errors: list[str] = []
        self.timings: dict[str, list[tuple[float, float]]] = {}  # kind -> (at, ms)
        self.began = time.monotonic()
        self.questions = 0

    def request(self, kind: str, method: str, params: dict, ok=None) -> dict | None:
        self.next_id += 1
        msg_id = self.next_id
        sent = time.monotonic()
        self.server.request(msg_id, method, params)
        try:
            [response] = self.server.wait_for(msg_id, timeout=60)
        except AssertionError as exc:
            self.errors.append(f"{kind}: {str(exc)[:300]}")
            return None
        finally:
            self.server.responses.pop(msg_id, None)  # bounded: the client keeps nothing
        ms = (time.monotonic() - sent) * 1000
        self.timings.setdefault(kind, []).append((sent - self.began, ms))
        result = response.get("result")
        if "error" in response or (ok is not None and not ok(result)):
            self.errors.append(f"{kind}: {json.dumps(response)[:300]}")
            return None
        self.served += 1
        return result

    def execute(self, kind: str, command: str, argument: dict, ok) -> dict | None:
        params = {"command": command, "arguments": [argument]}
        return self.request(kind, "workspace/executeCommand", params, ok)

    def echo(self, params: dict) -> None:
        """As an editor does: an applied edit comes back as a didChange (ds-lsp checks
        it). The edits go bottom first, so each one's range still holds."""
        changes = edit_as_changes(params["edit"]).get(self.uri)
        if changes:
            self.version += 1
            self.server.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": self.uri, "version": self.version},
                    "contentChanges": changes,
                },
            )

    def change(self, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.version += 1
        span = {
            "start": {"line": start[0], "character": start[1]},
            "end": {"line": end[0], "character": end[1]},
        }
        self.server.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": self.uri, "version": self.version},
                "contentChanges": [{"range": span, "text": text}],
            },
        )

    def type_a_line(self, keystrokes: int) -> int:
        """Types TYPED on a new line below TYPING_LINE, then takes it out again."""
        line = TYPING_LINE + 1
        self.change((line, 0), (line, 0), "\n")
        for column, char in enumerate(TYPED):
            self.change((line, column), (line, column), char)
            keystrokes += 1
            if keystrokes % COMPLETE_EVERY == 0:
                self.complete(line, column + 1)
            if keystrokes % EDIT_EVERY == 0:
                self.edit()
            if keystrokes % CHAT_EVERY == 0:
                self.chat()
            time.sleep(0.005)  # a fast typist, and room for the server's background work
        self.change((line, 0), (line + 1, 0), "")
        return keystrokes

    def complete(self, line: int, character: int) -> None:
        self.fake.reset()  # also keeps the fake server's records bounded
        self.fake.enqueue(Reply(content="total", format="none"))
        params = {
            "textDocument": {"uri": self.uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 2},  # automatic, as typing asks
        }
        self.request("inline", "textDocument/inlineCompletion", params)

    def edit(self) -> None:
        self.fake.reset()
        self.fake.enqueue(Reply(reasoning="Type hints.", content=EDIT_ANSWER))
        argument = {"uri": self.uri, "range": EDITED, "instruction": "add type hints"}
        self.execute(
            "edit",
            "dsLsp.editSelection",
            argument,
            lambda r: r["status"] in ("applied", "unchanged", "previewed"),
        )

    def chat(self) -> None:
        self.questions += 1
        if self.questions % NEW_CHAT_EVERY == 0:
            self.execute("chat", "dsLsp.newChat", {}, lambda r: "uri" in r)
        added = self.execute(
            "chat", "dsLsp.addToChat", {"uri": self.uri, "range": EDITED}, lambda r: "uri" in r
        )
        if added is None:
            return
        chat = Path(added["uri"].removeprefix("file://"))
        chat.write_text(chat.read_text() + "What does this do?\n")
        self.fake.reset()
        self.fake.enqueue(Reply(reasoning="It sums.", content="It adds up the items."))
        self.execute(
            "chat",
            "dsLsp.sendChat",
            {"uri": added["uri"]},
            lambda r: r["status"] == "answered",
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=30.0)
    args = parser.parse_args()
    duration = args.minutes * 60

    fake = FakeOpenAIServer().start()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        workspace = root / "workspace"
        workspace.mkdir()
        source = workspace / "steps.py"
        source.write_text(SOURCE)
        server = RawServer(server_env(root), root)
        server.request(
            "init",
            "initialize",
            {
                "processId": None,
                "rootUri": workspace.as_uri(),
                "capabilities": {
                    "textDocument": {"inlineCompletion": {}},
                    "workspace": {"applyEdit": True, "workspaceEdit": {"documentChanges": True}},
                },
                "initializationOptions": {
                    "dsLsp": {"backend": "openai", "baseUrl": fake.base_url, "model": "m"}
                },
            },
        )
        server.wait_for("init")
        server.notify("initialized", {})
        uri = source.as_uri()
        item = {"uri": uri, "languageId": "python", "version": 1, "text": SOURCE}
        server.notify("textDocument/didOpen", {"textDocument": item})
        soak = Soak(server, fake, uri)
        server.on_apply_edit = soak.echo

        keystrokes = 0
        rss_start = None
        last_report = time.monotonic()
        while time.monotonic() - soak.began < duration:
            keystrokes = soak.type_a_line(keystrokes)
            elapsed = time.monotonic() - soak.began
            if rss_start is None and elapsed >= min(60.0, duration / 10):
                rss_start = rss_mb(server.process.pid)  # after warm-up
            if time.monotonic() - last_report >= 30:
                last_report = time.monotonic()
                print(
                    f"soak: {elapsed / 60:.1f} min, {soak.served} served, "
                    f"{len(soak.errors)} errors, RSS {rss_mb(server.process.pid):.1f} MB",
                    file=sys.stderr,
                    flush=True,
                )
            server.notifications.clear()  # the client keeps nothing
            server.server_requests.clear()
            server.raw_output.clear()
        rss_end = rss_mb(server.process.pid)
        alive = server.process.poll() is None
        exit_code = server.close()
    fake.stop()

    inline = soak.timings.get("inline", [])
    tenth = duration / 10
    first = [ms for at, ms in inline if at < tenth]
    last = [ms for at, ms in inline if at >= duration - tenth]
    rss_start = rss_start or rss_end
    print(
        json.dumps(
            {
                "bench": "soak",
                "minutes": args.minutes,
                "keystrokes": keystrokes,
                "requests_served": soak.served,
                "errors": len(soak.errors),
                "first_errors": soak.errors[:3],
                "by_kind": {kind: len(times) for kind, times in soak.timings.items()},
                "inline_median_ms": round(statistics.median(ms for _, ms in inline), 2)
                if inline
                else 0.0,
                "inline_p95_start_ms": p95(first),
                "inline_p95_end_ms": p95(last),
                "edit_p95_ms": p95([ms for _, ms in soak.timings.get("edit", [])]),
                "chat_p95_ms": p95([ms for _, ms in soak.timings.get("chat", [])]),
                "rss_start_mb": round(rss_start, 1),
                "rss_end_mb": round(rss_end, 1),
                "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
                "target_rss_growth_pct": 20,
                "server_alive_at_end": alive,
                "clean_exit": exit_code == 0,
            }
        )
    )


if __name__ == "__main__":
    main()
