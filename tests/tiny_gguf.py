"""A tiny real GGUF that stands in for an R1 distill in tests (a pytest plugin).

`build_tiny_gguf` writes a 2-block, 64-wide `qwen2` model with the real
DeepSeek-R1-Distill-Qwen tokenizer and chat template (tests/fixtures), so
llama-cpp-python runs its real path on it: loading, the chat template,
special tokens, streaming, stopping, cancellation and the KV cache.

Random weights would babble random tokens, so on top of them the model is
wired as a bigram lookup table that says a fixed script whatever the
temperature. Each scripted token gets its own basis direction of the
embedding (attention and feed-forward are small random noise next to it), and
the output row of the token that should follow it points the same way, with a
logit margin of about 30. The script starts from the "\\n" that ends the
prompt (`<｜Assistant｜><think>\\n`) and from the "\\n\\n" after `</think>`
(the "reasoning off" prefill and the forced end of the reasoning):

- `tiny_gguf_path`: reasons `Okay, I should say hello.`, closes `</think>`,
  answers `Hello from a tiny model!`, then end of sentence.
- `looping_gguf_path`: reasons `Hmm, let me think again.` over and over, never
  closing (for cancellation, max tokens, the reasoning budget); after "\\n\\n"
  it gives the same answer.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import gguf
import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "r1-distill-qwen-tokenizer.json.gz"
CACHE_DIR = Path(__file__).parent / ".cache"

EOS = "<｜end▁of▁sentence｜>"
REASONING = "Okay, I should say hello."
LOOPING_REASONING_STEP = "Hmm, let me think again."
ANSWER = "Hello from a tiny model!"

_ANSWER_PATH = ["</think>", "\n\n", "Hello", " from", " a", " tiny", " model", "!", EOS]
FINISHING_SCRIPT: tuple[Sequence[str], ...] = (
    ["\n", "Okay", ",", " I", " should", " say", " hello", ".", "</think>"],
    _ANSWER_PATH,
)
# ". Hmm" goes back to ",": the reasoning never ends.
LOOPING_SCRIPT: tuple[Sequence[str], ...] = (
    ["\n", "Hmm", ",", " let", " me", " think", " again", ".", " Hmm", ","],
    _ANSWER_PATH,
)

N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_BLOCKS = 2
SEED = 1234


def load_tokenizer() -> dict:
    with gzip.open(FIXTURE, "rt", encoding="utf-8") as f:
        return json.load(f)


def later_chat_template(template: str) -> str:
    """The later upstream R1 template: the generation prompt also opens `<think>`."""
    original = "{{'<｜Assistant｜>'}}{% endif %}"
    assert template.endswith(original), "the fixture's template changed"
    return template[: -len(original)] + "{{'<｜Assistant｜><think>\\n'}}{% endif %}"


def _token_id(vocab: dict[str, int], piece: str) -> int:
    """Id of a one-token piece. Byte-level BPE spells " " and "\\n" as "Ġ" and "Ċ"."""
    if piece in vocab:  # special and user-defined tokens are spelled as themselves
        return vocab[piece]
    spelled = piece.replace(" ", "Ġ").replace("\n", "Ċ")
    if spelled not in vocab:
        raise ValueError(f"{piece!r} is not one token of the vocabulary")
    return vocab[spelled]


def _script_edges(tokens: list[str], script: Sequence[Sequence[str]]) -> dict[int, int]:
    vocab = {text: i for i, text in enumerate(tokens)}
    edges: dict[int, int] = {}
    for path in script:
        ids = [_token_id(vocab, piece) for piece in path]
        for current, following in zip(ids, ids[1:], strict=False):
            if edges.setdefault(current, following) != following:
                raise ValueError(f"token {current} has two different successors in the script")
    return edges


def build_tiny_gguf(
    path: Path | str,
    chat_template: str | None = None,
    script: Sequence[Sequence[str]] = FINISHING_SCRIPT,
) -> Path:
    """Write the tiny model to `path`; `chat_template` replaces the fixture's template."""
    path = Path(path)
    tokenizer = load_tokenizer()
    if chat_template is not None:
        tokenizer["tokenizer.chat_template"] = chat_template
    tokens = tokenizer["tokenizer.ggml.tokens"]
    n_vocab = len(tokens)
    edges = _script_edges(tokens, script)
    assert len(edges) <= N_EMBD, "one embedding direction per scripted token"

    rng = np.random.default_rng(SEED)

    def noise(*shape: int, scale: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)

    token_embd = noise(n_vocab, N_EMBD)
    output = noise(n_vocab, N_EMBD)
    for direction, (current, following) in enumerate(sorted(edges.items())):
        token_embd[current] = 0.0
        token_embd[current, direction] = 1.0
        # After RMS norm the hidden state is about 8 along `direction`: logit ~32.
        output[following, direction] += 4.0

    writer = gguf.GGUFWriter(path, "qwen2")
    writer.add_context_length(4096)
    writer.add_embedding_length(N_EMBD)
    writer.add_block_count(N_BLOCKS)
    writer.add_feed_forward_length(N_FF)
    writer.add_head_count(N_HEAD)
    writer.add_head_count_kv(N_HEAD)
    writer.add_layer_norm_rms_eps(1e-6)
    writer.add_rope_freq_base(10000.0)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for key, value in tokenizer.items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        else:
            writer.add_array(key, value)

    writer.add_tensor("token_embd.weight", token_embd.astype(np.float16))
    writer.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    writer.add_tensor("output.weight", output.astype(np.float16))
    for block in range(N_BLOCKS):
        prefix = f"blk.{block}"
        writer.add_tensor(f"{prefix}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for name in ("attn_q", "attn_k", "attn_v"):
            writer.add_tensor(f"{prefix}.{name}.weight", noise(N_EMBD, N_EMBD))
            writer.add_tensor(f"{prefix}.{name}.bias", noise(N_EMBD))
        writer.add_tensor(f"{prefix}.attn_output.weight", noise(N_EMBD, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        writer.add_tensor(f"{prefix}.ffn_gate.weight", noise(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_up.weight", noise(N_FF, N_EMBD))
        writer.add_tensor(f"{prefix}.ffn_down.weight", noise(N_EMBD, N_FF))

    path.parent.mkdir(parents=True, exist_ok=True)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def cached_tiny_gguf(
    name: str,
    chat_template: str | None = None,
    script: Sequence[Sequence[str]] = FINISHING_SCRIPT,
) -> Path:
    """Build once into tests/.cache/; a changed builder or script gets a new file."""
    recipe = json.dumps(
        [Path(__file__).read_text(encoding="utf-8"), chat_template, [list(p) for p in script]]
    )
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    path = CACHE_DIR / f"{name}-{digest}.gguf"
    if not path.is_file():
        # Build under a private name, then rename (atomic): an interrupted or
        # concurrent build never leaves a half-written file under the final name.
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        build_tiny_gguf(partial, chat_template, script)
        partial.replace(path)
        for stale in CACHE_DIR.glob(f"{name}-{'?' * len(digest)}.gguf"):
            if stale != path:
                stale.unlink(missing_ok=True)
    return path


@pytest.fixture(scope="session")
def tiny_gguf_path() -> Path:
    """Reasons briefly, closes `</think>`, answers, stops."""
    return cached_tiny_gguf("tiny-r1")


@pytest.fixture(scope="session")
def looping_gguf_path() -> Path:
    """Reasons forever (until cancelled, cut off or budgeted)."""
    return cached_tiny_gguf("tiny-r1-looping", script=LOOPING_SCRIPT)


@pytest.fixture(scope="session")
def later_template_gguf_path() -> Path:
    """The tiny model with the later upstream template (prefills `<think>\\n` itself)."""
    template = later_chat_template(load_tokenizer()["tokenizer.chat_template"])
    return cached_tiny_gguf("tiny-r1-later-template", chat_template=template)
