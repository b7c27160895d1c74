"""`ds-lsp edit` end to end: the real command in a subprocess, a fake model server.

Every failure path must exit non-zero with one clear line and leave the file
byte for byte as it was.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.fake_openai_server import FakeOpenAIServer, Reply
from tests.tiny_gguf import EOS, cached_tiny_gguf

SAMPLE = (
    "import math\n"
    "\n"
    "\n"
    "def area(r):\n"
    "    return math.pi * r * r\n"
    "\n"
    "\n"
    "def main():\n"
    "    print(area(2))\n"
)
TYPED = "def area(r: float) -> float:\n    return math.pi * r * r\n"
FAKE_KEY = "sk-cli-SECRET-424242"


def env_for(base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DS_LSP_")}
    env.update(
        DS_LSP_CONFIG=os.devnull,
        DS_LSP_BACKEND="openai",
        DS_LSP_BASE_URL=base_url,
        DS_LSP_MODEL="deepseek-r1:7b",
    )
    env.update(extra)
    return env


def ds_lsp(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ds_lsp", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "shapes.py"
    path.write_bytes(SAMPLE.encode())
    return path


def edit(path: Path, server: FakeOpenAIServer, *extra: str, lines="4-5", **env_extra: str):
    return ds_lsp(
        "edit",
        str(path),
        "--lines",
        lines,
        "--instruction",
        "add type hints",
        *extra,
        env=env_for(server.base_url, **env_extra),
    )


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("ds-lsp:")]
    assert len(lines) == 1, text
    return lines[0]


def test_edit_prints_a_diff_streams_reasoning_and_leaves_the_file(sample, fake_openai):
    fake_openai.enqueue(
        Reply(reasoning="Add float hints to area.", content=f"Here:\n```python\n{TYPED}```\n")
    )

    done = edit(sample, fake_openai)

    assert done.returncode == 0, done.stderr
    assert "-def area(r):" in done.stdout
    assert "+def area(r: float) -> float:" in done.stdout
    assert done.stdout.startswith("--- a/")
    assert "Add float hints to area." in done.stderr  # the reasoning, live
    assert "<think>" not in done.stdout + done.stderr
    assert sample.read_bytes() == SAMPLE.encode()


def test_edit_write_changes_exactly_the_selected_lines(sample, fake_openai):
    fake_openai.enqueue(Reply(reasoning="ok", content=f"```python\n{TYPED}```", format="inline"))

    done = edit(sample, fake_openai, "--write")

    assert done.returncode == 0, done.stderr
    assert (
        sample.read_bytes()
        == SAMPLE.replace("def area(r):\n    return math.pi * r * r\n", TYPED).encode()
    )


def test_the_prompt_follows_r1_usage(sample, fake_openai):
    fake_openai.enqueue(Reply(reasoning="ok", content=f"```python\n{TYPED}```"))

    edit(sample, fake_openai)

    sent = fake_openai.requests[-1]
    assert sent["model"] == "deepseek-r1:7b"
    assert (sent["temperature"], sent["top_p"]) == (0.6, 0.95)
    assert [m["role"] for m in sent["messages"]] == ["user"]  # no system prompt
    prompt = sent["messages"][0]["content"]
    assert "add type hints" in prompt
    assert "def area(r):" in prompt and "def main():" in prompt


def test_crlf_files_keep_their_line_endings(tmp_path, fake_openai):
    path = tmp_path / "crlf.py"
    original = SAMPLE.replace("\n", "\r\n").encode()
    path.write_bytes(original)
    fake_openai.enqueue(Reply(reasoning="ok", content=f"```python\n{TYPED}```"))

    done = edit(path, fake_openai, "--write")

    assert done.returncode == 0, done.stderr
    expected = SAMPLE.replace("def area(r):\n    return math.pi * r * r\n", TYPED)
    assert path.read_bytes() == expected.replace("\n", "\r\n").encode()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


FAILURES = {
    "cut off while reasoning": (
        Reply(reasoning="Let me think about this for a long", finish_reason="length"),
        "cut off while still reasoning",
    ),
    "reasoning only, no close tag (inline)": (
        Reply(
            content="Okay so the user wants hints",
            format="inline_prefilled",
            finish_reason="length",
        ),
        "cut off",
    ),
    "prose only": (
        Reply(reasoning="ok", content="I would add type hints to the function area."),
        "only prose",
    ),
    "lazy placeholder": (
        Reply(
            reasoning="ok",
            content="```python\ndef area(r: float) -> float:\n    # ... existing code ...\n```",
        ),
        "placeholder",
    ),
    "several blocks in other languages": (
        Reply(reasoning="ok", content="```js\nlet a = 1;\n```\n```rust\nfn a() {}\n```"),
        "refusing to guess",
    ),
    "a parse that got worse": (
        Reply(reasoning="ok", content="```python\ndef area(r: float) -> float\n    return (\n```"),
        "parse error",
    ),
    "empty answer": (Reply(reasoning="I have nothing to add.", content=""), "no answer"),
    "server aborts": (Reply(reasoning="ok", content="```py\nx", finish_reason="abort"), "abort"),
    "HTTP 500": (Reply(status=500), "500"),
    "malformed stream": (
        Reply(reasoning="ok", content=f"```python\n{TYPED}```", malformed=True),
        "malformed",
    ),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_every_failure_exits_non_zero_with_one_line_and_leaves_the_file(case, sample, fake_openai):
    reply, says = FAILURES[case]
    fake_openai.enqueue(reply)

    done = edit(sample, fake_openai, "--write")

    assert done.returncode == 1, done.stderr
    assert says in one_line(done.stderr)
    assert done.stdout == ""
    assert sample.read_bytes() == SAMPLE.encode()


def test_no_server_says_where_it_looked(sample):
    url = f"http://127.0.0.1:{closed_port()}/v1"
    done = ds_lsp("edit", str(sample), "--lines", "4-5", "-i", "hints", "--write", env=env_for(url))

    assert done.returncode == 1
    assert url in one_line(done.stderr)
    assert sample.read_bytes() == SAMPLE.encode()


def test_a_refused_api_key_is_never_printed(sample, fake_openai):
    fake_openai.enqueue(Reply(status=401))

    done = edit(sample, fake_openai, "--write", DS_LSP_API_KEY=FAKE_KEY)

    assert done.returncode == 1
    assert "401" in one_line(done.stderr)
    assert FAKE_KEY not in done.stderr + done.stdout
    assert fake_openai.auth_headers[-1] == f"Bearer {FAKE_KEY}"
    assert sample.read_bytes() == SAMPLE.encode()


def test_the_reasoning_budget_over_http_stops_and_says_so(sample, fake_openai):
    fake_openai.enqueue(
        Reply(reasoning="word " * 400, content=f"```python\n{TYPED}```", chunk_size=5)
    )

    done = edit(sample, fake_openai, "--write", DS_LSP_REASONING_BUDGET="20")

    assert done.returncode == 1
    assert "budget" in one_line(done.stderr)
    assert sample.read_bytes() == SAMPLE.encode()


def test_a_file_saved_while_the_model_works_is_not_overwritten(sample, fake_openai):
    # The server holds its answer until the user has saved: no timing to race.
    fake_openai.enqueue(Reply(reasoning="thinking", content=f"```python\n{TYPED}```", hold=True))
    saved_by_user = SAMPLE + "# the user typed this\n"
    problems: list[Exception] = []

    def save_meanwhile():
        try:
            fake_openai.served(0)  # the request came: the command has read the file
        except TimeoutError as exc:  # the command never asked the model
            problems.append(exc)
            return
        try:
            sample.write_bytes(saved_by_user.encode())
        finally:
            fake_openai.release(0)  # now the answer comes

    saver = threading.Thread(target=save_meanwhile)
    saver.start()
    done = edit(sample, fake_openai, "--write")
    saver.join()

    assert problems == []
    assert done.returncode == 1
    assert "changed while the model was working" in one_line(done.stderr)
    assert sample.read_bytes() == saved_by_user.encode()


@pytest.mark.parametrize(
    ("lines", "says"),
    [("0-2", "at least 1"), ("5-4", "not after END"), ("4-99", "only 9 lines"), ("x", "START-END")],
)
def test_bad_line_ranges_are_usage_errors(sample, fake_openai, lines, says):
    done = edit(sample, fake_openai, "--write", lines=lines)

    assert done.returncode == 2
    assert says in one_line(done.stderr)
    assert fake_openai.requests == []  # the model was never asked
    assert sample.read_bytes() == SAMPLE.encode()


def test_a_missing_file_is_a_usage_error(tmp_path, fake_openai):
    done = edit(tmp_path / "nope.py", fake_openai)

    assert done.returncode == 2
    assert "no such file" in one_line(done.stderr)


# The tiny model says exactly this: a short reasoning, then one line of code.
DOUBLING_SCRIPT = (
    ["\n", "Okay", ",", " double", " it", ".", "</think>"],
    ["</think>", "\n\n", "return", " value", " *", " ", "2", EOS],
)


@pytest.fixture(scope="session")
def doubling_gguf_path() -> Path:
    return cached_tiny_gguf("tiny-r1-doubling", script=DOUBLING_SCRIPT)


@pytest.mark.llama
def test_the_embedded_backend_edits_a_file_for_real(tmp_path, doubling_gguf_path):
    """llama-cpp in process: chat template, reasoning split, answer to code, reindent, write."""
    path = tmp_path / "calc.py"
    path.write_bytes(b"def double(value):\n    return value\n")
    env = env_for("unused", DS_LSP_BACKEND="llama_cpp", DS_LSP_MODEL_PATH=str(doubling_gguf_path))

    done = ds_lsp("edit", str(path), "--lines", "2", "-i", "return it doubled", "--write", env=env)

    assert done.returncode == 0, done.stderr
    assert path.read_bytes() == b"def double(value):\n    return value * 2\n"
    assert "+    return value * 2" in done.stdout
    assert "Okay, double it." in done.stderr  # the reasoning, streamed
    assert "</think>" not in done.stdout + done.stderr


@pytest.mark.llama
def test_the_embedded_backend_runs_for_real_and_refuses_prose(sample, tiny_gguf_path):
    """The tiny model answers prose ("Hello from a tiny model!"): refused, the file kept."""
    env = env_for("unused", DS_LSP_BACKEND="llama_cpp", DS_LSP_MODEL_PATH=str(tiny_gguf_path))
    env["DS_LSP_MAX_TOKENS"] = "48"

    done = ds_lsp("edit", str(sample), "--lines", "4-5", "-i", "hints", "--write", env=env)

    assert done.returncode == 1
    assert one_line(done.stderr)
    assert sample.read_bytes() == SAMPLE.encode()


def test_a_missing_model_file_names_the_path_and_the_fix(sample, tmp_path):
    missing = tmp_path / "nowhere" / "r1.gguf"
    env = env_for("unused", DS_LSP_BACKEND="llama_cpp", DS_LSP_MODEL_PATH=str(missing))

    done = ds_lsp("edit", str(sample), "--lines", "4-5", "-i", "hints", env=env)

    assert done.returncode == 1
    line = one_line(done.stderr)
    assert str(missing) in line and "models pull" in line
    assert sample.read_bytes() == SAMPLE.encode()
