"""The usual local defaults of each OpenAI-compatible server family, and a guess
of the family from a server's URL."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Preset:
    """The usual local defaults of one server family."""

    base_url: str
    model: str | None
    start_hint: str  # how to get the server going, for "no server" messages


PRESETS: dict[str, Preset] = {
    "ollama": Preset("http://localhost:11434/v1", "deepseek-r1:1.5b", "is `ollama serve` running?"),
    "lmstudio": Preset(
        "http://localhost:1234/v1",
        "deepseek-r1-distill-qwen-7b",
        "start the server in LM Studio's Developer tab",
    ),
    "llamacpp": Preset(
        "http://localhost:8080/v1",
        "deepseek-r1-distill-qwen-1.5b",  # llama-server answers to any model name
        "is `llama-server` running?",
    ),
    "vllm": Preset(
        "http://localhost:8000/v1",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "is `vllm serve` running?",
    ),
    "sglang": Preset(
        "http://localhost:30000/v1",
        "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B",
        "is `python -m sglang.launch_server` running?",
    ),
    "deepseek": Preset(
        "https://api.deepseek.com/v1",
        "deepseek-reasoner",
        "check your network connection (the DeepSeek API needs an API key in DS_LSP_API_KEY)",
    ),
}

PRESET_BY_PORT = {
    11434: "ollama",
    1234: "lmstudio",
    8080: "llamacpp",
    8000: "vllm",
    30000: "sglang",
}


def preset_for_url(base_url: str) -> str | None:
    """The preset a server URL most likely belongs to (by host, then default port)."""
    try:
        parts = urlsplit(base_url)
        port = parts.port
    except ValueError:
        return None
    if parts.hostname and parts.hostname.endswith("deepseek.com"):
        return "deepseek"
    return PRESET_BY_PORT.get(port) if port else None
