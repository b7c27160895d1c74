"""DeepSeek-R1's chat format, rendered by ds-lsp, with the reasoning skipped.

R1 distills have no request switch that turns their reasoning off: what works
is the answer prefilled with an empty think block (`<think>\\n\\n</think>\\n\\n`).
Chat endpoints apply the server's template and give no way to prefill cleanly
(llama-server echoes an assistant prefill back in the content), so for
servers with a `/v1/completions` endpoint (llama-server, vLLM, SGLang,
LM Studio) ds-lsp renders the conversation itself, as R1's own template does,
and sends it raw.

No BOS token: the server (or the in-process backend) adds it as the model's
vocabulary asks, and one written here would be doubled.
"""

from __future__ import annotations

from collections.abc import Iterable

from ds_lsp.backends.base import Message, RawPrompt

USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
END_OF_SENTENCE = "<｜end▁of▁sentence｜>"
# The answer starts after an empty reasoning block: the model skips its reasoning.
SKIPPED_REASONING = "<think>\n\n</think>\n\n"


def r1_raw_prompt(messages: Iterable[Message]) -> RawPrompt:
    """The conversation in R1's chat format, the answer's start prefilled with an empty
    think block. The messages' text is never read as special tokens (RawPrompt pieces)."""
    pieces: list[tuple[str, bool]] = []
    for message in messages:
        if message.role == "user":
            pieces += [(USER, True), (message.content, False)]
        else:
            # As R1's template does: earlier turns keep their answer, not their reasoning.
            answer = message.content.split("</think>")[-1]
            pieces += [(ASSISTANT, True), (answer, False), (END_OF_SENTENCE, True)]
    pieces.append((ASSISTANT + SKIPPED_REASONING, True))
    return RawPrompt(tuple(pieces))
