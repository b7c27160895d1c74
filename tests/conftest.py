"""Shared fixtures. Each stand-in for a model lives in its own module:
fake_openai_server (an OpenAI-compatible SSE server) and tiny_gguf (a tiny real
GGUF built from the real R1 tokenizer)."""

pytest_plugins = ["tests.fake_openai_server", "tests.tiny_gguf", "tests.llama_server"]
