"""How long the streaming reasoning splitter takes per streamed token.

It runs on every token of every generation, so it must stay far below the
time a token takes to generate (milliseconds). Prints a JSON line last:
per-token feed time in microseconds, median and p95 over many runs.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from ds_lsp.reasoning import ReasoningSplitter

RUNS = 200


def r1_like_stream(rng: random.Random) -> list[str]:
    """About 1,500 token-sized chunks: reasoning, </think>, a fenced answer."""
    words = ["Okay,", "so", "the", "user", "wants", "a < b", "</th", "ink", "<think", "x", "\n"]
    reasoning = [rng.choice(words) + " " for _ in range(1200)]
    answer = ["```python\n"] + [
        rng.choice(["def", " f", "(x)", ":", "\n", '"</think>"']) for _ in range(300)
    ]
    return reasoning + ["</think>", "\n\n"] + answer + ["\n```"]


def main() -> None:
    rng = random.Random(0)
    per_token_us = []
    for _ in range(RUNS):
        chunks = r1_like_stream(rng)
        splitter = ReasoningSplitter(open=True)
        start = time.perf_counter()
        for chunk in chunks:
            splitter.feed(chunk)
        splitter.finish()
        per_token_us.append((time.perf_counter() - start) / len(chunks) * 1e6)
    per_token_us.sort()
    print(
        json.dumps(
            {
                "bench": "reasoning_split",
                "unit": "us_per_token",
                "runs": RUNS,
                "median": round(statistics.median(per_token_us), 3),
                "p95": round(per_token_us[int(0.95 * len(per_token_us)) - 1], 3),
            }
        )
    )


if __name__ == "__main__":
    main()
