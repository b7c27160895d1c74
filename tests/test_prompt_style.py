"""The ghost-text prompt style fits the model: from a GGUF (the fixture GGUFs, built
from the real R1 tokenizer), from a server's /props or model name, and the user's
settings win."""

from __future__ import annotations

import pytest

from ds_lsp.backends.llama_cpp import LlamaCppBackend
from ds_lsp.completion_prompts import PromptStyle
from ds_lsp.prompt_style import chosen_style, style_from_gguf, style_from_server
from tests.test_llama_cpp_backend import CHATML

R1_TEMPLATE = "{{ '<｜Assistant｜>' }}<think>\n"


def no_tokens(text: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("template", "has_token", "expected"),
    [
        (R1_TEMPLATE, lambda text: True, PromptStyle("chat")),  # R1 wins over its FIM tokens
        (CHATML, lambda text: text == "<|fim_prefix|>", PromptStyle("fim", "qwen2.5-coder")),
        (None, lambda text: text == "<fim_prefix>", PromptStyle("fim", "starcoder")),
        (None, no_tokens, PromptStyle("continuation")),  # gemma-3-270m's GGUF
        (CHATML, no_tokens, PromptStyle("continuation")),  # a chat model that does not think
    ],
)
def test_the_style_from_a_gguf(template, has_token, expected):
    style = style_from_gguf(template, has_token)
    assert (style.style, style.fim_template) == (expected.style, expected.fim_template)
    assert style.reason


@pytest.mark.parametrize(
    ("model", "template", "preset", "expected"),
    [
        ("m", R1_TEMPLATE, None, "chat"),  # llama-server's /props: an R1 template
        ("m", "chatml-ish {{ messages }}", None, "continuation"),  # a template, no thinking
        ("gemma", "", None, "continuation"),  # llama-server with no template at all
        ("deepseek-r1:7b", None, "ollama", "chat"),
        ("qwen2.5-coder:7b-base", None, "ollama", "fim"),
        ("deepseek-reasoner", None, "deepseek", "chat"),
        ("some-model", None, "vllm", "chat"),  # nothing tells: the instruction prompt
    ],
)
def test_the_style_from_a_server(model, template, preset, expected):
    assert style_from_server(model, template, preset).style == expected


def test_the_users_settings_win():
    detected = PromptStyle("continuation", None, "detected")
    assert chosen_style(detected).style == "continuation"
    assert chosen_style(detected, "chat").style == "chat"
    fim = chosen_style(detected, "chat", fim_template="starcoder")
    assert (fim.style, fim.fim_template) == ("fim", "starcoder")


@pytest.mark.llama
async def test_the_r1_fixture_gguf_gets_the_instruction_prompt(tiny_gguf_path):
    backend = LlamaCppBackend(str(tiny_gguf_path), n_ctx=2048)
    try:
        style = await backend.prompt_style()
    finally:
        await backend.aclose()
    assert style.style == "chat"
    assert "thinks" in style.reason


@pytest.mark.llama
async def test_a_gguf_with_qwens_fim_tokens_and_no_thinking_template_gets_fim(tmp_path):
    from tests.tiny_gguf import cached_tiny_gguf

    backend = LlamaCppBackend(str(cached_tiny_gguf("tiny-chatml", chat_template=CHATML)))
    try:
        style = await backend.prompt_style()
    finally:
        await backend.aclose()
    assert (style.style, style.fim_template) == ("fim", "qwen2.5-coder")
