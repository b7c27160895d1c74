"""Protocol fuzzing at scale: 100,000+ messages at one server process.

The same messages and checks as tests/test_fuzz_protocol.py (tests/protocol_fuzz.py:
bad framing including a 2 GB Content-Length, bad JSON, wrong types, unknown
methods, missing fields, out-of-range positions, unknown URIs, duplicate ids,
stray cancels), with the fake model server behind the server. A crash (the
process gone) or a request left unanswered is counted, and the server restarted.

Prints a JSON line last: messages sent, requests checked, crashes, failures,
and the exception types the server logged (tracebacks it survived).

    python bench/fuzz.py [--messages 100000]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fake_openai_server import FakeOpenAIServer, Reply  # noqa: E402
from tests.protocol_fuzz import FuzzSession, messages  # noqa: E402

BATCHES_PER_ROUND = 200


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=100_000)
    args = parser.parse_args()

    model = FakeOpenAIServer(Reply(content="x = 1")).start()
    began = time.perf_counter()
    stderr_seen = []
    with tempfile.TemporaryDirectory() as tmp:
        session = FuzzSession(Path(tmp), model.base_url, raise_on_failure=False)

        @settings(
            max_examples=BATCHES_PER_ROUND,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(messages(), min_size=5, max_size=40))
        def round_of_batches(batch):
            session.run_batch(batch)

        while session.tally.messages < args.messages:
            server = session.server
            round_of_batches()
            if session.server is not server:  # restarted after a crash
                stderr_seen.append(server.stderr_text())
            print(f"fuzz: {session.tally.messages} messages", file=sys.stderr, flush=True)
        exit_code = session.close()
        stderr_seen.append(session.server.stderr_text())
    model.stop()

    logged = Counter(
        match[1]
        for text in stderr_seen
        for match in re.finditer(r"^(\w+(?:Error|Exception))\b", text, re.MULTILINE)
    )
    tally = session.tally
    print(
        json.dumps(
            {
                "bench": "fuzz",
                "messages": tally.messages,
                "requests_checked": tally.requests_checked,
                "crashes": tally.crashes,
                "failures": len(tally.failures),
                "first_failures": tally.failures[:3],
                "clean_exit": exit_code == 0,
                "exceptions_logged": dict(logged.most_common()),
                "seconds": round(time.perf_counter() - began, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
