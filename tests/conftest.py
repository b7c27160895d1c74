"""Shared fixtures. Each stand-in for a model lives in its own module:
fake_openai_server (an OpenAI-compatible SSE server), tiny_gguf (a tiny real
GGUF built from the real R1 tokenizer) and llama_server (a real llama.cpp
server, built by `make llama-server`, serving such GGUFs)."""

pytest_plugins = ["tests.fake_openai_server", "tests.tiny_gguf", "tests.llama_server"]
