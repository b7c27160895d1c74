"""How long the server takes to take in one keystroke on a 5,000-line Python file.

Each didChange runs DocumentStore.change: LSP positions to offsets, the new text,
bytes and line index, and tree.edit on the syntax tree. The incremental parse runs
when a feature first reads Document.tree, so it is timed apart: right after each
keystroke, as a feature reading the tree at every keystroke would wait for it.

The file is generated deterministically from realistic code (classes, methods,
docstrings, comprehensions, f-strings, some non-ASCII text). Typing is simulated
at many places: a new line below an existing one, a statement typed character by
character, and a backspace now and then; once as typed, once with brackets and
quotes closed by the editor as they open (VS Code, JetBrains, Helix, Zed).

Prints a JSON line last: per-keystroke update time in ms, median and p95 (target
p95 <= 5 ms), and the parse a tree read then costs (parse_*).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol.types import Position, Range, TextDocumentContentChangePartial  # noqa: E402

from ds_lsp.documents import DocumentStore  # noqa: E402

LINES = 5000
PLACES = 60  # where typing happens
TARGET_P95_MS = 5.0
URI = "file:///bench/generated.py"

CHUNK = '''

class {name}Store:
    """Keeps {noun} records in memory, keyed by id — for tests and small tools."""

    def __init__(self, capacity: int = {number}) -> None:
        self.capacity = capacity
        self._items: dict[str, dict[str, object]] = {{}}
        self._order: list[str] = []

    def add(self, key: str, **fields: object) -> None:
        if len(self._items) >= self.capacity:
            oldest = self._order.pop(0)
            del self._items[oldest]
        self._items[key] = dict(fields, key=key)
        self._order.append(key)

    def find(self, **wanted: object) -> list[dict[str, object]]:
        """Every {noun} whose fields match all of `wanted` (« exact » match)."""
        return [
            item
            for item in self._items.values()
            if all(item.get(name) == value for name, value in wanted.items())
        ]

    def summary(self) -> str:
        sizes = sorted(len(str(item)) for item in self._items.values())
        middle = sizes[len(sizes) // 2] if sizes else 0
        return f"{{len(sizes)}} {noun}s, median size {{middle}} — {name}"


def load_{noun}s(path: str, limit: int | None = None) -> {name}Store:
    store = {name}Store()
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            if limit is not None and number >= limit:
                break
            key, _, rest = line.partition("\\t")
            try:
                store.add(key, value=int(rest), line=number)
            except ValueError as exc:  # not a number: keep the text
                store.add(key, value=rest.strip(), error=str(exc))
    return store
'''

NAMES = ["User", "Order", "Invoice", "Ticket", "Sensor", "Route", "Cache", "Photo", "Note"]
STATEMENTS = [
    "result = self.find(name=key, limit=10)",
    "if not items:",
    "total += sum(item['value'] for item in items)",
    'log.debug("loaded %d records from %s", count, path)',
    "return {key: value for key, value in pairs if value}",
    "self._order = [k for k in self._order if k != key]",
]


def generate_python(lines: int) -> str:
    rng = random.Random(0)
    parts = ['"""Generated for the keystroke benchmark."""\n\nimport os\n']
    count = 3
    while count < lines:
        name = rng.choice(NAMES) + str(len(parts))
        chunk = CHUNK.format(name=name, noun=name.lower(), number=rng.randint(10, 10_000))
        parts.append(chunk)
        count += chunk.count("\n")
    return "".join("".join(parts).splitlines(keepends=True)[:lines])


def change(start: Position, end: Position, text: str) -> TextDocumentContentChangePartial:
    return TextDocumentContentChangePartial(range=Range(start=start, end=end), text=text)


PAIRS = {"(": ")", "[": "]", "{": "}", '"': '"', "'": "'"}


def type_everywhere(text: str, autopairs: bool) -> tuple[list[float], list[float]]:
    """Per keystroke: ms in DocumentStore.change, and ms to get the tree afterwards."""
    rng = random.Random(1)
    store = DocumentStore()
    document = store.open(URI, "python", 0, text)
    assert document.line_count == LINES + 1 and not document.tree.root_node.has_error
    change_ms: list[float] = []
    tree_ms: list[float] = []

    def keystroke(row: int, column: int, typed: str, deleting: int = 0) -> None:
        nonlocal document
        start = Position(line=row, character=column)
        end = Position(line=row, character=column + deleting)
        edit = [change(start, end, typed)]
        began = time.perf_counter()
        document = store.change(URI, document.version + 1, edit)
        changed = time.perf_counter()
        assert document.tree is not None  # what a feature reading the tree now waits for
        change_ms.append((changed - began) * 1e3)
        tree_ms.append((time.perf_counter() - changed) * 1e3)

    for _ in range(PLACES):
        line = rng.randrange(LINES - 1)
        above = document.line(line)
        indent = above[: len(above) - len(above.lstrip())]
        if above.rstrip().endswith(":"):
            indent += "    "
        # Enter at the end of the line, then the statement, one character at a time.
        keystroke(line, len(above.encode("utf-16-le")) // 2, "\n" + indent)
        row, column = line + 1, len(indent)
        for char in rng.choice(STATEMENTS):
            if autopairs and document.line(row)[column : column + 1] == char in PAIRS.values():
                column += 1  # typing over the closer the editor inserted: no change sent
                continue
            keystroke(row, column, char + PAIRS[char] if autopairs and char in PAIRS else char)
            column += 1
            if rng.random() < 0.08:  # a typo, then backspace
                keystroke(row, column, "x")
                keystroke(row, column, "", deleting=1)
    assert any(statement in document.text for statement in STATEMENTS)
    return change_ms, tree_ms


def p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(0.95 * len(values)) - 1)]


def main() -> None:
    text = generate_python(LINES)
    began = time.perf_counter()
    assert DocumentStore().open(URI, "python", 0, text).tree is not None
    open_ms = (time.perf_counter() - began) * 1e3

    change_ms, plain_tree_ms = type_everywhere(text, autopairs=False)
    _, paired_tree_ms = type_everywhere(text, autopairs=True)
    print(
        json.dumps(
            {
                "bench": "keystroke",
                "unit": "ms_per_keystroke",
                "lines": LINES,
                "bytes": len(text.encode()),
                "keystrokes": len(change_ms),
                "open_and_parse_ms": round(open_ms, 3),
                # The update per keystroke (didChange): text, line index, tree.edit.
                "median": round(statistics.median(change_ms), 3),
                "p95": round(p95(change_ms), 3),
                "target_p95": TARGET_P95_MS,
                # The incremental parse a feature then waits for on its first tree read.
                "parse_median": round(statistics.median(plain_tree_ms), 3),
                "parse_p95": round(p95(plain_tree_ms), 3),
                # The same with brackets and quotes closed by the editor as they open.
                "parse_autopairs_median": round(statistics.median(paired_tree_ms), 3),
                "parse_autopairs_p95": round(p95(paired_tree_ms), 3),
            }
        )
    )


if __name__ == "__main__":
    main()
