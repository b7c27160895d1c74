"""The inline-completion prompt in each style, and the request that carries it.

Three styles, chosen per model (prompt_style.py) or by the user:
- "chat": an instruction in a user message for a chat model (an R1 distill) whose
  reasoning is skipped with a prefilled empty think block;
- "fim": the model's own fill-in-the-middle format (Qwen2.5-Coder, StarCoder, ...),
  a preset's name or the user's `fim_template`;
- "continuation": plain text the model goes on from, for base models and models
  without a chat template (gemma-3-270m).

Every style puts what changes slowly first (the file's path, imports, signatures
from other files) and the text before the cursor last, so a keystroke only adds
tokens at the end and the model's KV cache keeps the rest. The header lines are
comments in the file's language; they are "prompt furniture" the suggestion
filter refuses to show (`header_lines`).

Pure: no LSP, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

from ds_lsp import prompts
from ds_lsp.backends.base import ChatRequest, Message, RawPrompt
from ds_lsp.context.gather import CompletionContext

Style = Literal["chat", "fim", "continuation"]
CURSOR = "<CURSOR>"
# Single-line suggestions need few tokens; multi-line ones get the setting's cap.
SINGLE_LINE_MAX_TOKENS = 32

FIM_PRESETS: dict[str, str] = {
    "qwen2.5-coder": "<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>",
    "deepseek-coder": "<｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>",
    "codellama": "<PRE> {prefix} <SUF>{suffix} <MID>",
    "starcoder": "<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>",
}
_LINE_COMMENTS: dict[str, str] = {"python": "#", "ruby": "#", "bash": "#", "lua": "--"}


@dataclass(frozen=True)
class PromptStyle:
    """How to prompt a model for ghost text, and why (for the log and `ds-lsp doctor`)."""

    style: Style
    fim_template: str | None = None  # a FIM_PRESETS name or a template, for "fim"
    reason: str = ""


def completion_request(
    context: CompletionContext,
    style: PromptStyle,
    max_tokens: int,
    model: str | None = None,
) -> ChatRequest:
    """The request for a suggestion at `context` in `style`: reasoning off, a likely
    answer (low temperature), one line's tokens and a stop at the line's end where
    one line is wanted."""
    single = context.mode != "multi_line"
    # At the end of a finished line the suggestion may be the next line: no stop at
    # the line break (SuggestionStream ends it after that line).
    stop_at_line_end = single and not (style.style != "chat" and next_line_may_follow(context))
    common = dict(
        max_tokens=min(max_tokens, SINGLE_LINE_MAX_TOKENS) if single else max_tokens,
        reasoning="off",
        temperature=0.0,  # the likeliest code (greedy), the same for the same text
        top_p=0.95,
        slot="completion",
        stop=("\n",) if stop_at_line_end else (),
        model=model,
    )
    if style.style == "fim":
        return ChatRequest(messages=(), raw=render_fim(context, style.fim_template), **common)
    if style.style == "continuation":
        return ChatRequest(messages=(), raw=render_continuation(context), **common)
    return ChatRequest(messages=[Message("user", render_chat_prompt(context))], **common)


def next_line_may_follow(context: CompletionContext) -> bool:
    """One line wanted, and the cursor ends a line that has code: when the model
    finds that line finished, the line after it is the suggestion (as Copilot and
    Tabby offer), for models that go on from the file's text, whose indentation
    is the file's."""
    return (
        context.mode == "single_line"
        and bool(context.line_prefix.strip())
        and not context.line_suffix.strip()
    )


def reserved_chars(style: PromptStyle) -> int:
    """Characters the prompt adds around the code, to leave room for in the budget."""
    return _chat_overhead() if style.style == "chat" else 200


def render_continuation(context: CompletionContext) -> RawPrompt:
    """Plain text for a model to go on from: the comment header, then the code
    before the cursor. Nothing after the cursor: a model that only continues text
    would read it as what comes before."""
    return RawPrompt(((_fim_header(context) + _healed(context.prefix), False),))


def _healed(prefix: str) -> str:
    """The prefix without the spaces typed after the last word on the cursor line.
    Tokenizers put a space in front of the word that follows ("▁records"), so a
    prompt that ends in a space is one the model has rarely seen, and it often
    answers nothing; without it, it writes " records" (the suggestion filter drops
    the space the line already has)."""
    stripped = prefix.rstrip(" \t")
    last_line = stripped[stripped.rfind("\n") + 1 :]
    return stripped if last_line.strip() else prefix


def header_lines(context: CompletionContext) -> frozenset[str]:
    """The lines of the comment header the prompt puts in front of the code: a
    suggestion that repeats one went off the rails (prompt furniture)."""
    return frozenset(line.strip() for line in _fim_header(context).splitlines() if line.strip())


def render_chat_prompt(context: CompletionContext) -> str:
    """The user message asking a chat model (an R1 distill, reasoning off) for the
    code at the cursor. The text before the cursor comes last, so a keystroke only
    changes the end of the prompt."""
    return prompts.render(
        "complete",
        file_name=context.file_name,
        language=context.language or "",
        context=_chat_sections(context),
        suffix=context.suffix.rstrip("\r\n"),
        prefix=context.prefix,
        cursor=CURSOR,
        task=_TASKS[context.mode],
    )


_TASKS: dict[str, str] = {
    "single_line": "Complete only the rest of the cursor's line.",
    "multi_line": "Complete the block that starts at the cursor, a few lines at most.",
    "none": "Complete only the rest of the cursor's line.",
}


def _chat_sections(context: CompletionContext) -> str:
    fence = context.language or ""
    sections = []
    for title, body in (
        ("Imports of this file", _not_in(context.imports, context.prefix)),
        ("Signatures from other open files", context.related),
        ("The cursor is inside", _not_in(context.scope, context.prefix)),
    ):
        if body:
            sections.append(f"{title}:\n```{fence}\n{body}\n```\n\n")
    return "".join(sections)


def _not_in(lines: str, prefix: str) -> str:
    """The lines not already shown whole in the prefix (a small file shows its imports).
    The cursor line is not looked at: what is typed there must not change the start."""
    if not lines:
        return ""
    shown = "\n" + prefix[: prefix.rfind("\n") + 1].replace("\r\n", "\n")
    return "\n".join(line for line in lines.split("\n") if f"\n{line}\n" not in shown)


@cache
def _chat_overhead() -> int:
    """Characters the chat prompt adds around the code (instructions, section titles,
    fences), so the code's budget leaves room for them. Measured with every section
    and the longest task; the FIM header and markers take less."""
    filled = CompletionContext("", "typescript", "", "", "", "", "s", "i", "r", "multi_line", "")
    return len(render_chat_prompt(filled))


def fim_template_problem(template: str) -> str | None:
    """Why `template` is not a usable FIM template, or None: a preset name, or a
    template with {prefix} and {suffix} once each."""
    if template in FIM_PRESETS:
        return None
    if template.count("{prefix}") != 1 or template.count("{suffix}") != 1:
        presets = ", ".join(FIM_PRESETS)
        return (
            f"a FIM template is one of {presets}, or text with {{prefix}} and {{suffix}} once each"
        )
    return None


def render_fim(context: CompletionContext, template: str) -> RawPrompt:
    """A fill-in-the-middle prompt: a preset's name or a custom template with {prefix}
    and {suffix}. The template's text is the format's markers; the user's code goes in
    as text pieces, after a comment header with the file's path, its imports and the
    related signatures the prefix does not show. ValueError for a bad template."""
    problem = fim_template_problem(template)
    if problem:
        raise ValueError(problem)
    pattern = FIM_PRESETS.get(template, template)
    prefix = _fim_header(context) + context.prefix
    pieces: list[tuple[str, bool]] = []
    for part in re.split(r"(\{prefix\}|\{suffix\})", pattern):
        if part == "{prefix}":
            piece = (prefix, False)
        elif part == "{suffix}":
            piece = (context.suffix, False)
        else:
            piece = (part, True)
        if piece[0]:
            pieces.append(piece)
    return RawPrompt(tuple(pieces))


def _fim_header(context: CompletionContext) -> str:
    if context.language is None:
        return ""  # plain text: no comment syntax to hide the header in
    comment = _LINE_COMMENTS.get(context.language, "//")
    lines = [f"Path: {context.file_name}"]
    for part in (
        _not_in(context.imports, context.prefix),
        context.related,
        _not_in(context.scope, context.prefix),
    ):
        if part:
            lines.extend(part.split("\n"))
    return "".join(f"{comment} {line}".rstrip() + "\n" for line in lines)
