"""How long the diff behind an edit takes (text_edits.minimal_replacements).

Three edits of C-like code at 1,000 to 20,000 lines: a rename on every third
line (issue 16 measured the old SequenceMatcher diff at 1.2 s for 1,000 lines
and over 50 s for 4,000), the same with a line added every 50 lines (the line
count changes, so pairing lines cannot help), and a rewrite of realistic code
with unique lines. Each is timed a few times; then the longest event-loop stall
while `minimal_replacements_off_loop` diffs 5,000 lines in a worker thread.

Prints a JSON line last: per case the median and p95 in ms and the number of
replacements, and the loop stall in ms (targets: 5,000 lines <= 2 s, stall <= 50 ms).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ds_lsp.text_edits import (  # noqa: E402
    apply_replacements,
    minimal_replacements,
    minimal_replacements_off_loop,
)

RUNS = 5


def c_like(lines: int, renamed: bool, added_every: int = 0) -> str:
    name = "total_count" if renamed else "count"
    out = []
    for n in range(lines):
        if n % 3 == 0:
            out.append(f"    {name} += item_{n % 7}(data);\n")
        elif n % 3 == 1:
            out.append("    }\n")
        else:
            out.append("\n")
        if added_every and n % added_every == 0:
            out.append("    check(data);\n")
    return "".join(out)


def realistic(lines: int, renamed: bool) -> str:
    name = "next_value" if renamed else "value"
    out = []
    for n in range(lines // 5):
        out += [
            f"static int step_{n}(struct state *s, int {name}) {{\n",
            f"    s->total += {name} * {n % 13};\n",
            "    return s->total;\n",
            "}\n",
            "\n",
        ]
    return "".join(out)


def time_case(old: str, new: str) -> dict:
    times = []
    for _ in range(RUNS):
        began = time.perf_counter()
        replacements = minimal_replacements(old, new)
        times.append((time.perf_counter() - began) * 1e3)
    assert apply_replacements(old, replacements) == new
    times.sort()
    return {
        "median_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1),
        "replacements": len(replacements),
    }


async def loop_stall(old: str, new: str) -> float:
    """The longest gap between ticks of a 1 ms timer while the diff runs off the loop."""
    longest = 0.0
    done = False

    async def ticker():
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    task = asyncio.create_task(ticker())
    await minimal_replacements_off_loop(old, new)
    done = True
    await task
    return longest * 1e3


def main() -> None:
    results = {}
    for lines in (1000, 5000, 20000):
        results[f"rename_every_third_{lines}"] = time_case(
            c_like(lines, False), c_like(lines, True)
        )
        results[f"rename_and_add_lines_{lines}"] = time_case(
            c_like(lines, False), c_like(lines, True, added_every=50)
        )
        results[f"realistic_rename_{lines}"] = time_case(
            realistic(lines, False), realistic(lines, True)
        )
    stall = asyncio.run(loop_stall(c_like(5000, False), c_like(5000, True, added_every=50)))
    print(
        json.dumps(
            {
                "bench": "diff",
                "unit": "ms",
                "runs": RUNS,
                "cases": results,
                "median": results["rename_every_third_5000"]["median_ms"],
                "p95": results["rename_every_third_5000"]["p95_ms"],
                "loop_stall_5000_ms": round(stall, 1),
                "target_ms": 2000,
                "target_stall_ms": 50,
            }
        )
    )


if __name__ == "__main__":
    main()
