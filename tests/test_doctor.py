"""`ds-lsp doctor` through the real command: each failure comes with its fix."""

from __future__ import annotations

import socket

import pytest

from tests.test_cli_edit import ds_lsp, env_for


def closed_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_all_good_against_a_reachable_server(fake_openai):
    done = ds_lsp("doctor", env=env_for(fake_openai.base_url))

    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ok  ] tree-sitter grammars: python" in done.stdout
    assert "[ok  ] backend:" in done.stdout
    assert done.stdout.rstrip().endswith("all good")


def test_no_server_fails_with_the_url_and_a_hint():
    url = closed_url()
    done = ds_lsp("doctor", env=env_for(url, DS_LSP_PRESET="ollama", DS_LSP_BASE_URL=url))

    assert done.returncode == 1
    assert f"[FAIL] backend: no model server at {url}" in done.stdout
    assert "ollama serve" in done.stdout
    assert "1 problem(s) found" in done.stdout


def test_a_missing_default_model_says_to_pull_it(tmp_path):
    env = env_for("unused", DS_LSP_BACKEND="llama_cpp", DS_LSP_MODELS_DIR=str(tmp_path))

    done = ds_lsp("doctor", env=env)

    assert done.returncode == 1
    assert f"[FAIL] model: no GGUF at {tmp_path}" in done.stdout
    assert "fix: run `ds-lsp models pull`" in done.stdout
    assert "[ok  ] llama-cpp-python" in done.stdout


def test_bad_settings_are_listed_with_the_fix(fake_openai):
    env = env_for(fake_openai.base_url, DS_LSP_TOP_P="2")

    done = ds_lsp("doctor", env=env)

    assert done.returncode == 1
    assert "[FAIL] settings: DS_LSP_TOP_P='2' is not valid" in done.stdout


@pytest.mark.llama
def test_the_embedded_model_loads(tiny_gguf_path):
    env = env_for("unused", DS_LSP_BACKEND="llama_cpp", DS_LSP_MODEL_PATH=str(tiny_gguf_path))

    done = ds_lsp("doctor", env=env)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "[ok  ] model:" in done.stdout
    assert "[ok  ] backend:" in done.stdout
    # The ghost-text prompt it chose, and why: the fixture is an R1 distill.
    assert "ghost text: chat prompt (its chat template thinks" in done.stdout
