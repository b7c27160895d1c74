"""Documents that are not the usual source file: what a keystroke and a completion's
context cost in each, on the server's event loop.

Rows (issue 16, "Documents"):
- python_5000_lines: the usual case, for comparison (bench/keystroke.py's file);
- python_10mb: 10 MB of Python (about 230,000 lines): over the syntax-tree limit;
- minified_1mb_line: a 1 MB line of JavaScript between a few short ones, the cursor
  in the middle of it;
- binary_1mb: 1 MB of random bytes, decoded as the server's reader decodes them
  (invalid UTF-8 replaced by U+FFFD), under an unknown language id;
- unknown_language: 5,000 lines under a language id with no grammar.

For each: the open (didOpen, and the first read of the tree), the keystroke
(DocumentStore.change, and the text around the cursor the inline engine compares:
all the per-keystroke work that grows with the document), and the context of a
completion (context.gather, with the default budget of 1,536 tokens). The
malloc thresholds are raised as `ds-lsp serve` raises them (ds_lsp.malloc_tuning).

Prints one JSON line per row, then a last line with them all and the targets:
keystroke p95 <= 5 ms on a 10 MB file.

    python bench/documents.py
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from keystroke import generate_python  # noqa: E402
from lsprotocol.types import Position, Range, TextDocumentContentChangePartial  # noqa: E402

from ds_lsp.context.gather import gather  # noqa: E402
from ds_lsp.documents import DocumentStore  # noqa: E402
from ds_lsp.malloc_tuning import keep_big_allocations  # noqa: E402
from ds_lsp.suggestion_cache import TextAround  # noqa: E402

KEYSTROKES = 300
CONTEXTS = 50
BUDGET_TOKENS = 1536
TARGET_KEYSTROKE_P95_MS = 5.0


def python_10mb() -> str:
    unit = generate_python(5000)
    return (unit * (10_000_000 // len(unit) + 1))[:10_000_000]


def minified_line() -> str:
    code = "var a=function(b,c){return b+c*2};if(a(1,2)>3){console.log('big')}"
    line = (code * (1_000_000 // len(code) + 1))[:1_000_000]
    return f"// bundle\n'use strict';\n{line}\nmodule.exports = a;\n"


def binary() -> str:
    data = random.Random(0).randbytes(1_000_000)
    return data.decode("utf-8", "replace")  # as ds_lsp.transport reads a didOpen


def unknown_language() -> str:
    return "\n".join(
        f"       MOVE WS-COUNT-{n} TO WS-TOTAL-{n % 7}.  *> step {n}" for n in range(5000)
    )


ROWS = {
    "python_5000_lines": (lambda: generate_python(5000), "python", "file:///b/usual.py"),
    "python_10mb": (python_10mb, "python", "file:///b/huge.py"),
    "minified_1mb_line": (minified_line, "javascript", "file:///b/bundle.min.js"),
    "binary_1mb": (binary, "octet-stream", "file:///b/blob.bin"),
    "unknown_language": (unknown_language, "cobol", "file:///b/payroll.cbl"),
}


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return round(statistics.median(ordered), 3), round(p95, 3)


def cursor_spots(store: DocumentStore, uri: str, count: int) -> list[tuple[int, int]]:
    """Places to type at, spread over the document: (line, character in UTF-16)."""
    document = store.get(uri)
    rng = random.Random(1)
    spots = []
    for _ in range(count):
        line = rng.randrange(document.line_count)
        length = len(document.line(line).encode("utf-16-le")) // 2
        spots.append((line, rng.randrange(length + 1)))
    return spots


def measure(name: str) -> dict:
    make, language_id, uri = ROWS[name]
    text = make()
    store = DocumentStore()
    began = time.perf_counter()
    document = store.open(uri, language_id, 1, text)
    _ = document.tree
    open_ms = (time.perf_counter() - began) * 1e3

    keystroke_ms: list[float] = []
    for line, character in cursor_spots(store, uri, KEYSTROKES):
        where = Position(line=line, character=character)
        change = TextDocumentContentChangePartial(range=Range(start=where, end=where), text="x")
        began = time.perf_counter()
        document = store.change(uri, document.version + 1, [change])
        TextAround.at(document.text, document.offset_at(Position(line, character + 1)))
        keystroke_ms.append((time.perf_counter() - began) * 1e3)

    context_ms: list[float] = []
    prompt_chars: list[int] = []
    for line, character in cursor_spots(store, uri, CONTEXTS):
        began = time.perf_counter()
        offset = document.offset_at(Position(line, character))
        context = gather(document, offset, [], BUDGET_TOKENS)
        context_ms.append((time.perf_counter() - began) * 1e3)
        prompt_chars.append(len(context.prefix) + len(context.suffix))

    keystroke_p50, keystroke_p95 = percentiles(keystroke_ms)
    context_p50, context_p95 = percentiles(context_ms)
    return {
        "row": name,
        "bytes": document.content.byte_length,
        "lines": document.line_count,
        "tree": document.tree is not None,
        "open_ms": round(open_ms, 1),
        "keystroke_p50_ms": keystroke_p50,
        "keystroke_p95_ms": keystroke_p95,
        "context_p50_ms": context_p50,
        "context_p95_ms": context_p95,
        "context_chars_max": max(prompt_chars),
    }


def main() -> None:
    keep_big_allocations()  # as `ds-lsp serve` does
    rows = []
    for name in ROWS:
        row = measure(name)
        print(json.dumps(row), flush=True)
        rows.append(row)
    huge = next(row for row in rows if row["row"] == "python_10mb")
    print(
        json.dumps(
            {
                "bench": "documents",
                "rows": rows,
                "median": huge["keystroke_p50_ms"],
                "p95": huge["keystroke_p95_ms"],
                "target_keystroke_p95_ms_10mb": TARGET_KEYSTROKE_P95_MS,
            }
        )
    )


if __name__ == "__main__":
    main()
