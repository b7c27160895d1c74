"""Which inline-completion prompt fits the model: decided once, from what the model is.

- an R1 distill (a chat template that thinks, or a reasoning model's name): the
  instruction prompt ("chat") with an empty think block, which it follows well;
- a vocabulary with fill-in-the-middle tokens: that model's own FIM format;
- anything else (no chat template, a base model, a small chat model that does not
  follow instructions, such as gemma-3-270m): plain continuation, which every
  language model can do.

R1 comes first: the R1-Distill-Qwen vocabulary keeps Qwen's FIM tokens, but the
distill was never trained to use them. A user's `fim_template` or
`completion_prompt` setting always wins.

Pure: the backends gather the facts (GGUF metadata, a server's /props, the model
name) and pass them in.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ds_lsp.completion_prompts import FIM_PRESETS, PromptStyle

# Each FIM preset by the first of its markers, as found in a vocabulary.
FIM_MARKERS: dict[str, str] = {
    "qwen2.5-coder": "<|fim_prefix|>",
    "deepseek-coder": "<｜fim▁begin｜>",
    "starcoder": "<fim_prefix>",
}
_THINKING = ("<think>", "</think>")
# Model names that say what a server runs, when it tells nothing else.
_REASONING_NAME = re.compile(r"(^|[^a-z])(r1|reasoner|qwq|think)", re.IGNORECASE)
_FIM_NAMES = (
    ("qwen2.5-coder", re.compile(r"qwen2\.5[-_.]?coder", re.IGNORECASE)),
    ("deepseek-coder", re.compile(r"deepseek[-_.]?coder", re.IGNORECASE)),
    ("starcoder", re.compile(r"starcoder", re.IGNORECASE)),
    ("codellama", re.compile(r"code[-_.]?llama", re.IGNORECASE)),
)


def chosen_style(
    detected: PromptStyle, completion_prompt: str = "auto", fim_template: str | None = None
) -> PromptStyle:
    """The style to use: the user's setting where there is one, else what was detected."""
    if fim_template:
        return PromptStyle("fim", fim_template, "the fim_template setting")
    if completion_prompt in ("chat", "continuation"):
        return PromptStyle(completion_prompt, None, "the completion_prompt setting")
    return detected


def style_from_gguf(chat_template: str | None, has_token: Callable[[str], bool]) -> PromptStyle:
    """From a GGUF: its chat template (None when it has none) and whether a text is
    one special token of its vocabulary."""
    if chat_template and any(tag in chat_template for tag in _THINKING):
        return PromptStyle("chat", None, "its chat template thinks (an R1 distill)")
    for preset, marker in FIM_MARKERS.items():
        if has_token(marker):
            return PromptStyle("fim", preset, f"its vocabulary has FIM tokens ({marker})")
    if not chat_template:
        return PromptStyle("continuation", None, "the GGUF carries no chat template")
    return PromptStyle(
        "continuation", None, "a chat template that does not think: not an R1 distill"
    )


def style_from_server(
    model: str, chat_template: str | None = None, preset: str | None = None
) -> PromptStyle:
    """From what a server tells: llama-server's /props chat template where it has one
    ("" for none), else the model's name."""
    if preset == "deepseek" or (chat_template and any(t in chat_template for t in _THINKING)):
        return PromptStyle("chat", None, "the server's chat template thinks (an R1 model)")
    if _REASONING_NAME.search(model):
        return PromptStyle("chat", None, f"the model name {model!r} says it reasons (R1)")
    for preset_name, pattern in _FIM_NAMES:
        if pattern.search(model) and preset_name in FIM_PRESETS:
            return PromptStyle("fim", preset_name, f"the model name {model!r} is a FIM coder")
    if chat_template is not None:
        return PromptStyle("continuation", None, "the server's chat template does not think")
    # Nothing tells: the instruction prompt, which R1 distills and chat models follow.
    return PromptStyle("chat", None, f"nothing says what {model!r} is: the instruction prompt")
